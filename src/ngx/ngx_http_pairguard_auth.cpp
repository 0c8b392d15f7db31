// Authentication at the edge (SPEC section 4): the auth directives,
// `pairguard_auth_require` and the bearer side of `pairguard_auth haystack`
// with the per-worker session cache (kept honest by the events channel),
// and the `pairguard_auth session` endpoint.
//
// The logins themselves are src/core/login.* flows, pumped by
// ngx_http_pairguard_auth_endpoints.cpp (password, challenge, verify) and
// ngx_http_pairguard_haystack.cpp (the Haystack exchange).

#include <unordered_map>

#include "../core/session.hpp"
#include "../core/ttl_cache.hpp"
#include "ngx_http_pairguard_auth.h"
#include "ngx_http_pairguard_metrics.h"

namespace {

using pairguard::Reply;
using pairguard::StoreCall;

using ctx_t = ngx_http_pairguard_ctx_t;
using auth_e = ctx_t::auth_e;
using answer_t = ngx_http_pairguard_answer_t;

ngx_http_pairguard_main_conf_t* main_conf(ngx_http_request_t* r) {
    return ngx_http_pairguard_auth_main_conf(r);
}

ngx_http_pairguard_loc_conf_t* loc_conf(ngx_http_request_t* r) {
    return static_cast<ngx_http_pairguard_loc_conf_t*>(ngx_http_get_module_loc_conf(r, ngx_http_pairguard_module));
}

std::string_view view(const ngx_str_t& s) {
    return std::string_view(reinterpret_cast<const char*>(s.data), s.len);
}

int64_t now_ms() {
    ngx_time_t* tp = ngx_timeofday();
    return static_cast<int64_t>(tp->sec) * 1000 + static_cast<int64_t>(tp->msec);
}

answer_t unavailable() {
    return answer_t{NGX_HTTP_SERVICE_UNAVAILABLE, pairguard::render_error("store_unavailable"), 0, {}};
}

// No credentials (or another scheme): 401 with the location's challenge.
answer_t unauthorized(const char* challenge) {
    answer_t a{NGX_HTTP_UNAUTHORIZED, pairguard::render_error("unauthorized"), 0, {}};
    a.headers.emplace_back("WWW-Authenticate", challenge);
    return a;
}

// A malformed, unknown, expired, refreshed or revoked token: 401 (RFC 6750
// section 3.1), so that clients log in again.
answer_t invalid_token(const char* challenge) {
    answer_t a{NGX_HTTP_UNAUTHORIZED, pairguard::render_error("invalid_token"), 0, {}};
    a.headers.emplace_back("WWW-Authenticate", challenge);
    return a;
}

// The Authorization header, parsed the Haystack way (which also reads
// `Bearer TOKEN`). nullopt without a header.
std::optional<std::optional<pairguard::haystack::Authorization>> authorization(ngx_http_request_t* r) {
    if (r->headers_in.authorization == nullptr) {
        return std::nullopt;
    }
    return pairguard::haystack::parse_authorization(view(r->headers_in.authorization->value));
}

// ---- the session cache -----------------------------------------------------------

constexpr ngx_msec_t kSessionCacheMs = 1000;  // the bound when an event is missed
constexpr size_t kSessionCacheMax = 65536;

struct session_entry_t {
    bool valid;
    std::string user;
    std::string user_tag;
    int64_t expires_ms;  // Unix ms
};

// Per worker, keyed by token hash; only this worker's event loop touches it.
// Entries leave a second after they came (core/ttl_cache): a stream of ever
// new tokens costs the tokens of the last second, not all of them.
// A lookup sent before a revocation event or a resync does not put its
// (maybe revoked) answer into the cache (the cache's generation).
pairguard::TtlCache<session_entry_t> session_cache(kSessionCacheMs, kSessionCacheMax);

}  // namespace

// ---- pairguard_auth_require (and the bearer side of haystack) ---------------------

void ngx_http_pairguard_auth_decide(ctx_t* ctx, answer_t a) {
    ctx->auth = auth_e::answer;
    ctx->auth_answer = std::move(a);
}

ngx_int_t ngx_http_pairguard_auth_verdict(ngx_http_request_t* r, ctx_t* ctx) {
    if (ctx->auth == auth_e::allowed) {
        return NGX_DECLINED;
    }
    // answered; never decided again
    ctx->auth = auth_e::unchecked;
    answer_t a = std::move(ctx->auth_answer);
    ctx->auth_answer = answer_t{};
    return ngx_http_pairguard_answer_now(r, a);
}

ngx_int_t ngx_http_pairguard_check_bearer(ngx_http_request_t* r, ctx_t* ctx, const std::string& token,
                                          const char* challenge) {
    ngx_http_pairguard_main_conf_t* mcf = main_conf(r);
    auto tag = pairguard::token_user_tag(token);
    if (!tag) {
        return ngx_http_pairguard_answer_now(r, invalid_token(challenge));
    }
    std::string thash = pairguard::token_hash(*mcf->keys, "session", token);
    if (const session_entry_t* cached = session_cache.get(thash, ngx_current_msec)) {
        if (cached->valid && cached->expires_ms > now_ms()) {
            ctx->auth = auth_e::allowed;
            ngx_http_pairguard_metric_session_ok();
            ctx->auth_user = cached->user;
            return NGX_DECLINED;
        }
        return ngx_http_pairguard_answer_now(r, invalid_token(challenge));
    }
    std::string utag(*tag);
    uint64_t generation = session_cache.generation();
    StoreCall sc = pairguard::make_session_get(*mcf->keys, view(mcf->prefix), token);
    // suspended first: the callback may run before call() returns
    ctx->auth = auth_e::waiting;
    ngx_int_t rc = ngx_http_pairguard_suspend(r);
    bool sent = ngx_http_pairguard_call(ctx, sc, [r, ctx, thash, utag, challenge, generation](bool ok, const Reply& reply) {
        try {
            pairguard::SessionInfo s = ok ? pairguard::decode_session_get(reply) : pairguard::SessionInfo{};
            if (!s.valid) {
                ngx_http_pairguard_auth_decide(ctx, unavailable());
            } else {
                session_cache.put_if_unchanged(generation, thash, session_entry_t{s.found, s.user, utag, s.expires_ms},
                                               ngx_current_msec);
                if (s.found) {
                    ctx->auth = auth_e::allowed;
                    ngx_http_pairguard_metric_session_ok();
                    ctx->auth_user = s.user;
                } else {
                    ngx_http_pairguard_auth_decide(ctx, invalid_token(challenge));
                }
            }
        } catch (const std::exception& e) {
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "pairguard: %s", e.what());
            ctx->auth = auth_e::answer;
            ctx->auth_answer = answer_t{NGX_HTTP_INTERNAL_SERVER_ERROR, "{\"error\":\"internal_error\"}", 0, {}};
        }
        ngx_http_pairguard_resume(r);
    });
    if (!sent) {
        ngx_http_pairguard_auth_decide(ctx, unavailable());
        ngx_http_pairguard_resume(r);
    }
    return rc;
}

ngx_int_t ngx_http_pairguard_auth_access(ngx_http_request_t* r) noexcept {
    try {
        ngx_http_pairguard_loc_conf_t* lcf = loc_conf(r);
        bool haystack = lcf->auth_op == NGX_HTTP_PAIRGUARD_AUTH_HAYSTACK;
        if ((!lcf->auth_require && !haystack) || r != r->main) {
            return NGX_DECLINED;
        }
        ctx_t* ctx = ngx_http_pairguard_get_or_create_ctx(r);
        if (ctx == nullptr) {
            return NGX_ERROR;
        }
        if (ctx->auth == auth_e::waiting) {
            return NGX_AGAIN;
        }
        if (ctx->auth != auth_e::unchecked) {
            return ngx_http_pairguard_auth_verdict(r, ctx);
        }
        if (haystack) {
            return ngx_http_pairguard_haystack_access(r, ctx);
        }
        auto a = authorization(r);
        if (!a || !*a || (*a)->kind != pairguard::haystack::Kind::bearer) {
            return ngx_http_pairguard_answer_now(r, unauthorized("Bearer"));
        }
        return ngx_http_pairguard_check_bearer(r, ctx, (*a)->auth_token, NGX_HTTP_PAIRGUARD_BEARER_INVALID);
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "pairguard: %s", e.what());
        return NGX_ERROR;
    }
}

// ---- pairguard_auth session ---------------------------------------------------------

void ngx_http_pairguard_auth_session(ngx_http_request_t* r, ctx_t* ctx) {
    ngx_http_pairguard_main_conf_t* mcf = main_conf(r);
    auto a = authorization(r);
    if (!a || !*a || (*a)->kind != pairguard::haystack::Kind::bearer) {
        ngx_http_pairguard_answer_later(r, unauthorized("Bearer"));
        return;
    }
    std::string token = (*a)->auth_token;
    auto tag = pairguard::token_user_tag(token);
    if (!tag) {
        ngx_http_pairguard_answer_later(r, invalid_token(NGX_HTTP_PAIRGUARD_BEARER_INVALID));
        return;
    }
    StoreCall sc;
    std::function<answer_t(const Reply&)> decide;
    if (r->method == NGX_HTTP_GET) {
        sc = pairguard::make_session_get(*mcf->keys, view(mcf->prefix), token);
        decide = [](const Reply& reply) {
            pairguard::SessionInfo s = pairguard::decode_session_get(reply);
            return !s.valid   ? unavailable()
                   : !s.found ? invalid_token(NGX_HTTP_PAIRGUARD_BEARER_INVALID)
                              : answer_t{200, pairguard::render_session(s.user, s.expires_ms / 1000), 0, {}};
        };
    } else if (r->method == NGX_HTTP_POST) {
        std::string fresh = pairguard::generate_token(*tag);
        sc = pairguard::make_session_refresh(*mcf->keys, view(mcf->prefix), token, fresh, mcf->auth->session_ttl_ms);
        decide = [fresh](const Reply& reply) {
            pairguard::SessionCreated c = pairguard::decode_session_refresh(reply);
            return !c.valid ? unavailable()
                   : !c.ok  ? invalid_token(NGX_HTTP_PAIRGUARD_BEARER_INVALID)
                            : answer_t{200, pairguard::render_token(fresh, c.expires_ms / 1000), 0, {}};
        };
    } else {
        std::string thash = pairguard::token_hash(*mcf->keys, "session", token);
        sc = pairguard::make_session_revoke(*mcf->keys, view(mcf->prefix), token);
        decide = [thash](const Reply& reply) {
            auto res = pairguard::decode_session_revoke(reply);
            if (res && *res) {
                session_cache.erase(thash);
            }
            return !res   ? unavailable()
                   : !*res ? invalid_token(NGX_HTTP_PAIRGUARD_BEARER_INVALID)
                           : answer_t{200, "{\"revoked\":true}", 0, {}};
        };
    }
    bool sent = ngx_http_pairguard_call(ctx, sc, [r, decide](bool ok, const Reply& reply) {
        try {
            ngx_http_pairguard_answer_later(r, ok ? decide(reply) : unavailable());
        } catch (const std::exception& e) {
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "pairguard: %s", e.what());
            ngx_http_pairguard_answer_later(
                r, answer_t{NGX_HTTP_INTERNAL_SERVER_ERROR, pairguard::render_error("internal_error"), 0, {}});
        }
    });
    if (!sent) {
        ngx_http_pairguard_answer_later(r, unavailable());
    }
}

// ---- directives ------------------------------------------------------------------------

char* ngx_http_pairguard_auth_policy(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    try {
        auto* mcf = static_cast<ngx_http_pairguard_main_conf_t*>(conf);
        if (mcf->auth != nullptr) {
            return const_cast<char*>("is duplicate");
        }
        auto* value = static_cast<ngx_str_t*>(cf->args->elts);
        std::vector<std::string_view> args;
        for (ngx_uint_t i = 1; i < cf->args->nelts; i++) {
            args.push_back(view(value[i]));
        }
        pairguard::AuthPolicy policy;
        std::string err = pairguard::parse_auth_policy_args(args, policy);
        if (!err.empty()) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s", err.c_str());
            return const_cast<char*>(static_cast<const char*>(NGX_CONF_ERROR));
        }
        mcf->auth = ngx_pairguard_pool_new<pairguard::AuthPolicy>(cf->pool, policy);
        return mcf->auth ? NGX_CONF_OK : const_cast<char*>(static_cast<const char*>(NGX_CONF_ERROR));
    } catch (const std::exception& e) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s", e.what());
        return const_cast<char*>(static_cast<const char*>(NGX_CONF_ERROR));
    }
}

char* ngx_http_pairguard_thread_pool(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    auto* mcf = static_cast<ngx_http_pairguard_main_conf_t*>(conf);
    if (mcf->thread_pool_name.len != 0) {
        return const_cast<char*>("is duplicate");
    }
    mcf->thread_pool_name = static_cast<ngx_str_t*>(cf->args->elts)[1];
    return NGX_CONF_OK;
}

char* ngx_http_pairguard_auth(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    auto* lcf = static_cast<ngx_http_pairguard_loc_conf_t*>(conf);
    auto* mcf = static_cast<ngx_http_pairguard_main_conf_t*>(ngx_http_conf_get_module_main_conf(cf, ngx_http_pairguard_module));
    if (lcf->auth_op != 0) {
        return const_cast<char*>("is duplicate");
    }
    ngx_str_t* value = static_cast<ngx_str_t*>(cf->args->elts);
    static const struct {
        const char* name;
        ngx_uint_t op;
    } ops[] = {{"password", NGX_HTTP_PAIRGUARD_AUTH_PASSWORD},
               {"session", NGX_HTTP_PAIRGUARD_AUTH_SESSION},
               {"challenge", NGX_HTTP_PAIRGUARD_AUTH_CHALLENGE},
               {"verify", NGX_HTTP_PAIRGUARD_AUTH_VERIFY},
               {"haystack", NGX_HTTP_PAIRGUARD_AUTH_HAYSTACK}};
    for (const auto& op : ops) {
        if (view(value[1]) == op.name) {
            lcf->auth_op = op.op;
        }
    }
    if (lcf->auth_op == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\": password, session, challenge, verify or haystack", &value[1]);
        return const_cast<char*>(static_cast<const char*>(NGX_CONF_ERROR));
    }
    if (lcf->auth_op != NGX_HTTP_PAIRGUARD_AUTH_HAYSTACK) {
        // haystack answers in PREACCESS, so that its location can proxy_pass
        auto* clcf = static_cast<ngx_http_core_loc_conf_t*>(ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module));
        clcf->handler = ngx_http_pairguard_auth_content;
    }
    mcf->used = 1;
    return NGX_CONF_OK;
}

char* ngx_http_pairguard_auth_require(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    auto* lcf = static_cast<ngx_http_pairguard_loc_conf_t*>(conf);
    auto* mcf = static_cast<ngx_http_pairguard_main_conf_t*>(ngx_http_conf_get_module_main_conf(cf, ngx_http_pairguard_module));
    if (lcf->auth_require != NGX_CONF_UNSET) {
        return const_cast<char*>("is duplicate");
    }
    lcf->auth_require = 1;
    mcf->used = 1;
    return NGX_CONF_OK;
}

ngx_int_t ngx_http_pairguard_auth_init(ngx_conf_t* cf) {
    auto* mcf = static_cast<ngx_http_pairguard_main_conf_t*>(ngx_http_conf_get_module_main_conf(cf, ngx_http_pairguard_module));
    if (mcf->auth == nullptr) {
        try {
            mcf->auth = ngx_pairguard_pool_new<pairguard::AuthPolicy>(cf->pool);
        } catch (const std::exception&) {
            mcf->auth = nullptr;
        }
        if (mcf->auth == nullptr) {
            return NGX_ERROR;
        }
    }
    if (mcf->thread_pool_name.len == 0) {
        ngx_str_set(&mcf->thread_pool_name, "default");
    }
    // "default" exists without configuration (32 threads, queue 65536);
    // any other name must be defined by a `thread_pool` directive
    mcf->thread_pool = ngx_thread_pool_add(cf, &mcf->thread_pool_name);
    if (mcf->thread_pool == nullptr) {
        return NGX_ERROR;
    }
    return NGX_OK;
}

void ngx_http_pairguard_auth_event(std::string_view message) {
    try {
        auto ev = pairguard::parse_auth_event(message);
        if (!ev) {
            return;
        }
        if (ev->kind == pairguard::AuthEventKind::revoked_session) {
            session_cache.erase(ev->token_hash);
            return;
        }
        session_cache.erase_if([&](const session_entry_t& e) { return e.user_tag == ev->user_tag; });
    } catch (const std::exception& e) {
        // the cache cannot be trusted any more
        session_cache.clear();
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0, "pairguard: %s", e.what());
    }
}

void ngx_http_pairguard_auth_resync() {
    session_cache.clear();
}
