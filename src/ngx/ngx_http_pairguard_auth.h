// What the auth glue files share (ngx_http_pairguard_auth.cpp: directives,
// pairguard_auth_require, sessions; ngx_http_pairguard_auth_endpoints.cpp:
// the login pump and the JSON endpoints; ngx_http_pairguard_haystack.cpp:
// the Haystack exchange in PREACCESS).
#pragma once

#include <memory>

#include "../core/login.hpp"
#include "ngx_http_pairguard.h"

ngx_http_pairguard_main_conf_t* ngx_http_pairguard_auth_main_conf(ngx_http_request_t* r);

// What a login flow knows of its request (keys, policy, address, host, TLS, time).
pairguard::login::Request ngx_http_pairguard_login_request(ngx_http_request_t* r);

// Where a login flow's answer goes: a content handler answers at once
// (posted), the PREACCESS Haystack step keeps it and resumes the phases.
using ngx_http_pairguard_login_done_pt = void (*)(ngx_http_request_t* r, ngx_http_pairguard_answer_t a);

// Pumps a flow from `step`: store calls (all at once, replies to the flow),
// Argon2id in the thread pool, notices to the error log, until the flow
// answers; then `done`. Never throws; `done` may run before it returns.
void ngx_http_pairguard_login_pump(ngx_http_request_t* r, std::shared_ptr<pairguard::login::Flow> flow,
                                   pairguard::login::Step step, ngx_http_pairguard_login_done_pt done) noexcept;

ngx_http_pairguard_answer_t ngx_http_pairguard_login_answer(const pairguard::login::Answer& a);

// The content handler of pairguard_auth password | challenge | verify | session.
ngx_int_t ngx_http_pairguard_auth_content(ngx_http_request_t* r) noexcept;

// pairguard_auth session, once the body is read (ngx_http_pairguard_auth.cpp).
void ngx_http_pairguard_auth_session(ngx_http_request_t* r, ngx_http_pairguard_ctx_t* ctx);

// The bearer check shared by pairguard_auth_require and the Haystack
// location: decides ctx->auth (allowed, or an answer: 401 invalid_token with
// `challenge` as WWW-Authenticate, 503), then resumes the phases when it
// had to wait. Returns what the phase handler returns.
ngx_int_t ngx_http_pairguard_check_bearer(ngx_http_request_t* r, ngx_http_pairguard_ctx_t* ctx,
                                          const std::string& token, const char* challenge);
// Carries out ctx->auth on a phase handler's (re-)entry: NGX_DECLINED when
// allowed, else the answer (NGX_DONE).
ngx_int_t ngx_http_pairguard_auth_verdict(ngx_http_request_t* r, ngx_http_pairguard_ctx_t* ctx);
// Decides an answer for the phase handler to give on re-entry.
void ngx_http_pairguard_auth_decide(ngx_http_pairguard_ctx_t* ctx, ngx_http_pairguard_answer_t a);

// The Haystack side of pairguard_auth haystack (PREACCESS).
ngx_int_t ngx_http_pairguard_haystack_access(ngx_http_request_t* r, ngx_http_pairguard_ctx_t* ctx);

// `WWW-Authenticate` of a bad bearer token (RFC 6750) and of a Haystack location.
#define NGX_HTTP_PAIRGUARD_BEARER_INVALID "Bearer error=\"invalid_token\""
#define NGX_HTTP_PAIRGUARD_HAYSTACK_CHALLENGE "HELLO"
