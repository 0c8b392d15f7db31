// Authentication at the edge (SPEC section 4): the endpoints of
// `pairguard_auth` (password, session, challenge, verify as content
// handlers; haystack in PREACCESS so that its location can proxy_pass),
// `pairguard_auth_require` with its per-worker session cache kept honest by
// the events channel, and Argon2id in an nginx thread pool.
//
// Everything that decides lives in src/core (auth_store, scram, signature,
// password) and src/lua/auth_*.lua, shared with pairguardctl; this file only
// moves requests, replies and thread tasks.

#include <openssl/crypto.h>

#include <unordered_map>

#include "../core/scram.hpp"
#include "../core/session.hpp"
#include "../core/signature.hpp"
#include "ngx_http_pairguard.h"

#if !(NGX_THREADS)
#error "pairguard needs nginx built --with-threads (Argon2id runs in a thread pool)"
#endif

namespace {

using pairguard::HttpAnswer;
using pairguard::Reply;
using pairguard::StoreCall;

using ctx_t = ngx_http_pairguard_ctx_t;
using auth_e = ctx_t::auth_e;

// ---- plumbing -----------------------------------------------------------------

ngx_http_pairguard_main_conf_t* main_conf(ngx_http_request_t* r) {
    return static_cast<ngx_http_pairguard_main_conf_t*>(ngx_http_get_module_main_conf(r, ngx_http_pairguard_module));
}

ngx_http_pairguard_loc_conf_t* loc_conf(ngx_http_request_t* r) {
    return static_cast<ngx_http_pairguard_loc_conf_t*>(ngx_http_get_module_loc_conf(r, ngx_http_pairguard_module));
}

std::string_view view(const ngx_str_t& s) {
    return std::string_view(reinterpret_cast<const char*>(s.data), s.len);
}

bool add_header(ngx_http_request_t* r, const char* name, const std::string& value) {
    auto* h = static_cast<ngx_table_elt_t*>(ngx_list_push(&r->headers_out.headers));
    if (h == nullptr) {
        return false;
    }
    auto* data = static_cast<u_char*>(ngx_pnalloc(r->pool, value.size()));
    if (data == nullptr && !value.empty()) {
        return false;
    }
    ngx_memcpy(data, value.data(), value.size());
    h->hash = 1;
    h->key = ngx_pairguard_str(name);
    h->value.data = data;
    h->value.len = value.size();
    return true;
}

ngx_int_t send(ngx_http_request_t* r, int status, const std::string& body, const char* header = nullptr,
               const std::string& value = {}) {
    if (header != nullptr && !add_header(r, header, value)) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    if (body.empty()) {
        // a bare status (Haystack failures): no Content-Type, no body buffer
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        r->headers_out.status = static_cast<ngx_uint_t>(status);
        r->headers_out.content_length_n = 0;
        ngx_int_t rc = ngx_http_send_header(r);
        if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
            return rc;
        }
        return ngx_http_send_special(r, NGX_HTTP_LAST);
    }
    return ngx_http_pairguard_send_json(r, static_cast<ngx_uint_t>(status), body, 0);
}

// Answers from a Redis callback or a thread task's completion.
void answer(ngx_http_request_t* r, int status, const std::string& body, const char* header = nullptr,
            const std::string& value = {}) {
    ngx_connection_t* c = r->connection;
    ngx_http_finalize_request(r, send(r, status, body, header, value));
    ngx_http_run_posted_requests(c);
}

void answer(ngx_http_request_t* r, const HttpAnswer& a) {
    answer(r, a.status, a.body);
}

const HttpAnswer& unavailable() {
    static const HttpAnswer a{503, pairguard::render_error("store_unavailable"), 0};
    return a;
}

// A wrong password, a bad signature, a locked user or address, an unknown
// or revoked user: one answer, so that the caller cannot tell them apart.
const HttpAnswer& refused() {
    static const HttpAnswer a{403, pairguard::render_error("invalid_credentials"), 0};
    return a;
}

const HttpAnswer& invalid_request(const std::string& message) {
    thread_local HttpAnswer a;
    a = HttpAnswer{400, pairguard::render_invalid_request(message), 0};
    return a;
}

// Several calls at once; `done` runs when all have answered (ok: all did).
void call_all(ctx_t* ctx, const std::vector<StoreCall>& calls,
              std::function<void(bool ok, const std::vector<Reply>&)> done) {
    struct acc_t {
        std::vector<Reply> replies;
        size_t outstanding = 0;
        bool failed = false;
        std::function<void(bool, const std::vector<Reply>&)> done;
    };
    auto acc = std::make_shared<acc_t>();
    acc->replies.resize(calls.size());
    acc->outstanding = calls.size();
    acc->done = std::move(done);
    for (size_t i = 0; i < calls.size(); i++) {
        bool sent = ngx_http_pairguard_call(ctx, calls[i], [acc, i](bool ok, const Reply& reply) {
            acc->replies[i] = reply;
            acc->failed = acc->failed || !ok;
            if (--acc->outstanding == 0) {
                acc->done(!acc->failed, acc->replies);
            }
        });
        if (!sent) {
            acc->failed = true;
            if (--acc->outstanding == 0) {
                acc->done(false, acc->replies);
            }
        }
    }
}

std::string client_address(ngx_http_request_t* r) {
    return std::string(view(r->connection->addr_text));
}

std::string host(ngx_http_request_t* r) {
    ngx_str_t name = ngx_string("host");
    ngx_http_variable_value_t* v = ngx_http_get_variable(r, &name, ngx_hash_key(name.data, name.len));
    if (v == nullptr || v->not_found) {
        return {};
    }
    return std::string(reinterpret_cast<const char*>(v->data), v->len);
}

// The Authorization header, parsed the Haystack way (which also reads
// `Bearer TOKEN`). nullopt without a header.
std::optional<std::optional<pairguard::haystack::Authorization>> authorization(ngx_http_request_t* r) {
    if (r->headers_in.authorization == nullptr) {
        return std::nullopt;
    }
    return pairguard::haystack::parse_authorization(view(r->headers_in.authorization->value));
}

int64_t now_ms() {
    ngx_time_t* tp = ngx_timeofday();
    return static_cast<int64_t>(tp->sec) * 1000 + static_cast<int64_t>(tp->msec);
}

void log_failure_locks(ngx_http_request_t* r, const std::vector<Reply>& replies) {
    static const char* what[] = {"user", "address"};
    for (size_t i = 0; i < replies.size() && i < 2; i++) {
        auto lock = pairguard::decode_failure(replies[i]);
        if (lock && *lock > 0) {
            ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0, "pairguard: auth lockout start, %s, %Ls", what[i],
                          pairguard::retry_after_seconds(*lock));
        }
    }
}

// A failed proof counts for the user and for the address; the answer waits
// for both, so that the caller's next attempt sees them.
void fail(ngx_http_request_t* r, ctx_t* ctx, const std::string& user, const char* why) {
    ngx_http_pairguard_main_conf_t* mcf = main_conf(r);
    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0, "pairguard: auth refused (%s)", why);
    std::vector<StoreCall> calls{
        pairguard::make_user_failure(*mcf->keys, view(mcf->prefix), user, *mcf->auth),
        pairguard::make_address_failure(*mcf->keys, view(mcf->prefix), client_address(r), *mcf->auth)};
    call_all(ctx, calls, [r](bool, const std::vector<Reply>& replies) {
        log_failure_locks(r, replies);
        answer(r, refused());
    });
}

// ---- the session cache -----------------------------------------------------------

constexpr ngx_msec_t kSessionCacheMs = 1000;  // the bound when an event is missed
constexpr size_t kSessionCacheMax = 65536;

struct session_entry_t {
    bool valid;
    std::string user;
    std::string user_tag;
    int64_t expires_ms;  // Unix ms
    ngx_msec_t until;    // cached until (ngx_current_msec)
};

// Per worker, keyed by token hash; only this worker's event loop touches it.
std::unordered_map<std::string, session_entry_t> session_cache;

void remember_session(const std::string& thash, session_entry_t e) {
    if (session_cache.size() >= kSessionCacheMax) {
        session_cache.clear();  // crude, and rare: every entry is one Redis call away
    }
    e.until = ngx_current_msec + kSessionCacheMs;
    session_cache.insert_or_assign(thash, std::move(e));
}

// The token of a Bearer header (either form); empty when there is none.
std::string bearer_token(const pairguard::haystack::Authorization& a) {
    return a.kind == pairguard::haystack::Kind::bearer ? a.auth_token : std::string();
}

// ---- pairguard_auth_require (and the bearer side of haystack) ---------------------

void decided(ctx_t* ctx) {
    ngx_http_request_t* r = ctx->request;
    r->write_event_handler = ngx_http_core_run_phases;
    ngx_post_event(r->connection->write, &ngx_posted_events);
}

void decide_answer(ctx_t* ctx, int status, std::string body, const char* header = nullptr, std::string value = {}) {
    ctx->auth = auth_e::answer;
    ctx->auth_status = status;
    ctx->auth_body = std::move(body);
    ctx->auth_header_name = header != nullptr ? header : "";
    ctx->auth_header_value = std::move(value);
}

ngx_int_t verdict(ngx_http_request_t* r, ctx_t* ctx) {
    if (ctx->auth == auth_e::allowed) {
        return NGX_DECLINED;
    }
    // answered; never decided again
    ctx->auth = auth_e::unchecked;
    ngx_int_t rc = send(r, ctx->auth_status, ctx->auth_body,
                        ctx->auth_header_name.empty() ? nullptr : ctx->auth_header_name.c_str(),
                        ctx->auth_header_value);
    ngx_http_finalize_request(r, rc);
    return NGX_DONE;
}

void refuse_bearer(ctx_t* ctx) {
    decide_answer(ctx, 403, pairguard::render_error("invalid_token"));
}

// Checks a session token: from the cache, else one Redis call. Returns
// NGX_AGAIN while waiting.
ngx_int_t check_bearer(ngx_http_request_t* r, ctx_t* ctx, const std::string& token) {
    ngx_http_pairguard_main_conf_t* mcf = main_conf(r);
    auto tag = pairguard::token_user_tag(token);
    if (!tag) {
        refuse_bearer(ctx);
        return verdict(r, ctx);
    }
    std::string thash = pairguard::token_hash(*mcf->keys, "session", token);
    auto it = session_cache.find(thash);
    if (it != session_cache.end() && it->second.until > ngx_current_msec) {
        if (it->second.valid && it->second.expires_ms > now_ms()) {
            ctx->auth = auth_e::allowed;
            ctx->auth_user = it->second.user;
        } else {
            refuse_bearer(ctx);
        }
        return verdict(r, ctx);
    }
    std::string utag(*tag);
    StoreCall sc = pairguard::make_session_get(*mcf->keys, view(mcf->prefix), token);
    bool sent = ngx_http_pairguard_call(ctx, sc, [ctx, thash, utag](bool ok, const Reply& reply) {
        if (!ok) {
            decide_answer(ctx, unavailable().status, unavailable().body);
            decided(ctx);
            return;
        }
        pairguard::SessionInfo s = pairguard::decode_session_get(reply);
        if (!s.valid) {
            decide_answer(ctx, unavailable().status, unavailable().body);
        } else {
            remember_session(thash, session_entry_t{s.found, s.user, utag, s.expires_ms, 0});
            if (s.found) {
                ctx->auth = auth_e::allowed;
                ctx->auth_user = s.user;
            } else {
                refuse_bearer(ctx);
            }
        }
        decided(ctx);
    });
    if (!sent) {
        decide_answer(ctx, unavailable().status, unavailable().body);
        return verdict(r, ctx);
    }
    ctx->auth = auth_e::waiting;
    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_request_empty_handler;
    return NGX_AGAIN;
}

ngx_int_t haystack_phase(ngx_http_request_t* r, ctx_t* ctx);

}  // namespace

ngx_int_t ngx_http_pairguard_auth_access(ngx_http_request_t* r) noexcept {
    try {
        ngx_http_pairguard_loc_conf_t* lcf = loc_conf(r);
        bool haystack = lcf->auth_op == NGX_HTTP_PAIRGUARD_AUTH_HAYSTACK;
        if ((!lcf->auth_require && !haystack) || r != r->main) {
            return NGX_DECLINED;
        }
        ctx_t* ctx = ngx_http_pairguard_get_or_create_ctx(r);
        if (ctx == nullptr) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        if (ctx->auth == auth_e::waiting) {
            return NGX_AGAIN;
        }
        if (ctx->auth != auth_e::unchecked) {
            return verdict(r, ctx);
        }
        if (haystack) {
            return haystack_phase(r, ctx);
        }
        auto a = authorization(r);
        if (!a || !*a || (*a)->kind != pairguard::haystack::Kind::bearer) {
            decide_answer(ctx, 401, pairguard::render_error("unauthorized"), "WWW-Authenticate", "Bearer");
            return verdict(r, ctx);
        }
        return check_bearer(r, ctx, bearer_token(**a));
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "pairguard: %s", e.what());
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}

namespace {

// ---- password: Argon2id in the thread pool ------------------------------------------

struct password_job_t {
    ngx_http_request_t* r = nullptr;
    ctx_t* ctx = nullptr;
    std::string user;
    std::string stored;    // PHC string; empty: dummy verification
    std::string password;  // wiped once used
    pairguard::Argon2Params params;
    pairguard::PasswordCheck result = pairguard::PasswordCheck::mismatch;
    std::string rehash;
    bool failed = false;
    bool haystack = false;  // PLAINTEXT in the haystack exchange (PREACCESS)

    ~password_job_t() { OPENSSL_cleanse(password.data(), password.size()); }
};

// In a pool thread: no nginx call, no exception out.
void password_thread(void* data, ngx_log_t*) {
    auto* job = *static_cast<password_job_t**>(data);
    try {
        if (job->stored.empty()) {
            job->result = pairguard::verify_password_dummy(job->password, job->params);
        } else {
            job->result = pairguard::verify_password(job->stored, job->password);
            if (job->result == pairguard::PasswordCheck::ok && pairguard::needs_rehash(job->stored, job->params)) {
                job->rehash = pairguard::hash_password(job->password, job->params);
            }
        }
    } catch (...) {
        job->failed = true;
    }
    OPENSSL_cleanse(job->password.data(), job->password.size());
}

void issue_session(ngx_http_request_t* r, ctx_t* ctx, const std::string& user, pairguard::SessionCreate s) {
    ngx_http_pairguard_main_conf_t* mcf = main_conf(r);
    s.token = pairguard::generate_token(pairguard::auth_user_tag(*mcf->keys, user));
    s.ttl_ms = mcf->auth->session_ttl_ms;
    std::string token = s.token;
    const char* method = pairguard::auth_method_name(s.method);
    bool sent = ngx_http_pairguard_call(ctx, pairguard::make_session_create(*mcf->keys, view(mcf->prefix), user, s),
                     [r, ctx, token, user, method](bool ok, const Reply& reply) {
                         if (!ok) {
                             answer(r, unavailable());
                             return;
                         }
                         pairguard::SessionCreated c = pairguard::decode_session_create(reply);
                         if (!c.valid) {
                             answer(r, unavailable());
                         } else if (!c.ok) {
                             // the user went (or was revoked, or locked) meanwhile
                             fail(r, ctx, user, "session refused");
                         } else {
                             ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0, "pairguard: auth login, method %s",
                                           method);
                             answer(r, 200, pairguard::render_token(token, c.expires_ms / 1000));
                         }
                     });
    if (!sent) {
        answer(r, unavailable());
    }
}

void haystack_plaintext_done(password_job_t* job);

void password_done(ngx_event_t* ev) noexcept {
    auto* job = static_cast<password_job_t*>(ev->data);
    ngx_http_request_t* r = job->r;
    ngx_connection_t* c = r->connection;
    r->main->blocked--;
    try {
        if (c->error) {
            // the client went away meanwhile: nginx put off closing the
            // request while the thread held it
            ngx_http_finalize_request(r, NGX_ERROR);
            ngx_http_run_posted_requests(c);
            return;
        }
        if (job->haystack) {
            haystack_plaintext_done(job);
            return;
        }
        if (job->failed) {
            ngx_log_error(NGX_LOG_ERR, c->log, 0, "pairguard: password verification failed (resources)");
            answer(r, 500, pairguard::render_error("internal_error"));
            return;
        }
        if (job->result != pairguard::PasswordCheck::ok) {
            if (job->result == pairguard::PasswordCheck::invalid_hash) {
                ngx_log_error(NGX_LOG_WARN, c->log, 0, "pairguard: stored password hash refused");
            }
            fail(r, job->ctx, job->user, "password");
            return;
        }
        pairguard::SessionCreate s;
        s.method = pairguard::AuthMethod::password;
        if (!job->rehash.empty()) {
            s.rehash_from = job->stored;
            s.rehash_to = job->rehash;
        }
        issue_session(r, job->ctx, job->user, std::move(s));
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ALERT, c->log, 0, "pairguard: %s", e.what());
        answer(r, 500, pairguard::render_error("internal_error"));
    }
}

// Posts the Argon2id work; false when the pool's queue is full.
bool post_password_job(ngx_http_request_t* r, ctx_t* ctx, std::string user, std::string stored,
                       std::string password, bool haystack = false) {
    ngx_http_pairguard_main_conf_t* mcf = main_conf(r);
    auto* job = ngx_pairguard_pool_new<password_job_t>(r->pool);
    ngx_thread_task_t* task = ngx_thread_task_alloc(r->pool, sizeof(password_job_t*));
    if (job == nullptr || task == nullptr) {
        OPENSSL_cleanse(password.data(), password.size());
        return false;
    }
    job->r = r;
    job->ctx = ctx;
    job->user = std::move(user);
    job->stored = std::move(stored);
    job->password = std::move(password);
    job->params = mcf->auth->argon2;
    job->haystack = haystack;
    *static_cast<password_job_t**>(task->ctx) = job;
    task->handler = password_thread;
    task->event.data = job;
    task->event.handler = password_done;
    if (ngx_thread_task_post(mcf->thread_pool, task) != NGX_OK) {
        return false;
    }
    // keeps the request (and job, in its pool) alive until the thread is done
    r->main->blocked++;
    return true;
}

void do_password(ngx_http_request_t* r, ctx_t* ctx, const std::string& body) {
    pairguard::AuthInput in;
    std::string err = pairguard::parse_auth_body(body, in);
    if (err.empty() && in.password.empty()) {
        err = "\"password\" is missing";
    }
    if (!err.empty()) {
        answer(r, invalid_request(err));
        return;
    }
    ngx_http_pairguard_main_conf_t* mcf = main_conf(r);
    auto input = std::make_shared<pairguard::AuthInput>(std::move(in));
    std::vector<StoreCall> calls{
        pairguard::make_user_get(*mcf->keys, view(mcf->prefix), input->user),
        pairguard::make_address_lock_status(*mcf->keys, view(mcf->prefix), client_address(r))};
    call_all(ctx, calls, [r, ctx, input](bool ok, const std::vector<Reply>& replies) {
        pairguard::UserInfo u = ok ? pairguard::decode_user_get(replies[0]) : pairguard::UserInfo{};
        auto addr_lock = ok ? pairguard::decode_lock_ms(replies[1]) : std::nullopt;
        if (!u.valid || !addr_lock) {
            OPENSSL_cleanse(input->password.data(), input->password.size());
            answer(r, unavailable());
            return;
        }
        if (u.lock_ms > 0 || *addr_lock > 0) {
            // locked: the answer of a wrong password, without burning a thread on it
            OPENSSL_cleanse(input->password.data(), input->password.size());
            answer(r, refused());
            return;
        }
        std::string stored = u.exists && !u.revoked ? u.argon2 : std::string();
        if (!post_password_job(r, ctx, input->user, stored, std::move(input->password))) {
            answer(r, 503, pairguard::render_error("busy"));
        }
    });
}

// ---- session -----------------------------------------------------------------------

void do_session(ngx_http_request_t* r, ctx_t* ctx) {
    ngx_http_pairguard_main_conf_t* mcf = main_conf(r);
    auto a = authorization(r);
    if (!a || !*a || (*a)->kind != pairguard::haystack::Kind::bearer) {
        answer(r, 401, pairguard::render_error("unauthorized"), "WWW-Authenticate", "Bearer");
        return;
    }
    std::string token = bearer_token(**a);
    auto tag = pairguard::token_user_tag(token);
    if (!tag) {
        answer(r, 403, pairguard::render_error("invalid_token"));
        return;
    }
    if (r->method == NGX_HTTP_GET) {
        ngx_http_pairguard_call(ctx, pairguard::make_session_get(*mcf->keys, view(mcf->prefix), token),
             [r](bool ok, const Reply& reply) {
                 pairguard::SessionInfo s = ok ? pairguard::decode_session_get(reply) : pairguard::SessionInfo{};
                 if (!s.valid) {
                     answer(r, unavailable());
                 } else if (!s.found) {
                     answer(r, 403, pairguard::render_error("invalid_token"));
                 } else {
                     answer(r, 200, pairguard::render_session(s.user, s.expires_ms / 1000));
                 }
             })
            || (answer(r, unavailable()), true);
        return;
    }
    if (r->method == NGX_HTTP_POST) {
        std::string fresh = pairguard::generate_token(*tag);
        ngx_http_pairguard_call(ctx,
             pairguard::make_session_refresh(*mcf->keys, view(mcf->prefix), token, fresh,
                                             mcf->auth->session_ttl_ms),
             [r, fresh](bool ok, const Reply& reply) {
                 pairguard::SessionCreated c = ok ? pairguard::decode_session_refresh(reply)
                                                  : pairguard::SessionCreated{};
                 if (!c.valid) {
                     answer(r, unavailable());
                 } else if (!c.ok) {
                     answer(r, 403, pairguard::render_error("invalid_token"));
                 } else {
                     answer(r, 200, pairguard::render_token(fresh, c.expires_ms / 1000));
                 }
             })
            || (answer(r, unavailable()), true);
        return;
    }
    std::string thash = pairguard::token_hash(*mcf->keys, "session", token);
    ngx_http_pairguard_call(ctx, pairguard::make_session_revoke(*mcf->keys, view(mcf->prefix), token),
         [r, thash](bool ok, const Reply& reply) {
             auto res = ok ? pairguard::decode_session_revoke(reply) : std::nullopt;
             if (!res) {
                 answer(r, unavailable());
             } else if (!*res) {
                 answer(r, 403, pairguard::render_error("invalid_token"));
             } else {
                 session_cache.erase(thash);
                 answer(r, 200, "{\"revoked\":true}");
             }
         })
        || (answer(r, unavailable()), true);
}

// ---- challenge / verify -----------------------------------------------------------------

void do_challenge(ngx_http_request_t* r, ctx_t* ctx, const std::string& body) {
    pairguard::AuthInput in;
    std::string err = pairguard::parse_auth_body(body, in);
    if (!err.empty()) {
        answer(r, invalid_request(err));
        return;
    }
    ngx_http_pairguard_main_conf_t* mcf = main_conf(r);
    std::string seed = pairguard::generate_challenge_seed();
    std::string nonce = pairguard::challenge_nonce(*mcf->keys, pairguard::auth_user_tag(*mcf->keys, in.user), seed);
    int64_t ttl = mcf->auth->challenge_ttl_ms;
    ngx_http_pairguard_call(ctx, pairguard::make_challenge_create(*mcf->keys, view(mcf->prefix), in.user, seed, ttl),
         [r, nonce, ttl](bool ok, const Reply& reply) {
             auto res = ok ? pairguard::decode_challenge_create(reply) : std::nullopt;
             if (!res) {
                 answer(r, unavailable());
             } else {
                 answer(r, 200, pairguard::render_challenge(nonce, (ttl + 999) / 1000));
             }
         })
        || (answer(r, unavailable()), true);
}

void do_verify(ngx_http_request_t* r, ctx_t* ctx, const std::string& body) {
    pairguard::AuthInput in;
    std::string err = pairguard::parse_auth_body(body, in);
    if (err.empty() && in.signature.empty()) {
        err = "\"signature\" is missing";
    }
    if (err.empty() && in.signature.size() > pairguard::kSignatureMaxChars) {
        err = "\"signature\" is too long";
    }
    if (!err.empty()) {
        answer(r, invalid_request(err));
        return;
    }
    ngx_http_pairguard_main_conf_t* mcf = main_conf(r);
    auto input = std::make_shared<pairguard::AuthInput>(std::move(in));
    std::string h = host(r);
    std::vector<StoreCall> calls{
        pairguard::make_challenge_list(*mcf->keys, view(mcf->prefix), input->user),
        pairguard::make_address_lock_status(*mcf->keys, view(mcf->prefix), client_address(r))};
    call_all(ctx, calls, [r, ctx, input, h](bool ok, const std::vector<Reply>& replies) {
        pairguard::ChallengeState s = ok ? pairguard::decode_challenge_list(replies[0]) : pairguard::ChallengeState{};
        auto addr_lock = ok ? pairguard::decode_lock_ms(replies[1]) : std::nullopt;
        if (!s.valid || !addr_lock) {
            answer(r, unavailable());
            return;
        }
        if (s.lock_ms > 0 || *addr_lock > 0) {
            answer(r, refused());
            return;
        }
        std::optional<pairguard::PublicKey> key;
        if (s.exists && !s.revoked && !s.key_pem.empty()) {
            key = pairguard::PublicKey::from_pem(s.key_pem);
        }
        std::string matched;
        if (key) {
            ngx_http_pairguard_main_conf_t* mcf = main_conf(r);
            std::string utag = pairguard::auth_user_tag(*mcf->keys, input->user);
            for (const std::string& seed : s.seeds) {
                std::string nonce = pairguard::challenge_nonce(*mcf->keys, utag, seed);
                if (pairguard::verify_auth_signature(*key, h, input->user, nonce, input->signature)) {
                    matched = seed;
                    break;
                }
            }
        }
        if (matched.empty()) {
            fail(r, ctx, input->user, "signature");
            return;
        }
        pairguard::SessionCreate sc;
        sc.method = pairguard::AuthMethod::challenge;
        sc.challenge_seed = matched;
        sc.key_fp = s.key_fp;
        issue_session(r, ctx, input->user, std::move(sc));
    });
}

// ---- haystack (PREACCESS) ----------------------------------------------------------

// docHaystack/Auth: every failure is a bare 403
void haystack_forbidden(ctx_t* ctx) {
    decide_answer(ctx, 403, std::string());
}

// A failed SCRAM proof: counted like a wrong password, then 403.
void haystack_fail(ctx_t* ctx, const std::string& user, const char* why) {
    ngx_http_request_t* r = ctx->request;
    ngx_http_pairguard_main_conf_t* mcf = main_conf(r);
    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0, "pairguard: auth refused (haystack: %s)", why);
    std::vector<StoreCall> calls{
        pairguard::make_user_failure(*mcf->keys, view(mcf->prefix), user, *mcf->auth),
        pairguard::make_address_failure(*mcf->keys, view(mcf->prefix), client_address(r), *mcf->auth)};
    call_all(ctx, calls, [ctx](bool, const std::vector<Reply>& replies) {
        log_failure_locks(ctx->request, replies);
        haystack_forbidden(ctx);
        decided(ctx);
    });
}

void haystack_unavailable(ctx_t* ctx) {
    decide_answer(ctx, unavailable().status, unavailable().body);
    decided(ctx);
}

void haystack_hello(ctx_t* ctx, const std::string& user) {
    ngx_http_request_t* r = ctx->request;
    ngx_http_pairguard_main_conf_t* mcf = main_conf(r);
    std::string t1 = pairguard::generate_token(pairguard::auth_user_tag(*mcf->keys, user));
    // {"user": ...} as JSON, through the handshake's own serialiser's shape
    pairguard::scram::Handshake h;
    h.user = user;
    h.expires_ms = 0;  // marks a HELLO entry: no SCRAM state yet
    std::string value = pairguard::scram::serialize(h);
    bool sent = ngx_http_pairguard_call(ctx, pairguard::make_handshake_put(*mcf->keys, view(mcf->prefix), t1, value,
                                                       mcf->auth->challenge_ttl_ms),
                     [ctx, t1](bool ok, const Reply&) {
                         if (!ok) {
                             haystack_unavailable(ctx);
                             return;
                         }
                         decide_answer(ctx, 401, pairguard::render_error("unauthorized"), "WWW-Authenticate",
                                       pairguard::haystack::hello_challenge(t1));
                         decided(ctx);
                     });
    if (!sent) {
        haystack_unavailable(ctx);
    }
}

void haystack_first(ctx_t* ctx, const pairguard::scram::Handshake& hello, const std::string& data) {
    ngx_http_request_t* r = ctx->request;
    ngx_http_pairguard_main_conf_t* mcf = main_conf(r);
    pairguard::scram::ClientFirst first;
    if (pairguard::scram::parse_client_first(data, first) != pairguard::scram::Error::none
        || first.user != hello.user) {
        haystack_fail(ctx, hello.user, "client-first");
        return;
    }
    std::string user = hello.user;
    std::vector<StoreCall> calls{
        pairguard::make_user_get(*mcf->keys, view(mcf->prefix), user),
        pairguard::make_address_lock_status(*mcf->keys, view(mcf->prefix), client_address(r))};
    call_all(ctx, calls, [ctx, first, user](bool ok, const std::vector<Reply>& replies) {
             ngx_http_request_t* r = ctx->request;
             ngx_http_pairguard_main_conf_t* mcf = main_conf(r);
             pairguard::UserInfo u = ok ? pairguard::decode_user_get(replies[0]) : pairguard::UserInfo{};
             auto addr_lock = ok ? pairguard::decode_lock_ms(replies[1]) : std::nullopt;
             if (!u.valid || !addr_lock) {
                 haystack_unavailable(ctx);
                 return;
             }
             std::optional<pairguard::scram::Credentials> creds;
             // a locked user or address runs on fake credentials: it fails
             // at the proof, exactly like a wrong password
             bool known = u.exists && !u.revoked && u.lock_ms == 0 && *addr_lock == 0;
             if (known && !u.scram.empty()) {
                 creds = pairguard::scram::parse_credentials(u.scram);
             }
             known = known && creds.has_value();
             if (!creds) {
                 creds = pairguard::scram::fake_credentials(*mcf->keys, user);
             }
             int64_t ttl = mcf->auth->challenge_ttl_ms;
             pairguard::scram::Handshake h = pairguard::scram::start(
                 first, *creds, known, pairguard::scram::generate_server_nonce(), now_ms() + ttl);
             std::string t2 = pairguard::generate_token(pairguard::auth_user_tag(*mcf->keys, user));
             std::string sf = h.server_first;
             bool sent = ngx_http_pairguard_call(ctx,
                              pairguard::make_handshake_put(*mcf->keys, view(mcf->prefix), t2,
                                                            pairguard::scram::serialize(h), ttl),
                              [ctx, t2, sf](bool ok, const Reply&) {
                                  if (!ok) {
                                      haystack_unavailable(ctx);
                                      return;
                                  }
                                  decide_answer(ctx, 401, pairguard::render_error("unauthorized"),
                                                "WWW-Authenticate",
                                                pairguard::haystack::server_first_challenge(t2, sf));
                                  decided(ctx);
                              });
             if (!sent) {
                 haystack_unavailable(ctx);
             }
         });
}

void haystack_final(ctx_t* ctx, const pairguard::scram::Handshake& h, const std::string& data) {
    ngx_http_request_t* r = ctx->request;
    std::string server_final;
    pairguard::scram::Error e = pairguard::scram::finish(h, data, now_ms(), server_final);
    if (e != pairguard::scram::Error::none) {
        haystack_fail(ctx, h.user, pairguard::scram::error_name(e));
        return;
    }
    ngx_http_pairguard_main_conf_t* mcf = main_conf(r);
    pairguard::SessionCreate s;
    s.method = pairguard::AuthMethod::haystack;
    s.token = pairguard::generate_token(pairguard::auth_user_tag(*mcf->keys, h.user));
    s.ttl_ms = mcf->auth->session_ttl_ms;
    std::string token = s.token;
    std::string user = h.user;
    ngx_http_pairguard_call(ctx, pairguard::make_session_create(*mcf->keys, view(mcf->prefix), user, s),
         [ctx, token, server_final, user](bool ok, const Reply& reply) {
             pairguard::SessionCreated c = ok ? pairguard::decode_session_create(reply) : pairguard::SessionCreated{};
             if (!c.valid) {
                 haystack_unavailable(ctx);
                 return;
             }
             if (!c.ok) {
                 haystack_fail(ctx, user, "session refused");
                 return;
             }
             ngx_log_error(NGX_LOG_NOTICE, ctx->request->connection->log, 0,
                           "pairguard: auth login, method haystack");
             decide_answer(ctx, 200, "{}", "Authentication-Info",
                           pairguard::haystack::authentication_info(token, server_final));
             decided(ctx);
         })
        || (haystack_unavailable(ctx), true);
}

// PLAINTEXT: the password checked like `pairguard_auth password` does, only
// over TLS unless plaintext=on.
void haystack_plaintext(ctx_t* ctx, const std::string& user, std::string password) {
    ngx_http_request_t* r = ctx->request;
    ngx_http_pairguard_main_conf_t* mcf = main_conf(r);
    auto pw = std::make_shared<std::string>(std::move(password));
    std::vector<StoreCall> calls{
        pairguard::make_user_get(*mcf->keys, view(mcf->prefix), user),
        pairguard::make_address_lock_status(*mcf->keys, view(mcf->prefix), client_address(r))};
    call_all(ctx, calls, [ctx, user, pw](bool ok, const std::vector<Reply>& replies) {
        pairguard::UserInfo u = ok ? pairguard::decode_user_get(replies[0]) : pairguard::UserInfo{};
        auto addr_lock = ok ? pairguard::decode_lock_ms(replies[1]) : std::nullopt;
        if (!u.valid || !addr_lock) {
            OPENSSL_cleanse(pw->data(), pw->size());
            haystack_unavailable(ctx);
            return;
        }
        if (u.lock_ms > 0 || *addr_lock > 0) {
            OPENSSL_cleanse(pw->data(), pw->size());
            haystack_forbidden(ctx);
            decided(ctx);
            return;
        }
        std::string stored = u.exists && !u.revoked ? u.argon2 : std::string();
        if (!post_password_job(ctx->request, ctx, user, stored, std::move(*pw), true)) {
            decide_answer(ctx, 503, pairguard::render_error("busy"));
            decided(ctx);
        }
    });
}

void haystack_plaintext_done(password_job_t* job) {
    ctx_t* ctx = job->ctx;
    if (job->failed) {
        decide_answer(ctx, 500, pairguard::render_error("internal_error"));
        decided(ctx);
        return;
    }
    if (job->result != pairguard::PasswordCheck::ok) {
        haystack_fail(ctx, job->user, "plaintext password");
        return;
    }
    ngx_http_pairguard_main_conf_t* mcf = main_conf(ctx->request);
    pairguard::SessionCreate s;
    s.method = pairguard::AuthMethod::haystack;
    s.token = pairguard::generate_token(pairguard::auth_user_tag(*mcf->keys, job->user));
    s.ttl_ms = mcf->auth->session_ttl_ms;
    if (!job->rehash.empty()) {
        s.rehash_from = job->stored;
        s.rehash_to = job->rehash;
    }
    std::string token = s.token;
    std::string user = job->user;
    ngx_http_pairguard_call(ctx, pairguard::make_session_create(*mcf->keys, view(mcf->prefix), user, s),
         [ctx, token, user](bool ok, const Reply& reply) {
             pairguard::SessionCreated c = ok ? pairguard::decode_session_create(reply) : pairguard::SessionCreated{};
             if (!c.valid) {
                 haystack_unavailable(ctx);
             } else if (!c.ok) {
                 haystack_fail(ctx, user, "session refused");
             } else {
                 ngx_log_error(NGX_LOG_NOTICE, ctx->request->connection->log, 0,
                               "pairguard: auth login, method haystack plaintext");
                 decide_answer(ctx, 200, "{}", "Authentication-Info", "authToken=" + token);
                 decided(ctx);
             }
         })
        || (haystack_unavailable(ctx), true);
}

// Waits for callbacks: every decision from here on goes through decided(),
// which re-runs the phases (also when it comes synchronously).
void wait_for_decision(ngx_http_request_t* r, ctx_t* ctx) {
    ctx->auth = auth_e::waiting;
    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_request_empty_handler;
}

ngx_int_t haystack_phase(ngx_http_request_t* r, ctx_t* ctx) {
    ngx_http_pairguard_main_conf_t* mcf = main_conf(r);
    auto a = authorization(r);
    if (!a) {
        decide_answer(ctx, 401, pairguard::render_error("unauthorized"), "WWW-Authenticate", "HELLO");
        return verdict(r, ctx);
    }
    if (!*a) {
        decide_answer(ctx, 400, pairguard::render_invalid_request("malformed Authorization header"));
        return verdict(r, ctx);
    }
    const pairguard::haystack::Authorization& auth = **a;
    using K = pairguard::haystack::Kind;
    switch (auth.kind) {
    case K::bearer:
        return check_bearer(r, ctx, auth.auth_token);
    case K::hello:
        wait_for_decision(r, ctx);
        haystack_hello(ctx, auth.user);
        return NGX_AGAIN;
    case K::scram: {
        if (!pairguard::token_user_tag(auth.handshake_token)) {
            haystack_forbidden(ctx);
            return verdict(r, ctx);
        }
        wait_for_decision(r, ctx);
        std::string data = auth.data;
        bool sent = ngx_http_pairguard_call(ctx, pairguard::make_handshake_take(*mcf->keys, view(mcf->prefix), auth.handshake_token),
                         [ctx, data](bool ok, const Reply& reply) {
                             if (!ok) {
                                 haystack_unavailable(ctx);
                                 return;
                             }
                             auto value = pairguard::decode_handshake_take(reply);
                             auto h = value ? pairguard::scram::parse_handshake(*value) : std::nullopt;
                             if (!h) {
                                 haystack_forbidden(ctx);
                                 decided(ctx);
                             } else if (h->expires_ms == 0) {
                                 haystack_first(ctx, *h, data);
                             } else {
                                 haystack_final(ctx, *h, data);
                             }
                         });
        if (!sent) {
            haystack_unavailable(ctx);
        }
        return NGX_AGAIN;
    }
    case K::plaintext: {
        pairguard::Plaintext mode = mcf->auth->plaintext;
        bool tls = false;
#if (NGX_HTTP_SSL)
        tls = r->connection->ssl != nullptr;
#endif
        if (mode == pairguard::Plaintext::off || (mode == pairguard::Plaintext::tls_only && !tls)) {
            ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0, "pairguard: auth refused (haystack plaintext %s)",
                          mode == pairguard::Plaintext::off ? "is off" : "without TLS");
            haystack_forbidden(ctx);
            return verdict(r, ctx);
        }
        wait_for_decision(r, ctx);
        haystack_plaintext(ctx, auth.user, auth.password);
        return NGX_AGAIN;
    }
    default:
        // other schemes start over with HELLO
        decide_answer(ctx, 401, pairguard::render_error("unauthorized"), "WWW-Authenticate", "HELLO");
        return verdict(r, ctx);
    }
}

// ---- content handler ---------------------------------------------------------------

void auth_body_handler(ngx_http_request_t* r) noexcept {
    try {
        ctx_t* ctx = ngx_http_pairguard_get_or_create_ctx(r);
        if (ctx == nullptr) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }
        ngx_pairguard_redis_t* store = ngx_http_pairguard_store();
        if (store == nullptr || !store->accepting()) {
            answer(r, unavailable());
            return;
        }
        r->read_event_handler = ngx_http_test_reading;
        std::string body;
        if (!ngx_http_pairguard_body_text(r, body)) {
            answer(r, 413, pairguard::render_error("body_too_large"));
            return;
        }
        switch (loc_conf(r)->auth_op) {
        case NGX_HTTP_PAIRGUARD_AUTH_PASSWORD:
            do_password(r, ctx, body);
            break;
        case NGX_HTTP_PAIRGUARD_AUTH_SESSION:
            do_session(r, ctx);
            break;
        case NGX_HTTP_PAIRGUARD_AUTH_CHALLENGE:
            do_challenge(r, ctx, body);
            break;
        default:
            do_verify(r, ctx, body);
            break;
        }
        OPENSSL_cleanse(body.data(), body.size());
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "pairguard: %s", e.what());
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }
}

ngx_int_t auth_content_handler(ngx_http_request_t* r) noexcept {
    ngx_uint_t allowed =
        loc_conf(r)->auth_op == NGX_HTTP_PAIRGUARD_AUTH_SESSION ? NGX_HTTP_GET | NGX_HTTP_POST | NGX_HTTP_DELETE
                                                                : NGX_HTTP_POST;
    if (!(r->method & allowed)) {
        if (!add_header(r, "Allow", allowed == NGX_HTTP_POST ? "POST" : "GET, POST, DELETE")) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        ngx_http_discard_request_body(r);
        return ngx_http_pairguard_send_json(r, NGX_HTTP_NOT_ALLOWED, pairguard::render_error("method_not_allowed"), 0);
    }
    r->request_body_in_single_buf = 1;
    ngx_int_t rc = ngx_http_read_client_request_body(r, auth_body_handler);
    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }
    return NGX_DONE;
}

}  // namespace

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
        clcf->handler = auth_content_handler;
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
    auto ev = pairguard::parse_auth_event(message);
    if (!ev) {
        return;
    }
    if (ev->kind == pairguard::AuthEventKind::revoked_session) {
        session_cache.erase(ev->token_hash);
        return;
    }
    for (auto it = session_cache.begin(); it != session_cache.end();) {
        it = it->second.user_tag == ev->user_tag ? session_cache.erase(it) : std::next(it);
    }
}

void ngx_http_pairguard_auth_resync() {
    session_cache.clear();
}
