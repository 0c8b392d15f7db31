// The login pump and the JSON auth endpoints (`pairguard_auth password |
// challenge | verify | session`, SPEC section 4).
//
// Every decision is a src/core/login.* flow; the pump only carries its
// steps out: store calls on the request's Redis connection, Argon2id in the
// nginx thread pool (never on the event loop), notices to the error log,
// and the answer through the request plumbing.

#include <openssl/crypto.h>

#include "ngx_http_pairguard_auth.h"

#if !(NGX_THREADS)
#error "pairguard needs nginx built --with-threads (Argon2id runs in a thread pool)"
#endif

namespace {

using pairguard::Reply;
using pairguard::StoreCall;
using pairguard::login::Flow;
using pairguard::login::Step;

using ctx_t = ngx_http_pairguard_ctx_t;

std::string_view view(const ngx_str_t& s) {
    return std::string_view(reinterpret_cast<const char*>(s.data), s.len);
}

ngx_http_pairguard_answer_t error_answer(ngx_uint_t status, const char* code) {
    return ngx_http_pairguard_answer_t{status, pairguard::render_error(code), 0, {}};
}

void log_notices(ngx_http_request_t* r, const Step& step) {
    for (const std::string& n : step.notices) {
        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0, "pairguard: %s", n.c_str());
    }
}

struct pump_t {
    ngx_http_request_t* r;
    std::shared_ptr<Flow> flow;
    ngx_http_pairguard_login_done_pt done;
};

void run(const pump_t& p, Step step) noexcept;

// Several calls at once; the flow gets every reply in order (ok: all answered).
void store_step(const pump_t& p, std::vector<StoreCall> calls) {
    ctx_t* ctx = ngx_http_pairguard_get_or_create_ctx(p.r);
    if (ctx == nullptr) {
        p.done(p.r, error_answer(500, "internal_error"));
        return;
    }
    struct acc_t {
        std::vector<Reply> replies;
        size_t outstanding = 0;
        bool failed = false;
    };
    auto acc = std::make_shared<acc_t>();
    acc->replies.resize(calls.size());
    acc->outstanding = calls.size();
    auto finish = [p, acc]() {
        Step next;
        try {
            next = p.flow->stored(!acc->failed, acc->replies);
        } catch (const std::exception& e) {
            ngx_log_error(NGX_LOG_ALERT, p.r->connection->log, 0, "pairguard: %s", e.what());
            p.done(p.r, error_answer(500, "internal_error"));
            return;
        }
        run(p, std::move(next));
    };
    for (size_t i = 0; i < calls.size(); i++) {
        bool sent = ngx_http_pairguard_call(ctx, calls[i], [acc, i, finish](bool ok, const Reply& reply) {
            acc->replies[i] = reply;
            acc->failed = acc->failed || !ok;
            if (--acc->outstanding == 0) {
                finish();
            }
        });
        if (!sent) {
            acc->failed = true;
            if (--acc->outstanding == 0) {
                finish();
            }
        }
    }
}

// ---- Argon2id in the thread pool ------------------------------------------------------

struct password_job_t {
    pump_t pump;
    pairguard::login::PasswordWork work;
    pairguard::login::PasswordResult result;

    ~password_job_t() { OPENSSL_cleanse(work.password.data(), work.password.size()); }
};

// In a pool thread: no nginx call, no exception out.
void password_thread(void* data, ngx_log_t*) noexcept {
    auto* job = *static_cast<password_job_t**>(data);
    try {
        const auto& w = job->work;
        if (w.stored.empty()) {
            job->result.check = pairguard::verify_password_dummy(w.password, w.params);
        } else {
            job->result.check = pairguard::verify_password(w.stored, w.password);
            if (job->result.check == pairguard::PasswordCheck::ok && pairguard::needs_rehash(w.stored, w.params)) {
                job->result.rehash = pairguard::hash_password(w.password, w.params);
            }
        }
    } catch (...) {
        job->result.failed = true;
    }
    OPENSSL_cleanse(job->work.password.data(), job->work.password.size());
}

void password_done(ngx_event_t* ev) noexcept {
    auto* job = static_cast<password_job_t*>(ev->data);
    ngx_http_request_t* r = job->pump.r;
    ngx_connection_t* c = r->connection;
    r->main->blocked--;
    if (c->error) {
        // the client went away meanwhile: nginx put off closing the request
        // while the thread held it
        ngx_http_finalize_request(r, NGX_ERROR);
        ngx_http_run_posted_requests(c);
        return;
    }
    Step next;
    try {
        next = job->pump.flow->hashed(job->result);
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ALERT, c->log, 0, "pairguard: %s", e.what());
        job->pump.done(r, error_answer(500, "internal_error"));
        return;
    }
    run(job->pump, std::move(next));
}

// false when the pool's queue is full (or memory ran out)
bool password_step(const pump_t& p, pairguard::login::PasswordWork work) {
    ngx_http_request_t* r = p.r;
    ngx_http_pairguard_main_conf_t* mcf = ngx_http_pairguard_auth_main_conf(r);
    auto* job = ngx_pairguard_pool_new<password_job_t>(r->pool);
    ngx_thread_task_t* task = ngx_thread_task_alloc(r->pool, sizeof(password_job_t*));
    if (job == nullptr || task == nullptr) {
        OPENSSL_cleanse(work.password.data(), work.password.size());
        return false;
    }
    job->pump = p;
    job->work = std::move(work);
    OPENSSL_cleanse(work.password.data(), work.password.size());
    *static_cast<password_job_t**>(task->ctx) = job;
    task->handler = password_thread;
    task->event.data = job;
    task->event.handler = password_done;
    if (ngx_thread_task_post(mcf->thread_pool, task) != NGX_OK) {
        OPENSSL_cleanse(job->work.password.data(), job->work.password.size());
        return false;
    }
    // keeps the request (and the job, in its pool) alive until the thread is done
    r->main->blocked++;
    return true;
}

void run(const pump_t& p, Step step) noexcept {
    try {
        log_notices(p.r, step);
        switch (step.kind) {
        case Step::Kind::store:
            store_step(p, std::move(step.calls));
            return;
        case Step::Kind::password:
            if (!password_step(p, std::move(step.work))) {
                p.done(p.r, error_answer(503, "busy"));
            }
            return;
        case Step::Kind::answer:
            p.done(p.r, ngx_http_pairguard_login_answer(step.answer));
            return;
        }
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ALERT, p.r->connection->log, 0, "pairguard: %s", e.what());
        p.done(p.r, error_answer(500, "internal_error"));
    }
}

// ---- the JSON endpoints --------------------------------------------------------------

void answer_later(ngx_http_request_t* r, ngx_http_pairguard_answer_t a) {
    ngx_http_pairguard_answer_later(r, std::move(a));
}

void auth_body_handler(ngx_http_request_t* r) noexcept {
    std::string body;
    try {
        ngx_http_pairguard_loc_conf_t* lcf =
            static_cast<ngx_http_pairguard_loc_conf_t*>(ngx_http_get_module_loc_conf(r, ngx_http_pairguard_module));
        ctx_t* ctx = ngx_http_pairguard_get_or_create_ctx(r);
        ngx_pairguard_redis_t* store = ngx_http_pairguard_store();
        if (ctx == nullptr) {
            answer_later(r, error_answer(500, "internal_error"));
            return;
        }
        if (store == nullptr || !store->accepting()) {
            answer_later(r, error_answer(503, "store_unavailable"));
            return;
        }
        if (!ngx_http_pairguard_body_text(r, body)) {
            answer_later(r, error_answer(413, "body_too_large"));
            return;
        }
        if (lcf->auth_op == NGX_HTTP_PAIRGUARD_AUTH_SESSION) {
            ngx_http_pairguard_auth_session(r, ctx);
            return;
        }
        pairguard::login::Request req = ngx_http_pairguard_login_request(r);
        std::shared_ptr<Flow> flow;
        switch (lcf->auth_op) {
        case NGX_HTTP_PAIRGUARD_AUTH_PASSWORD:
            flow = pairguard::login::password_login(std::move(req), body);
            break;
        case NGX_HTTP_PAIRGUARD_AUTH_CHALLENGE:
            flow = pairguard::login::challenge(std::move(req), body);
            break;
        default:
            flow = pairguard::login::verify(std::move(req), body);
            break;
        }
        OPENSSL_cleanse(body.data(), body.size());
        Step first = flow->start();
        ngx_http_pairguard_login_pump(r, std::move(flow), std::move(first), answer_later);
    } catch (const std::exception& e) {
        OPENSSL_cleanse(body.data(), body.size());
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "pairguard: %s", e.what());
        answer_later(r, error_answer(500, "internal_error"));
    }
}

}  // namespace

ngx_http_pairguard_main_conf_t* ngx_http_pairguard_auth_main_conf(ngx_http_request_t* r) {
    return static_cast<ngx_http_pairguard_main_conf_t*>(ngx_http_get_module_main_conf(r, ngx_http_pairguard_module));
}

pairguard::login::Request ngx_http_pairguard_login_request(ngx_http_request_t* r) {
    ngx_http_pairguard_main_conf_t* mcf = ngx_http_pairguard_auth_main_conf(r);
    pairguard::login::Request req;
    req.keys = mcf->keys;
    req.prefix = std::string(view(mcf->prefix));
    req.policy = mcf->auth;
    // per network, not per address: one IPv6 client holds a whole /64
    req.address = ngx_http_pairguard_client_net(r);
    ngx_str_t name = ngx_string("host");
    ngx_http_variable_value_t* v = ngx_http_get_variable(r, &name, ngx_hash_key(name.data, name.len));
    if (v != nullptr && !v->not_found) {
        req.host.assign(reinterpret_cast<const char*>(v->data), v->len);
    }
#if (NGX_HTTP_SSL)
    req.tls = r->connection->ssl != nullptr;
#endif
    ngx_time_t* tp = ngx_timeofday();
    req.now_ms = static_cast<int64_t>(tp->sec) * 1000 + static_cast<int64_t>(tp->msec);
    return req;
}

ngx_http_pairguard_answer_t ngx_http_pairguard_login_answer(const pairguard::login::Answer& a) {
    return ngx_http_pairguard_answer_t{static_cast<ngx_uint_t>(a.status), a.body, 0, a.headers};
}

void ngx_http_pairguard_login_pump(ngx_http_request_t* r, std::shared_ptr<Flow> flow, Step step,
                                   ngx_http_pairguard_login_done_pt done) noexcept {
    run(pump_t{r, std::move(flow), done}, std::move(step));
}

ngx_int_t ngx_http_pairguard_auth_content(ngx_http_request_t* r) noexcept {
    try {
        auto* lcf =
            static_cast<ngx_http_pairguard_loc_conf_t*>(ngx_http_get_module_loc_conf(r, ngx_http_pairguard_module));
        bool session = lcf->auth_op == NGX_HTTP_PAIRGUARD_AUTH_SESSION;
        ngx_int_t rc;
        if (!ngx_http_pairguard_method_allowed(r, session ? NGX_HTTP_GET | NGX_HTTP_POST | NGX_HTTP_DELETE : NGX_HTTP_POST,
                                               session ? "GET, POST, DELETE" : "POST", &rc)) {
            return rc;
        }
        r->request_body_in_single_buf = 1;
        rc = ngx_http_read_client_request_body(r, auth_body_handler);
        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            return rc;
        }
        return NGX_DONE;
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "pairguard: %s", e.what());
        return NGX_ERROR;
    }
}
