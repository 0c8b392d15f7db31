// `pairguard_auth haystack` (SPEC section 4, docHaystack/Auth): the
// exchange is answered in PREACCESS, so that a request with a valid bearer
// token goes on to the location's proxy_pass with $pairguard_user.
//
// HELLO, SCRAM and PLAINTEXT are src/core/login.* flows pumped by
// ngx_http_pairguard_auth_endpoints.cpp; the answer is decided in a
// callback and given when the phases run again.

#include "ngx_http_pairguard_auth.h"

namespace {

using ctx_t = ngx_http_pairguard_ctx_t;

std::string_view view(const ngx_str_t& s) {
    return std::string_view(reinterpret_cast<const char*>(s.data), s.len);
}

// The flow's answer, from a callback: kept for the phase handler's re-entry.
void decided(ngx_http_request_t* r, ngx_http_pairguard_answer_t a) {
    ctx_t* ctx = ngx_http_pairguard_get_ctx(r);
    if (ctx == nullptr) {
        ngx_http_pairguard_answer_later(r, std::move(a));
        return;
    }
    ngx_http_pairguard_auth_decide(ctx, std::move(a));
    ngx_http_pairguard_resume(r);
}

ngx_http_pairguard_answer_t hello_challenge(const char* error) {
    ngx_http_pairguard_answer_t a{NGX_HTTP_UNAUTHORIZED, pairguard::render_error(error), 0, {}};
    a.headers.emplace_back("WWW-Authenticate", NGX_HTTP_PAIRGUARD_HAYSTACK_CHALLENGE);
    return a;
}

}  // namespace

ngx_int_t ngx_http_pairguard_haystack_access(ngx_http_request_t* r, ctx_t* ctx) {
    if (r->headers_in.authorization == nullptr) {
        return ngx_http_pairguard_answer_now(r, hello_challenge("unauthorized"));
    }
    auto auth = pairguard::haystack::parse_authorization(view(r->headers_in.authorization->value));
    if (!auth) {
        return ngx_http_pairguard_answer_now(
            r, ngx_http_pairguard_answer_t{NGX_HTTP_BAD_REQUEST,
                                           pairguard::render_invalid_request("malformed Authorization header"), 0,
                                           {}});
    }
    using K = pairguard::haystack::Kind;
    if (auth->kind == K::bearer) {
        return ngx_http_pairguard_check_bearer(r, ctx, auth->auth_token, NGX_HTTP_PAIRGUARD_HAYSTACK_CHALLENGE);
    }
    if (auth->kind == K::other) {
        // another scheme starts over with HELLO
        return ngx_http_pairguard_answer_now(r, hello_challenge("unauthorized"));
    }
    std::shared_ptr<pairguard::login::Flow> flow =
        pairguard::login::haystack_exchange(ngx_http_pairguard_login_request(r), *auth);
    pairguard::login::Step step = flow->start();
    if (step.kind == pairguard::login::Step::Kind::answer) {
        // HELLO (which needs no store), and refusals that need none
        for (const std::string& n : step.notices) {
            ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0, "pairguard: %s", n.c_str());
        }
        return ngx_http_pairguard_answer_now(r, ngx_http_pairguard_login_answer(step.answer));
    }
    // suspended before the pump starts: a decision made at once still resumes
    ctx->auth = ctx_t::auth_e::waiting;
    ngx_int_t rc = ngx_http_pairguard_suspend(r);
    ngx_http_pairguard_login_pump(r, std::move(flow), std::move(step), decided);
    return rc;
}
