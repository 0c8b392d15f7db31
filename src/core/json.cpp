#include "json.hpp"

#include <malloc.h>
#include <openssl/crypto.h>

#include <cstdlib>
#include <stdexcept>

namespace pairguard {

namespace {

// jansson frees what it decoded (a login body's password, a pairing code,
// its parser's buffers) through this: wiped first. Set once, when the
// module or a program of this core is loaded, for the whole process (a
// block another user of jansson allocated is freed the same way).
void wiping_free(void* p) {
    if (p != nullptr) {
        OPENSSL_cleanse(p, malloc_usable_size(p));
        std::free(p);
    }
}

[[maybe_unused]] const bool kJanssonWipes = [] {
    json_set_alloc_funcs(std::malloc, wiping_free);
    return true;
}();

}  // namespace

JsonPtr json_load_object(std::string_view text, size_t flags) {
    json_error_t err;
    JsonPtr j(json_loadb(text.data(), text.size(), flags, &err));
    if (!j || !json_is_object(j.get())) {
        return nullptr;
    }
    return j;
}

std::string json_get_string(json_t* obj, const char* key) {
    json_t* v = json_object_get(obj, key);
    return json_is_string(v) ? std::string(json_string_value(v), json_string_length(v)) : std::string();
}

void json_set(json_t* obj, const char* key, json_t* value) {
    if (value == nullptr || json_object_set_new(obj, key, value) != 0) {
        throw std::runtime_error("out of memory building JSON");
    }
}

std::string json_dump(const JsonPtr& j) {
    std::unique_ptr<char, decltype(&free)> text(json_dumps(j.get(), JSON_COMPACT), &free);
    if (!text) {
        throw std::runtime_error("json_dumps() failed");
    }
    return std::string(text.get());
}

std::string invalid_parameter(std::string_view arg) {
    return "invalid parameter \"" + std::string(arg) + "\"";
}

}  // namespace pairguard
