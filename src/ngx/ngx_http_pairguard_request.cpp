// The request plumbing that guard, pairing and auth share: the request
// context (found again after internal redirects), answers that can never
// turn into a 500 or re-enter the phase engine, suspending a phase handler on
// Redis or a thread task and resuming it from the request's own connection,
// the method check, and reading the body with the location's own settings.

#include <algorithm>
#include <openssl/crypto.h>

#include "../core/answers.hpp"
#include "ngx_http_pairguard.h"
#include "ngx_http_pairguard_metrics.h"

namespace {

// a worker keeps at most this many contexts' blocks (400 kB) for the next
// requests
using ctx_blocks = ngx_http_pairguard_blocks<ngx_http_pairguard_ctx_t, 256>;

void ctx_cleanup(void* data) noexcept {
    auto* ctx = static_cast<ngx_http_pairguard_ctx_t*>(data);
    for (ngx_pairguard_redis_command_t* c : ctx->calls) {
        ngx_pairguard_redis_t::cancel(c);
    }
    ngx_http_pairguard_batch_cancel(ctx->reserve_op.get());
    ngx_http_pairguard_settle_unanswered(ctx);
    ctx->~ngx_http_pairguard_ctx_t();
    ctx_blocks::give_back(ctx);
}

bool push_header(ngx_http_request_t* r, std::string_view name, std::string_view value) {
    auto* h = static_cast<ngx_table_elt_t*>(ngx_list_push(&r->headers_out.headers));
    if (h == nullptr) {
        return false;
    }
    auto* data = static_cast<u_char*>(ngx_pnalloc(r->pool, name.size() + value.size() + 1));
    if (data == nullptr) {
        return false;
    }
    ngx_memcpy(data, name.data(), name.size());
    ngx_memcpy(data + name.size(), value.data(), value.size());
    h->hash = 1;
    h->key.data = data;
    h->key.len = name.size();
    h->value.data = data + name.size();
    h->value.len = value.size();
#if (nginx_version >= 1023000)
    h->next = nullptr;
#endif
    return true;
}

// Sends the whole answer. Internal failures are NGX_ERROR (the connection
// closes), never a status that error_page could send back into the phases.
ngx_int_t send_answer(ngx_http_request_t* r, const ngx_http_pairguard_answer_t& a) noexcept {
    try {
        if (r->header_sent) {
            return NGX_ERROR;
        }
        ngx_http_pairguard_metric_answer(r, a);
        // a body that cannot be discarded (malformed chunks) still gets the
        // answer; the connection just is not kept alive, as nginx does for
        // its own special responses
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            r->keepalive = 0;
        }
        ngx_http_clear_content_length(r);
        ngx_http_clear_accept_ranges(r);
        ngx_http_clear_last_modified(r);
        ngx_http_clear_etag(r);

        // the module's own answer, even in an error_page's location (whose
        // status nginx would otherwise put back: a 429 sent as the 401)
        r->err_status = 0;
        r->headers_out.status = a.status;
        r->headers_out.content_length_n = static_cast<off_t>(a.body.size());
        if (!a.body.empty()) {
            r->headers_out.content_type = ngx_pairguard_str("application/json");
            r->headers_out.content_type_len = r->headers_out.content_type.len;
            r->headers_out.content_type_lowcase = nullptr;
        }
        if (a.retry_after > 0) {
            char buf[NGX_INT64_LEN + 1];
            u_char* end = ngx_sprintf(reinterpret_cast<u_char*>(buf), "%L", a.retry_after);
            if (!push_header(r, "Retry-After", std::string_view(buf, static_cast<size_t>(end - (u_char*) buf)))) {
                return NGX_ERROR;
            }
        }
        for (const auto& [name, value] : a.headers) {
            if (!push_header(r, name, value)) {
                return NGX_ERROR;
            }
        }

        ngx_int_t rc = ngx_http_send_header(r);
        if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
            return rc > NGX_OK ? NGX_ERROR : rc;
        }
        if (a.body.empty()) {
            return ngx_http_send_special(r, NGX_HTTP_LAST);
        }
        ngx_buf_t* b = ngx_create_temp_buf(r->pool, a.body.size());
        if (b == nullptr) {
            return NGX_ERROR;
        }
        b->last = ngx_cpymem(b->pos, a.body.data(), a.body.size());
        b->last_buf = (r == r->main) ? 1 : 0;
        b->last_in_chain = 1;
        ngx_chain_t out;
        out.buf = b;
        out.next = nullptr;
        return ngx_http_output_filter(r, &out);
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "pairguard: %s", e.what());
        return NGX_ERROR;
    }
}

// The posted half of answer_later: runs on the request's own connection.
void answer_posted(ngx_http_request_t* r) noexcept {
    ngx_http_pairguard_ctx_t* ctx = ngx_http_pairguard_get_ctx(r);
    if (ctx == nullptr || !ctx->answer) {
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }
    ngx_http_pairguard_answer_t a = std::move(*ctx->answer);
    ctx->answer.reset();
    r->write_event_handler = ngx_http_request_empty_handler;
    ngx_http_finalize_request(r, send_answer(r, a));
}

void body_read(ngx_http_request_t* r) noexcept {
    ngx_http_pairguard_ctx_t* ctx = ngx_http_pairguard_get_ctx(r);
    if (ctx != nullptr) {
        ctx->body_read = true;
        r->error_page = ctx->error_page_before_body;  // read: the location's error_page holds again
    }
    r->preserve_body = 1;
    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);
}

ngx_int_t dav_ctx_index = NGX_ERROR;  // ngx_http_dav_module, when nginx has it

// The first field of ngx_http_dav_loc_conf_t: the enabled methods, a mask of
// NGX_HTTP_* method bits.
bool dav_put(ngx_http_request_t* r) {
    if (dav_ctx_index == NGX_ERROR || r->method != NGX_HTTP_PUT) {
        return false;
    }
    auto* methods = static_cast<ngx_uint_t*>(r->loc_conf[dav_ctx_index]);
    return methods != nullptr && (*methods & NGX_HTTP_PUT);
}

}  // namespace

// ---- the context ----------------------------------------------------------

// The context survives internal redirects (which clear r->ctx) through its
// pool cleanup, so whatever it knows holds for the whole request. The pool
// is the main request's, shared by its subrequests (auth_request, SSI,
// mirror): only the context made for this very request is taken back, never
// one a subrequest made (its callbacks resume that subrequest) nor the main
// request's (a subrequest's endpoint would run on its state).
ngx_http_pairguard_ctx_t* ngx_http_pairguard_get_ctx(ngx_http_request_t* r) {
    auto* ctx = static_cast<ngx_http_pairguard_ctx_t*>(ngx_http_get_module_ctx(r, ngx_http_pairguard_module));
    if (ctx != nullptr || !r->internal) {
        return ctx;
    }
    for (ngx_pool_cleanup_t* cln = r->pool->cleanup; cln != nullptr; cln = cln->next) {
        if (cln->handler == ctx_cleanup && static_cast<ngx_http_pairguard_ctx_t*>(cln->data)->request == r) {
            ctx = static_cast<ngx_http_pairguard_ctx_t*>(cln->data);
            ngx_http_set_ctx(r, ctx, ngx_http_pairguard_module);
            return ctx;
        }
    }
    return nullptr;
}

void ngx_http_pairguard_note_carried_on(ngx_http_request_t* r) noexcept {
    ngx_http_pairguard_ctx_t* ctx = ngx_http_pairguard_get_ctx(r->main);
    if (ctx == nullptr) {
        return;  // nothing reserved yet: a group reserved later starts after this
    }
    // counted, not flagged: a group reserved later (the guard's own resume
    // in a location runs this again first) starts from the count it finds
    ctx->carried_on++;
    ngx_http_pairguard_note_subrequest(r);
}

void ngx_http_pairguard_note_subrequest(ngx_http_request_t* r) noexcept {
    if (r == r->main) {
        return;
    }
    ngx_http_pairguard_ctx_t* ctx = ngx_http_pairguard_get_ctx(r->main);
    // noted when it runs its PREACCESS phase and again when its header goes
    // out (one answered in its rewrite phase, `return 401`, only then): a
    // repeat is harmless, the one just before is skipped
    if (ctx == nullptr || (!ctx->subrequests.empty() && ctx->subrequests.back() == r)) {
        return;
    }
    try {
        ctx->subrequests.push_back(r);
    } catch (const std::exception&) {
        // out of memory: its answer is not read; the hang-up rule still
        // counts the request as seen
    }
}

// What the guard and auth decided, for variables: a subrequest without a
// context of its own reads its main request's (read only).
ngx_http_pairguard_ctx_t* ngx_http_pairguard_decided_ctx(ngx_http_request_t* r) {
    ngx_http_pairguard_ctx_t* ctx = ngx_http_pairguard_get_ctx(r);
    if (ctx == nullptr && r != r->main) {
        ctx = ngx_http_pairguard_get_ctx(r->main);
    }
    return ctx;
}

ngx_http_pairguard_ctx_t* ngx_http_pairguard_get_or_create_ctx(ngx_http_request_t* r) {
    ngx_http_pairguard_ctx_t* ctx = ngx_http_pairguard_get_ctx(r);
    if (ctx != nullptr) {
        return ctx;
    }
    // The context (about 1.6 kB) comes from the worker's list of such
    // blocks, not from the request's pool: there it would take a new 4 kB
    // pool block on most requests (plain proxying leaves less than 100 bytes
    // of its second one). Its life is the pool's all the same: the cleanup
    // destroys it and gives the block back.
    ngx_pool_cleanup_t* cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == nullptr) {
        return nullptr;
    }
    void* mem = nullptr;
    try {
        mem = ctx_blocks::take();
        ctx = new (mem) ngx_http_pairguard_ctx_t();
    } catch (const std::exception&) {
        if (mem != nullptr) {
            ctx_blocks::give_back(mem);
        }
        return nullptr;  // the cleanup has no handler yet: nothing to free
    }
    cln->data = ctx;
    cln->handler = ctx_cleanup;
    ctx->request = r;
    ngx_http_set_ctx(r, ctx, ngx_http_pairguard_module);
    return ctx;
}

// ---- answers ----------------------------------------------------------------

ngx_int_t ngx_http_pairguard_answer_now(ngx_http_request_t* r, const ngx_http_pairguard_answer_t& a) noexcept {
    ngx_http_finalize_request(r, send_answer(r, a));
    return NGX_DONE;
}

void ngx_http_pairguard_answer_later(ngx_http_request_t* r, ngx_http_pairguard_answer_t a) noexcept {
    ngx_http_pairguard_ctx_t* ctx = ngx_http_pairguard_get_or_create_ctx(r);
    if (ctx == nullptr) {
        r->write_event_handler = ngx_http_request_empty_handler;
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }
    ctx->answer = std::move(a);
    r->write_event_handler = answer_posted;
    ngx_post_event(r->connection->write, &ngx_posted_events);
}

ngx_int_t ngx_http_pairguard_suspend(ngx_http_request_t* r) noexcept {
    // a client that goes away is noticed; its calls are cancelled by the
    // context's cleanup
    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_request_empty_handler;
    return NGX_AGAIN;
}

void ngx_http_pairguard_resume(ngx_http_request_t* r) noexcept {
    // the phases run from the request's own connection, never from inside
    // a Redis reply or a thread completion
    r->write_event_handler = ngx_http_core_run_phases;
    ngx_post_event(r->connection->write, &ngx_posted_events);
}

bool ngx_http_pairguard_method_allowed(ngx_http_request_t* r, ngx_uint_t mask, const char* allow, ngx_int_t* rc) {
    if (r->method & mask) {
        return true;
    }
    ngx_http_pairguard_answer_t a{NGX_HTTP_NOT_ALLOWED, pairguard::error_body("method_not_allowed"), 0, {}};
    a.headers.emplace_back("Allow", allow);
    // sent, not finalized: the content phase finalizes with this rc
    *rc = send_answer(r, a);
    return false;
}

// ---- the body -------------------------------------------------------------------

ngx_int_t ngx_http_pairguard_read_body(ngx_http_request_t* r) {
    // the location's own settings hold: client_body_in_file_only is already
    // on the request; WebDAV's PUT wants its file, as its handler would ask
    if (dav_put(r)) {
        r->request_body_in_file_only = 1;
        r->request_body_in_persistent_file = 1;
        r->request_body_in_clean_file = 1;
        r->request_body_file_group_access = 1;
        r->request_body_file_log_level = 0;
    }
    // A body that cannot be read (too large, malformed, timed out) is
    // answered with nginx's own error page, not sent on by `error_page`:
    // the guard has not reserved its attempt yet, and another location
    // (unguarded, proxying to the same application) would carry it there
    // uncounted. body_read puts the flag back.
    ngx_http_pairguard_ctx_t* ctx = ngx_http_pairguard_get_ctx(r);
    if (ctx != nullptr) {
        ctx->error_page_before_body = r->error_page;
        r->error_page = 1;
    }
    ngx_int_t rc = ngx_http_read_client_request_body(r, body_read);
    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }
    ngx_http_finalize_request(r, NGX_DONE);
    return NGX_DONE;
}

bool ngx_http_pairguard_body_text(ngx_http_request_t* r, std::string& out) {
    out.clear();
    ngx_http_request_body_t* rb = r->request_body;
    if (rb == nullptr || rb->bufs == nullptr) {
        return true;
    }
    if (rb->temp_file != nullptr) {
        // kept in a file (client_body_in_file_only, WebDAV, or larger than the
        // buffer): read back what the parser needs, bounded
        off_t size = rb->temp_file->file.offset;
        if (size < 0 || size > static_cast<off_t>(NGX_HTTP_PAIRGUARD_BODY_MAX)) {
            return false;
        }
        out.resize(static_cast<size_t>(size));
        ssize_t n = ngx_read_file(&rb->temp_file->file, reinterpret_cast<u_char*>(out.data()),
                                  static_cast<size_t>(size), 0);
        if (n != static_cast<ssize_t>(size)) {
            OPENSSL_cleanse(out.data(), out.size());
            out.clear();
            return false;
        }
        return true;
    }
    for (ngx_chain_t* cl = rb->bufs; cl != nullptr; cl = cl->next) {
        if (ngx_buf_special(cl->buf)) {
            continue;  // the closing last_buf of an empty or chunked body
        }
        if (cl->buf->in_file || !ngx_buf_in_memory(cl->buf)) {
            return false;
        }
        size_t len = static_cast<size_t>(cl->buf->last - cl->buf->pos);
        if (out.size() + len > NGX_HTTP_PAIRGUARD_BODY_MAX) {
            return false;
        }
        out.append(reinterpret_cast<const char*>(cl->buf->pos), len);
    }
    return true;
}

bool ngx_http_pairguard_add_header(ngx_http_request_t* r, std::string_view name, std::string_view value) {
    return push_header(r, name, value);
}

void ngx_http_pairguard_cookie_values(ngx_http_request_t* r, const ngx_str_t& name,
                                      std::vector<std::string_view>& out) {
    std::string_view n(reinterpret_cast<const char*>(name.data), name.len);
    auto one = [&](const ngx_table_elt_t* h) {
        pairguard::cookie_values(std::string_view(reinterpret_cast<const char*>(h->value.data), h->value.len), n, out,
                                 pairguard::kDeviceCookiesChecked, pairguard::kDeviceTokenChars);
    };
#if (nginx_version >= 1023000)
    for (const ngx_table_elt_t* h = r->headers_in.cookie; h != nullptr && out.size() < pairguard::kDeviceCookiesChecked;
         h = h->next) {
        one(h);
    }
#else
    auto** h = static_cast<ngx_table_elt_t**>(r->headers_in.cookies.elts);
    for (ngx_uint_t i = 0; i < r->headers_in.cookies.nelts && out.size() < pairguard::kDeviceCookiesChecked; i++) {
        one(h[i]);
    }
#endif
}

std::string ngx_http_pairguard_client_net(ngx_http_request_t* r) {
    auto* lcf = static_cast<ngx_http_pairguard_loc_conf_t*>(ngx_http_get_module_loc_conf(r, ngx_http_pairguard_module));
    ngx_uint_t v4 = lcf->client_v4_bits == NGX_CONF_UNSET_UINT ? 32 : lcf->client_v4_bits;
    ngx_uint_t v6 = lcf->client_v6_bits == NGX_CONF_UNSET_UINT ? 64 : lcf->client_v6_bits;
    u_char bytes[16];
    size_t len = 0;
    int family = r->connection->sockaddr->sa_family;
    if (family == AF_INET) {
        ngx_memcpy(bytes, &reinterpret_cast<struct sockaddr_in*>(r->connection->sockaddr)->sin_addr, 4);
        len = 4;
    }
#if (NGX_HAVE_INET6)
    else if (family == AF_INET6) {
        auto* a6 = &reinterpret_cast<struct sockaddr_in6*>(r->connection->sockaddr)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            ngx_memcpy(bytes, a6->s6_addr + 12, 4);
            len = 4;
        } else {
            ngx_memcpy(bytes, a6->s6_addr, 16);
            len = 16;
        }
    }
#endif
    if (len == 0) {
        // unix sockets and the like: the address as nginx prints it
        return std::string(reinterpret_cast<const char*>(r->connection->addr_text.data), r->connection->addr_text.len);
    }
    ngx_uint_t bits = len == 4 ? v4 : v6;
    for (size_t i = 0; i < len; i++) {
        size_t from = i * 8;
        if (from >= bits) {
            bytes[i] = 0;
        } else if (bits - from < 8) {
            bytes[i] &= static_cast<u_char>(0xff << (8 - (bits - from)));
        }
    }
    char text[NGX_INET6_ADDRSTRLEN + 8];
    size_t n;
    if (len == 4) {
        n = ngx_inet_ntop(AF_INET, bytes, reinterpret_cast<u_char*>(text), NGX_INET_ADDRSTRLEN);
    } else {
        n = ngx_inet_ntop(AF_INET6, bytes, reinterpret_cast<u_char*>(text), NGX_INET6_ADDRSTRLEN);
    }
    u_char* end = ngx_sprintf(reinterpret_cast<u_char*>(text) + n, "/%ui", bits);
    return std::string(text, static_cast<size_t>(end - reinterpret_cast<u_char*>(text)));
}

ngx_int_t ngx_http_pairguard_init_request(ngx_conf_t* cf) {
    for (ngx_uint_t i = 0; cf->cycle->modules[i] != nullptr; i++) {
        if (ngx_strcmp(cf->cycle->modules[i]->name, "ngx_http_dav_module") == 0) {
            dav_ctx_index = static_cast<ngx_int_t>(cf->cycle->modules[i]->ctx_index);
        }
    }
    return NGX_OK;
}
