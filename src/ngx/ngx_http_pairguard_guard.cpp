// The guard: PREACCESS handler (read the body if a key needs it, derive the
// keys, ask the verdict cache, then Redis or the store-down mode), the header
// filter that settles the attempt once the upstream's status is known, and
// the refusals.

#include <openssl/crypto.h>

#include <charconv>
#include <initializer_list>

#include "../core/answers.hpp"
#include "../core/store_scripts.hpp"
#include "ngx_http_pairguard.h"

namespace {

using pairguard::Outcome;
using pairguard::Verdict;

ngx_http_output_header_filter_pt ngx_http_next_header_filter;

void ctx_cleanup(void* data) {
    auto* ctx = static_cast<ngx_http_pairguard_ctx_t*>(data);
    if (ctx->pending != nullptr) {
        ngx_pairguard_redis_t::cancel(ctx->pending);
        ctx->pending = nullptr;
    }
    for (ngx_pairguard_redis_command_t* c : ctx->calls) {
        ngx_pairguard_redis_t::cancel(c);
    }
    ctx->~ngx_http_pairguard_ctx_t();
}

// The context survives internal redirects (which clear r->ctx) through its
// pool cleanup, so an attempt is decided and settled exactly once.
ngx_http_pairguard_ctx_t* find_ctx(ngx_http_request_t* r) {
    auto* ctx = static_cast<ngx_http_pairguard_ctx_t*>(ngx_http_get_module_ctx(r, ngx_http_pairguard_module));
    if (ctx != nullptr || !r->internal) {
        return ctx;
    }
    for (ngx_pool_cleanup_t* cln = r->pool->cleanup; cln != nullptr; cln = cln->next) {
        if (cln->handler == ctx_cleanup) {
            ctx = static_cast<ngx_http_pairguard_ctx_t*>(cln->data);
            ngx_http_set_ctx(r, ctx, ngx_http_pairguard_module);
            return ctx;
        }
    }
    return nullptr;
}

ngx_http_pairguard_ctx_t* create_ctx(ngx_http_request_t* r) {
    ngx_pool_cleanup_t* cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_pairguard_ctx_t));
    if (cln == nullptr) {
        return nullptr;
    }
    auto* ctx = new (cln->data) ngx_http_pairguard_ctx_t();
    cln->handler = ctx_cleanup;
    ctx->request = r;
    ngx_http_set_ctx(r, ctx, ngx_http_pairguard_module);
    return ctx;
}

ngx_int_t send_json(ngx_http_request_t* r, ngx_uint_t status, const std::string& body, int64_t retry_after) {
    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = status;
    r->headers_out.content_type = ngx_pairguard_str("application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = nullptr;
    r->headers_out.content_length_n = static_cast<off_t>(body.size());

    if (retry_after > 0) {
        ngx_table_elt_t* h = static_cast<ngx_table_elt_t*>(ngx_list_push(&r->headers_out.headers));
        if (h == nullptr) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        h->hash = 1;
        ngx_str_set(&h->key, "Retry-After");
        h->value.data = static_cast<u_char*>(ngx_pnalloc(r->pool, NGX_INT64_LEN));
        if (h->value.data == nullptr) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        h->value.len = ngx_sprintf(h->value.data, "%L", retry_after) - h->value.data;
    }

    ngx_int_t rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    ngx_buf_t* b = ngx_create_temp_buf(r->pool, body.size());
    if (b == nullptr) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    b->last = ngx_cpymem(b->pos, body.data(), body.size());
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    ngx_chain_t out;
    out.buf = b;
    out.next = nullptr;
    return ngx_http_output_filter(r, &out);
}

// Answers on our own and ends the phase engine's run for this request.
ngx_int_t respond(ngx_http_request_t* r, ngx_uint_t status, const std::string& body, int64_t retry_after) {
    ngx_http_finalize_request(r, send_json(r, status, body, retry_after));
    return NGX_DONE;
}

void body_handler(ngx_http_request_t* r) {
    auto* ctx = find_ctx(r);
    if (ctx != nullptr) {
        ctx->body_read = true;
    }
    r->preserve_body = 1;
    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);
}

// Parses the body once the whole of it is in memory. Returns 0 or the status
// to refuse with.
ngx_uint_t parse_body(ngx_http_request_t* r, ngx_http_pairguard_ctx_t* ctx) {
    ctx->body_parsed = true;
    ngx_http_request_body_t* rb = r->request_body;
    if (rb == nullptr || rb->bufs == nullptr) {
        ctx->body = pairguard::BodyFields();
        return 0;
    }
    std::string text;
    if (!ngx_http_pairguard_body_text(r, text)) {
        return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
    }
    std::string_view ct;
    if (r->headers_in.content_type != nullptr) {
        ct = std::string_view(reinterpret_cast<const char*>(r->headers_in.content_type->value.data),
                              r->headers_in.content_type->value.len);
    }
    ctx->body = pairguard::parse_body_fields(ct, text);
    if (ctx->body.status == pairguard::BodyStatus::invalid) {
        return NGX_HTTP_BAD_REQUEST;
    }
    return 0;
}

std::string_view as_view(const ngx_str_t& s) {
    return std::string_view(reinterpret_cast<const char*>(s.data), s.len);
}

ngx_int_t deny(ngx_http_request_t* r, ngx_http_pairguard_ctx_t* ctx, ngx_http_pairguard_loc_conf_t* lcf,
               size_t policy, int64_t retry_ms, bool local) {
    const ngx_http_pairguard_key_t& key = ctx->keys[policy];
    ctx->decided = true;
    ctx->retry_after = pairguard::retry_after_seconds(retry_ms);
    ctx->deny_policy = key.policy->name;

    if (lcf->dry_run) {
        std::string label = pairguard::tag_label(key.tag);
        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0, "pairguard: dry run, would refuse, policy \"%V\", key %s",
                      &key.policy->name, label.c_str());
        ctx->state = ngx_http_pairguard_state_e::allowed;
        ctx->reserved = true;  // settle still counts the outcome, with no reservation
        ctx->reservation = 0;
        ctx->store_local = local;
        return NGX_DECLINED;
    }

    ctx->denied = true;
    ctx->state = ngx_http_pairguard_state_e::answered;
    return respond(r, lcf->deny_status, pairguard::too_many_attempts_body(ctx->retry_after), ctx->retry_after);
}

ngx_int_t allow(ngx_http_pairguard_ctx_t* ctx, int64_t reservation, bool local) {
    ctx->decided = true;
    ctx->state = ngx_http_pairguard_state_e::allowed;
    ctx->reserved = true;
    ctx->reservation = reservation;
    ctx->store_local = local;
    return NGX_DECLINED;
}

ngx_int_t decide_without_store(ngx_http_request_t* r, ngx_http_pairguard_ctx_t* ctx,
                               ngx_http_pairguard_loc_conf_t* lcf, ngx_http_pairguard_main_conf_t* mcf) {
    switch (mcf->store_down) {
    case NGX_HTTP_PAIRGUARD_DOWN_DENY:
        ctx->decided = true;
        ctx->denied = true;
        ctx->state = ngx_http_pairguard_state_e::answered;
        return respond(r, NGX_HTTP_SERVICE_UNAVAILABLE, pairguard::error_body("store_unavailable"), 0);

    case NGX_HTTP_PAIRGUARD_DOWN_ALLOW:
        ctx->decided = true;
        ctx->state = ngx_http_pairguard_state_e::allowed;
        return NGX_DECLINED;

    default: {
        ngx_http_pairguard_local_verdict_t v;
        int64_t reservation = 0;
        ngx_http_pairguard_local_reserve(mcf->shm_zone, r->connection->log, ctx->keys, true, v, reservation);
        if (v.verdict != Verdict::allow) {
            return deny(r, ctx, lcf, v.policy, v.retry_ms, true);
        }
        return allow(ctx, reservation, true);
    }
    }
}

// numkeys and the store keys, encoded once per request for reserve and settle
void encode_keys(const ngx_http_pairguard_main_conf_t* mcf, ngx_http_pairguard_ctx_t* ctx) {
    pairguard::RespArgs a;
    a.data.reserve(16 + ctx->keys.size() * (mcf->prefix.len + 40));
    a.add(static_cast<int64_t>(ctx->keys.size()));
    for (const auto& k : ctx->keys) {
        a.add(pairguard::guard_store_key(as_view(mcf->prefix), k.tag));
    }
    ctx->keys_resp = std::move(a.data);
}

// A guard script call: keys, the call's own arguments, then each policy's
// limits.
pairguard::RespArgs guard_call(const pairguard::StoreScript& script, const ngx_http_pairguard_ctx_t* ctx,
                               std::initializer_list<std::string_view> own) {
    pairguard::RespArgs a = pairguard::resp_evalsha(script.sha1, 1 + ctx->keys.size() * 6 + own.size());
    a.add_encoded(ctx->keys_resp, 1 + ctx->keys.size());
    for (std::string_view v : own) {
        a.add(v);
    }
    for (const auto& k : ctx->keys) {
        a.add_encoded(as_view(k.policy->limits_resp), 5);
    }
    return a;
}

void resume(ngx_http_request_t* r) {
    // run the phases from the request's own connection, not from inside hiredis
    r->write_event_handler = ngx_http_core_run_phases;
    ngx_post_event(r->connection->write, &ngx_posted_events);
}

void reserve_done(ngx_http_pairguard_ctx_t* ctx, ngx_pairguard_redis_result_e res, redisReply* reply) {
    ngx_http_request_t* r = ctx->request;
    ctx->pending = nullptr;

    pairguard::ReserveReply rr;
    if (res == ngx_pairguard_redis_result_e::ok && reply->type == REDIS_REPLY_ARRAY) {
        std::vector<int64_t> v;
        v.reserve(reply->elements);
        bool ints = true;
        for (size_t i = 0; i < reply->elements && ints; i++) {
            ints = reply->element[i]->type == REDIS_REPLY_INTEGER;
            v.push_back(reply->element[i]->integer);
        }
        if (ints) {
            rr = pairguard::decode_reserve(v, ctx->keys.size());
        }
    }

    if (!rr.valid) {
        // timed out, connection lost, or an error reply: this request goes on
        // as if Redis were down
        ctx->state = ngx_http_pairguard_state_e::fallback;
        resume(r);
        return;
    }

    for (size_t i : rr.ended) {
        ngx_http_pairguard_log_lock_end(r->connection->log, ctx->keys[i]);
    }
    if (rr.status == pairguard::ReserveStatus::allowed) {
        allow(ctx, rr.reservation, false);
    } else {
        if (rr.status == pairguard::ReserveStatus::locked) {
            auto* mcf = static_cast<ngx_http_pairguard_main_conf_t*>(
                ngx_http_get_module_main_conf(r, ngx_http_pairguard_module));
            ngx_http_pairguard_cache_lock(mcf->shm_zone, ctx->keys[rr.policy], rr.retry_ms);
        }
        ctx->state = ngx_http_pairguard_state_e::refuse;
        ctx->refuse_policy = rr.policy;
        ctx->refuse_retry_ms = rr.retry_ms;
    }
    resume(r);
}

ngx_int_t preaccess_handler(ngx_http_request_t* r) noexcept {
    try {
        auto* lcf = static_cast<ngx_http_pairguard_loc_conf_t*>(ngx_http_get_module_loc_conf(r, ngx_http_pairguard_module));
        if (lcf->policies == nullptr || lcf->policies->nelts == 0 || r != r->main) {
            return NGX_DECLINED;
        }
        auto* mcf = static_cast<ngx_http_pairguard_main_conf_t*>(ngx_http_get_module_main_conf(r, ngx_http_pairguard_module));

        ngx_http_pairguard_ctx_t* ctx = find_ctx(r);
        if (ctx != nullptr) {
            switch (ctx->state) {
            case ngx_http_pairguard_state_e::allowed:
                return NGX_DECLINED;
            case ngx_http_pairguard_state_e::waiting:
            case ngx_http_pairguard_state_e::answered:
                return NGX_AGAIN;
            case ngx_http_pairguard_state_e::refuse:
                return deny(r, ctx, lcf, ctx->refuse_policy, ctx->refuse_retry_ms, false);
            case ngx_http_pairguard_state_e::fallback:
                return decide_without_store(r, ctx, lcf, mcf);
            default:
                break;
            }
        } else {
            ctx = create_ctx(r);
            if (ctx == nullptr) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
        }

        if (lcf->uses_body && !ctx->body_read) {
            ctx->state = ngx_http_pairguard_state_e::reading_body;
            r->request_body_in_single_buf = 1;
            ngx_int_t rc = ngx_http_read_client_request_body(r, body_handler);
            if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
                return rc;
            }
            ngx_http_finalize_request(r, NGX_DONE);
            return NGX_DONE;
        }
        ctx->state = ngx_http_pairguard_state_e::init;

        if (lcf->uses_body && !ctx->body_parsed) {
            ngx_uint_t refuse = parse_body(r, ctx);
            if (refuse == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
                ctx->state = ngx_http_pairguard_state_e::answered;
                return respond(r, refuse, pairguard::error_body("body_too_large"), 0);
            }
            if (refuse != 0) {
                ctx->state = ngx_http_pairguard_state_e::answered;
                return respond(r, refuse, pairguard::error_body("invalid_body"), 0);
            }
        }

        // the keys of this request's policies; an empty one skips its policy
        ctx->keys.clear();
        std::string value;
        auto* refs = static_cast<ngx_http_pairguard_policy_ref_t*>(lcf->policies->elts);
        for (ngx_uint_t i = 0; i < lcf->policies->nelts; i++) {
            ngx_http_pairguard_policy_t* p = refs[i].policy;
            if (!ngx_http_pairguard_eval_key(r, &p->key, value)) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
            if (value.empty()) {
                if (p->limits.key_required) {
                    ctx->state = ngx_http_pairguard_state_e::answered;
                    return respond(r, NGX_HTTP_BAD_REQUEST, pairguard::error_body("key_required"), 0);
                }
                continue;
            }
            ctx->keys.push_back(ngx_http_pairguard_key_t{p, mcf->keys->tag("g", as_view(p->name), value)});
            OPENSSL_cleanse(value.data(), value.size());
        }
        if (ctx->keys.empty()) {
            ctx->decided = true;
            ctx->state = ngx_http_pairguard_state_e::allowed;
            return NGX_DECLINED;
        }

        // a node that knows a key is locked answers without Redis
        ngx_http_pairguard_local_verdict_t cached;
        if (ngx_http_pairguard_cached_lock(mcf->shm_zone, ctx->keys, cached)) {
            return deny(r, ctx, lcf, cached.policy, cached.retry_ms, false);
        }

        ngx_pairguard_redis_t* store = ngx_http_pairguard_store();
        if (store == nullptr || !store->accepting()) {
            return decide_without_store(r, ctx, lcf, mcf);
        }

        encode_keys(mcf, ctx);
        static const std::string hold = std::to_string(pairguard::kReservationHoldMs);
        ctx->pending = store->eval(pairguard::guard_reserve_script(),
                                   guard_call(pairguard::guard_reserve_script(), ctx, {hold}),
                                   [ctx](ngx_pairguard_redis_result_e res, redisReply* reply) {
                                       reserve_done(ctx, res, reply);
                                   });
        if (ctx->pending == nullptr) {
            return decide_without_store(r, ctx, lcf, mcf);
        }

        ctx->state = ngx_http_pairguard_state_e::waiting;
        r->read_event_handler = ngx_http_test_reading;
        r->write_event_handler = ngx_http_request_empty_handler;
        return NGX_AGAIN;

    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "pairguard: %s", e.what());
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}

// Settles from the callback's own copy: the request may be gone by then.
struct settle_job_t {
    std::vector<ngx_http_pairguard_key_t> keys;
    ngx_shm_zone_t* zone;
};

void settle(ngx_http_request_t* r, ngx_http_pairguard_ctx_t* ctx, Outcome outcome) {
    ctx->settled = true;
    auto* mcf = static_cast<ngx_http_pairguard_main_conf_t*>(ngx_http_get_module_main_conf(r, ngx_http_pairguard_module));

    if (ctx->store_local) {
        ngx_http_pairguard_local_settle(mcf->shm_zone, r->connection->log, ctx->keys, outcome, ctx->reservation);
        return;
    }

    if (outcome == Outcome::neutral && ctx->reservation == 0) {
        return;  // nothing to record, nothing to release
    }
    ngx_pairguard_redis_t* store = ngx_http_pairguard_store();
    if (store == nullptr || !store->accepting()) {
        // Redis went away while the upstream worked: its reservation runs out
        // there by itself; under "local" the outcome still counts on this node
        if (mcf->store_down == NGX_HTTP_PAIRGUARD_DOWN_LOCAL) {
            ngx_http_pairguard_local_settle(mcf->shm_zone, r->connection->log, ctx->keys, outcome, 0);
        }
        return;
    }

    if (ctx->keys_resp.empty()) {
        encode_keys(mcf, ctx);  // decided from the verdict cache: dry run
    }
    char reservation[24];
    auto [end, ec] = std::to_chars(reservation, reservation + sizeof(reservation), ctx->reservation);
    (void) ec;
    pairguard::RespArgs call =
        guard_call(pairguard::guard_settle_script(), ctx,
                   {outcome == Outcome::failure ? "f" : outcome == Outcome::success ? "s" : "n",
                    std::string_view(reservation, static_cast<size_t>(end - reservation))});

    // the settle is the request's last use of its keys
    auto job = std::make_shared<settle_job_t>(settle_job_t{std::move(ctx->keys), mcf->shm_zone});
    store->eval(pairguard::guard_settle_script(), std::move(call),
                [job](ngx_pairguard_redis_result_e res, redisReply* reply) {
                    if (res != ngx_pairguard_redis_result_e::ok || reply->type != REDIS_REPLY_ARRAY) {
                        return;
                    }
                    std::vector<int64_t> v;
                    for (size_t i = 0; i < reply->elements; i++) {
                        if (reply->element[i]->type != REDIS_REPLY_INTEGER) {
                            return;
                        }
                        v.push_back(reply->element[i]->integer);
                    }
                    std::vector<pairguard::LockStart> locks;
                    if (!pairguard::decode_settle(v, job->keys.size(), locks)) {
                        return;
                    }
                    for (const auto& l : locks) {
                        ngx_http_pairguard_log_lock_start(ngx_cycle->log, job->keys[l.policy], l.lock_ms);
                        ngx_http_pairguard_cache_lock(job->zone, job->keys[l.policy], l.lock_ms);
                    }
                });
    // before the response leaves: the client's next request, on any worker
    // or node, must find this outcome recorded
    store->flush_now();
}

ngx_int_t header_filter(ngx_http_request_t* r) noexcept {
    try {
        if (r == r->main) {
            ngx_http_pairguard_ctx_t* ctx = find_ctx(r);
            if (ctx != nullptr && ctx->reserved && !ctx->settled) {
                auto* lcf = static_cast<ngx_http_pairguard_loc_conf_t*>(
                    ngx_http_get_module_loc_conf(r, ngx_http_pairguard_module));
                Outcome outcome = Outcome::neutral;
                if (lcf->failure_status != nullptr) {
                    outcome = pairguard::classify_status(
                        static_cast<int>(r->headers_out.status), static_cast<const int*>(lcf->failure_status->elts),
                        lcf->failure_status->nelts,
                        lcf->neutral_status ? static_cast<const int*>(lcf->neutral_status->elts) : nullptr,
                        lcf->neutral_status ? lcf->neutral_status->nelts : 0);
                }
                settle(r, ctx, outcome);
            }
        }
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "pairguard: %s", e.what());
    }
    return ngx_http_next_header_filter(r);
}

}  // namespace

ngx_http_pairguard_ctx_t* ngx_http_pairguard_get_ctx(ngx_http_request_t* r) {
    return find_ctx(r);
}

ngx_http_pairguard_ctx_t* ngx_http_pairguard_get_or_create_ctx(ngx_http_request_t* r) {
    ngx_http_pairguard_ctx_t* ctx = find_ctx(r);
    return ctx != nullptr ? ctx : create_ctx(r);
}

ngx_int_t ngx_http_pairguard_send_json(ngx_http_request_t* r, ngx_uint_t status, const std::string& body,
                                       int64_t retry_after) {
    return send_json(r, status, body, retry_after);
}

// A key template, built from indexed variables (see key_template.hpp).
bool ngx_http_pairguard_eval_key(ngx_http_request_t* r, const ngx_array_t* key, std::string& out) {
    out.clear();
    auto* parts = static_cast<const ngx_http_pairguard_key_part_t*>(key->elts);
    for (ngx_uint_t i = 0; i < key->nelts; i++) {
        if (parts[i].index == NGX_ERROR) {
            out.append(reinterpret_cast<const char*>(parts[i].literal.data), parts[i].literal.len);
            continue;
        }
        ngx_http_variable_value_t* v = ngx_http_get_flushed_variable(r, static_cast<ngx_uint_t>(parts[i].index));
        if (v == nullptr) {
            return false;
        }
        if (!v->not_found) {
            out.append(reinterpret_cast<const char*>(v->data), v->len);
        }
    }
    return true;
}

void ngx_http_pairguard_log_lock_start(ngx_log_t* log, const ngx_http_pairguard_key_t& key, int64_t lock_ms) {
    std::string label = pairguard::tag_label(key.tag);
    ngx_log_error(NGX_LOG_NOTICE, log, 0, "pairguard: lockout start, policy \"%V\", key %s, %Ls", &key.policy->name,
                  label.c_str(), pairguard::retry_after_seconds(lock_ms));
}

void ngx_http_pairguard_log_lock_end(ngx_log_t* log, const ngx_http_pairguard_key_t& key) {
    std::string label = pairguard::tag_label(key.tag);
    ngx_log_error(NGX_LOG_NOTICE, log, 0, "pairguard: lockout end, policy \"%V\", key %s", &key.policy->name,
                  label.c_str());
}

ngx_int_t ngx_http_pairguard_init_phases(ngx_conf_t* cf) {
    auto* cmcf = static_cast<ngx_http_core_main_conf_t*>(ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module));
    auto* h = static_cast<ngx_http_handler_pt*>(ngx_array_push(&cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers));
    if (h == nullptr) {
        return NGX_ERROR;
    }
    *h = preaccess_handler;

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = header_filter;
    return NGX_OK;
}
