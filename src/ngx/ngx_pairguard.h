// The one place nginx headers enter the C++ code.
#pragma once

extern "C" {
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_http.h>
}

#include <exception>
#include <new>
#include <utility>

// Constructs a C++ object in pool memory; the pool runs its destructor.
template <class T, class... Args>
T* ngx_pairguard_pool_new(ngx_pool_t* pool, Args&&... args) {
    ngx_pool_cleanup_t* cln = ngx_pool_cleanup_add(pool, sizeof(T));
    if (cln == nullptr) {
        return nullptr;
    }
    T* obj = new (cln->data) T(std::forward<Args>(args)...);
    cln->handler = [](void* p) { static_cast<T*>(p)->~T(); };
    return obj;
}

inline ngx_str_t ngx_pairguard_str(const char* s) {
    ngx_str_t v;
    v.len = ngx_strlen(s);
    v.data = (u_char*) s;
    return v;
}
