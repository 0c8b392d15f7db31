// The guard: PREACCESS handler (read the body if a key needs it, derive the
// keys, ask the verdict cache, then Redis or the store-down mode), the header
// filter that settles the attempt once the upstream's status is known, and
// the refusals.

#include <algorithm>
#include <openssl/crypto.h>

#include <charconv>
#include <cstring>
#include <initializer_list>
#include <stdexcept>

#include "../core/answers.hpp"
#include "../core/store_scripts.hpp"
#include "ngx_http_pairguard.h"
#include "ngx_http_pairguard_metrics.h"

// allow/deny's and auth_basic's modules; weak: an nginx built without one
// leaves it null
extern "C" ngx_module_t ngx_http_access_module __attribute__((weak));
extern "C" ngx_module_t ngx_http_auth_basic_module __attribute__((weak));

namespace {

using pairguard::Outcome;
using pairguard::Verdict;
using state_e = ngx_http_pairguard_state_e;
using verdict_e = ngx_http_pairguard_verdict_e;

ngx_http_output_header_filter_pt ngx_http_next_header_filter;

std::string_view as_view(const ngx_str_t& s) {
    return std::string_view(reinterpret_cast<const char*>(s.data), s.len);
}

ngx_http_pairguard_main_conf_t* main_conf(ngx_http_request_t* r) {
    return static_cast<ngx_http_pairguard_main_conf_t*>(ngx_http_get_module_main_conf(r, ngx_http_pairguard_module));
}

// The guard's own refusals (locked, busy, key_required, bad body, store
// down): every policy reserved so far, in any location, is released.
ngx_int_t refuse(ngx_http_request_t* r, ngx_http_pairguard_ctx_t* ctx, ngx_uint_t status, std::string body,
                 int64_t retry_after) {
    ctx->guard_refused = true;
    ctx->state = state_e::idle;
    return ngx_http_pairguard_answer_now(r, ngx_http_pairguard_answer_t{status, std::move(body), retry_after, {}});
}

// Parses the body once the whole of it is read. Returns 0 or the status to
// refuse with, and its error code.
ngx_uint_t parse_body(ngx_http_request_t* r, ngx_http_pairguard_ctx_t* ctx, const char** code) {
    ctx->body_parsed = true;
    std::string text;
    if (!ngx_http_pairguard_body_text(r, text)) {
        *code = "body_too_large";
        return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
    }
    // nginx keeps the first Content-Type and forwards them all: a backend that
    // takes the last one would parse the body differently. A coded body
    // (gzip...) is one the guard cannot read but a backend may inflate.
    size_t types = 0;
    bool coded = false;
    ngx_list_part_t* part = &r->headers_in.headers.part;
    auto* h = static_cast<ngx_table_elt_t*>(part->elts);
    for (ngx_uint_t i = 0;; i++) {
        if (i >= part->nelts) {
            if (part->next == nullptr) {
                break;
            }
            part = part->next;
            h = static_cast<ngx_table_elt_t*>(part->elts);
            i = 0;
        }
        if (h[i].key.len == sizeof("Content-Type") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char*) "Content-Type", h[i].key.len) == 0) {
            types++;
        } else if (h[i].key.len == sizeof("Content-Encoding") - 1
                   && ngx_strncasecmp(h[i].key.data, (u_char*) "Content-Encoding", h[i].key.len) == 0
                   && !(h[i].value.len == sizeof("identity") - 1
                        && ngx_strncasecmp(h[i].value.data, (u_char*) "identity", h[i].value.len) == 0)) {
            coded = true;
        }
    }
    if (types > 1) {
        OPENSSL_cleanse(text.data(), text.size());
        *code = "invalid_body";
        return NGX_HTTP_BAD_REQUEST;
    }
    if (coded && !text.empty()) {
        OPENSSL_cleanse(text.data(), text.size());
        *code = "unsupported_body";
        return NGX_HTTP_UNSUPPORTED_MEDIA_TYPE;
    }
    std::string_view ct;
    if (r->headers_in.content_type != nullptr) {
        ct = as_view(r->headers_in.content_type->value);
    }
    ctx->body = pairguard::parse_body_fields(ct, text);
    OPENSSL_cleanse(text.data(), text.size());
    switch (ctx->body->status) {
    case pairguard::BodyStatus::invalid:
        *code = "invalid_body";
        return NGX_HTTP_BAD_REQUEST;
    case pairguard::BodyStatus::unsupported:
        *code = "unsupported_body";
        return NGX_HTTP_UNSUPPORTED_MEDIA_TYPE;
    default:
        return 0;
    }
}

// A policy with device_cookie: a request that carries a valid cookie for
// this very policy and account is decided on the device's own key (its own
// budget, its own lock) instead of the account's; any other cookie (forged,
// expired, another account's or policy's) counts as none. A request without
// the cookie costs a look at its Cookie headers.
ngx_http_pairguard_key_t trusted_device(ngx_http_request_t* r, const ngx_http_pairguard_main_conf_t* mcf,
                                        ngx_http_pairguard_group_t& g, const ngx_http_pairguard_key_t& account) {
    ngx_http_pairguard_policy_t* p = account.policy;
    ngx_http_pairguard_device_t d{p, account.tag};
    std::vector<std::string_view> tokens;
    ngx_http_pairguard_cookie_values(r, p->device_cookie, tokens);
    for (std::string_view t : tokens) {
        if (auto dt = pairguard::device_token_check(*mcf->keys, as_view(p->name), account.tag, t, ngx_time(),
                                                    p->device_ttl_s)) {
            d.id = dt->id;
            d.expires_s = dt->expires_s;
            d.known = true;
            break;
        }
    }
    g.devices.push_back(d);
    if (!d.known) {
        return account;
    }
    return ngx_http_pairguard_key_t{p, pairguard::device_tag(*mcf->keys, as_view(p->name), account.tag, d.id), true};
}

// A success hands each trusted-device policy's cookie out: a new device
// without a valid cookie; for a trusted device, the same id again (its
// budget stays its own) once half of its time is gone, Max-Age starting
// again from now.
void issue_devices(ngx_http_request_t* r, const ngx_http_pairguard_group_t& g) {
    if (g.devices.empty()) {
        return;
    }
    ngx_http_pairguard_main_conf_t* mcf = main_conf(r);
    bool secure = false;
#if (NGX_HTTP_SSL)
    secure = r->connection->ssl != nullptr;
#endif
    for (const auto& d : g.devices) {
        if (d.known && !pairguard::device_token_renew(d.expires_s, d.policy->device_ttl_s, ngx_time())) {
            continue;
        }
        pairguard::DeviceId id = d.known ? d.id : pairguard::new_device_id();
        std::string token = pairguard::device_token(*mcf->keys, as_view(d.policy->name), d.account, id,
                                                    static_cast<int64_t>(ngx_time()) + d.policy->device_ttl_s);
        std::string cookie = pairguard::device_set_cookie(as_view(d.policy->device_cookie), token,
                                                          d.policy->device_ttl_s, secure);
        OPENSSL_cleanse(token.data(), token.size());
        bool ok = ngx_http_pairguard_add_header(r, "Set-Cookie", cookie);
        OPENSSL_cleanse(cookie.data(), cookie.size());
        if (!ok) {
            throw std::runtime_error("no memory for Set-Cookie");
        }
    }
}

// Whether group `g` holds a key of policy `p`.
bool holds(const ngx_http_pairguard_group_t& g, const ngx_http_pairguard_policy_t* p) {
    for (const auto& k : g.keys) {
        if (k.policy == p) {
            return true;
        }
    }
    return false;
}

// A group whose keys change no longer sends the text it reserved with.
void forget_keys_resp(ngx_http_pairguard_group_t& g) {
    g.keys_resp.n = 0;
    g.keys_resp.len = 0;
}

// Moves the elements of `from` whose policy `pred` picks to the end of `to`.
template <class List, class Pred>
void move_policies(List& from, List& to, Pred pred) {
    auto keep = std::stable_partition(from.begin(), from.end(), [&](const auto& x) { return !pred(x.policy); });
    for (auto it = keep; it != from.end(); ++it) {
        to.push_back(*it);
    }
    from.erase(keep, from.end());
}

// The candidate group joins the request's reservations.
ngx_int_t allow(ngx_http_pairguard_ctx_t* ctx, int64_t reservation, bool local) {
    ctx->decided = true;
    ctx->state = state_e::idle;
    ngx_http_pairguard_group_t& c = ctx->candidate;
    c.reservation = reservation;
    c.store_local = local;
    ngx_http_request_t* r = ctx->request;
    c.states_from = r->upstream_states != nullptr ? r->upstream_states->nelts : 0;
    c.subrequests_from = ctx->subrequests.size();
    c.carried_from = ctx->carried_on;
    c.upstream_at = r->upstream;
    // policies reserved again after a dry run let their refusal through
    // count once, here, from the dry run's own mark (what the request was
    // answered since the dry run reserved them counts for them, as it would
    // have there); the others of this location from this one's: they go
    // in a group of their own
    ngx_http_pairguard_group_t taken;
    for (auto& g : ctx->groups) {
        if (c.lcf == nullptr || c.lcf->dry_run || !g.dry_refused || g.settled) {
            continue;
        }
        auto in_dry = [&](const ngx_http_pairguard_policy_t* p) { return holds(g, p); };
        if (std::none_of(c.keys.begin(), c.keys.end(), [&](const auto& k) { return in_dry(k.policy); })) {
            continue;
        }
        if (taken.keys.empty()) {  // the earliest dry group's mark
            taken.lcf = c.lcf;
            taken.reservation = c.reservation;
            taken.store_local = c.store_local;
            taken.states_from = g.states_from;
            taken.subrequests_from = g.subrequests_from;
            taken.carried_from = g.carried_from;
            taken.upstream_at = g.upstream_at;
        }
        // this location's keys of those policies move to `taken`, and leave
        // the dry group
        move_policies(c.keys, taken.keys, in_dry);
        move_policies(c.devices, taken.devices, in_dry);
        ngx_http_pairguard_keys_t gone;
        std::vector<ngx_http_pairguard_device_t> gone_devices;
        auto now_taken = [&](const ngx_http_pairguard_policy_t* p) { return holds(taken, p); };
        move_policies(g.keys, gone, now_taken);
        move_policies(g.devices, gone_devices, now_taken);
        forget_keys_resp(c);
        forget_keys_resp(g);
        g.settled = g.keys.empty();
    }
    if (!taken.keys.empty()) {
        ctx->groups.push_back(std::move(taken));
    }
    if (!c.keys.empty()) {
        ctx->groups.push_back(std::move(c));
    }
    ctx->candidate = ngx_http_pairguard_group_t();
    return NGX_DECLINED;
}

ngx_int_t deny(ngx_http_request_t* r, ngx_http_pairguard_ctx_t* ctx, size_t policy, int64_t retry_ms, bool local) {
    ngx_http_pairguard_loc_conf_t* lcf = ctx->candidate.lcf;
    const ngx_http_pairguard_key_t& key = ctx->candidate.keys[policy];
    ctx->decided = true;
    ctx->retry_after = pairguard::retry_after_seconds(retry_ms);
    ctx->deny_policy = key.policy->name;

    if (lcf->dry_run) {
        std::string label = pairguard::tag_label(key.tag);
        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0, "pairguard: dry run, would refuse, policy \"%V\", %s %s",
                      &key.policy->name, ngx_http_pairguard_key_kind(key), label.c_str());
        // settled like an allowed attempt with no reservation: the outcome
        // still counts
        ctx->candidate.dry_refused = true;
        return allow(ctx, 0, local);
    }

    ctx->denied = true;
    return refuse(r, ctx, lcf->deny_status, pairguard::too_many_attempts_body(ctx->retry_after), ctx->retry_after);
}

ngx_int_t decide_without_store(ngx_http_request_t* r, ngx_http_pairguard_ctx_t* ctx,
                               ngx_http_pairguard_main_conf_t* mcf) {
    switch (mcf->store_down) {
    case NGX_HTTP_PAIRGUARD_DOWN_DENY:
        if (ctx->candidate.lcf != nullptr && ctx->candidate.lcf->dry_run) {
            // a dry run never refuses: let through unguarded, as `allow`
            ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                          "pairguard: dry run, would refuse, store_unavailable");
            ctx->decided = true;
            ctx->state = state_e::idle;
            ctx->candidate = ngx_http_pairguard_group_t();
            return NGX_DECLINED;
        }
        ctx->decided = true;
        ctx->denied = true;
        return refuse(r, ctx, NGX_HTTP_SERVICE_UNAVAILABLE, pairguard::error_body("store_unavailable"), 0);

    case NGX_HTTP_PAIRGUARD_DOWN_ALLOW:
        // nothing reserved, nothing to settle
        ngx_http_pairguard_metric_allowed(ctx->candidate);
        ctx->decided = true;
        ctx->state = state_e::idle;
        ctx->candidate = ngx_http_pairguard_group_t();
        return NGX_DECLINED;

    default: {
        ngx_http_pairguard_local_verdict_t v;
        int64_t reservation = 0;
        ngx_http_pairguard_local_reserve(mcf->shm_zone, r->connection->log, ctx->candidate.keys, true, v,
                                         reservation);
        if (v.verdict != Verdict::allow) {
            ngx_http_pairguard_metric_refused(ctx->candidate, v.policy, v.verdict == Verdict::busy, true);
            return deny(r, ctx, v.policy, v.retry_ms, true);
        }
        ngx_http_pairguard_metric_allowed(ctx->candidate);
        return allow(ctx, reservation, true);
    }
    }
}

// The group's store keys, RESP-encoded for its reserve or settle, in a
// buffer of the worker's that the next call overwrites (the operation
// copies them at once).
std::string_view encode_keys(const ngx_http_pairguard_main_conf_t* mcf, const ngx_http_pairguard_group_t& g) {
    if (g.keys_resp.len > 0 && g.keys_resp.n == g.keys.size()) {
        return std::string_view(g.keys_resp.text, g.keys_resp.len);
    }
    static pairguard::RespArgs a;
    a.data.clear();
    a.count = 0;
    for (const auto& k : g.keys) {
        if (k.device) {
            a.add(pairguard::device_store_key(as_view(mcf->prefix), k.tag));
        } else {
            pairguard::add_guard_store_key(a, as_view(mcf->prefix), k.tag);
        }
    }
    return a.data;
}

// Each key's five limits, RESP-encoded at configuration time: a group of
// one key uses its policy's as they are, more are put together in a buffer
// of the worker's that the next call overwrites.
std::string_view group_limits(const ngx_http_pairguard_group_t& g) {
    auto limits = [](const ngx_http_pairguard_key_t& k) -> const ngx_str_t& {
        return k.device ? k.policy->device_limits_resp : k.policy->limits_resp;
    };
    if (g.keys.size() == 1) {
        return as_view(limits(g.keys[0]));
    }
    static std::string scratch;
    scratch.clear();
    for (const auto& k : g.keys) {
        scratch.append(reinterpret_cast<const char*>(limits(k).data), limits(k).len);
    }
    return scratch;
}

void reserve_done(ngx_http_pairguard_ctx_t* ctx, bool ok, pairguard::IntList v) noexcept {
    ngx_http_request_t* r = ctx->request;
    ctx->reserve_op.reset();
    ctx->state = state_e::decided;
    try {
        pairguard::ReserveReply rr;
        if (ok) {
            rr = pairguard::decode_reserve(v, ctx->candidate.keys.size());
        }

        if (!rr.valid) {
            // timed out, connection lost, or an error reply: this request goes
            // on as if Redis were down
            ctx->verdict = verdict_e::fallback;
        } else {
            for (size_t i : rr.ended) {
                ngx_http_pairguard_log_lock_end(r->connection->log, ctx->candidate.keys[i]);
            }
            if (rr.status == pairguard::ReserveStatus::allowed) {
                ctx->verdict = verdict_e::allow;
                ctx->verdict_reservation = rr.reservation;
            } else {
                if (rr.status == pairguard::ReserveStatus::locked) {
                    ngx_http_pairguard_cache_lock(main_conf(r)->shm_zone, ctx->candidate.keys[rr.policy], rr.retry_ms);
                }
                ctx->verdict = verdict_e::refuse;
                ctx->refuse_policy = rr.policy;
                ctx->refuse_retry_ms = rr.retry_ms;
                ngx_http_pairguard_metric_refused(ctx->candidate, rr.policy, rr.status == pairguard::ReserveStatus::busy, false);
            }
        }
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "pairguard: %s", e.what());
        ctx->verdict = verdict_e::fallback;
    }
    ngx_http_pairguard_resume(r);
}

// Whether `p` is reserved already, for location `lcf`: a policy whose
// refusal a dry-run location let through is not, for a location that
// enforces it.
bool reserved(const ngx_http_pairguard_ctx_t* ctx, const ngx_http_pairguard_policy_t* p,
              const ngx_http_pairguard_loc_conf_t* lcf) {
    for (const auto& g : ctx->groups) {
        if (!(g.dry_refused && !lcf->dry_run) && holds(g, p)) {
            return true;
        }
    }
    return false;
}

// A verdict made in a Redis callback, carried out on the request's own event.
ngx_int_t carry_out(ngx_http_request_t* r, ngx_http_pairguard_ctx_t* ctx) {
    verdict_e v = ctx->verdict;
    ctx->verdict = verdict_e::none;
    switch (v) {
    case verdict_e::allow:
        ngx_http_pairguard_metric_allowed(ctx->candidate);
        return allow(ctx, ctx->verdict_reservation, false);
    case verdict_e::refuse:
        return deny(r, ctx, ctx->refuse_policy, ctx->refuse_retry_ms, false);
    default:
        return decide_without_store(r, ctx, main_conf(r));
    }
}

// Whether the request has a body still to read (a subrequest's is its main
// request's).
bool body_to_come(const ngx_http_request_t* r) {
    if (r != r->main || r->request_body != nullptr || r->discard_body) {
        return false;
    }
#if (NGX_HTTP_V2)
    if (r->stream != nullptr && !r->stream->in_closed) {
        return true;
    }
#endif
    return r->headers_in.content_length_n > 0 || r->headers_in.chunked;
}

ngx_int_t reserve_candidate(ngx_http_request_t* r, ngx_http_pairguard_ctx_t* ctx, ngx_http_pairguard_main_conf_t* mcf);

ngx_int_t guard(ngx_http_request_t* r, ngx_http_pairguard_loc_conf_t* lcf, ngx_http_pairguard_ctx_t* ctx) {
    ngx_http_pairguard_main_conf_t* mcf = main_conf(r);
    switch (ctx->state) {
    case state_e::waiting:
        return NGX_AGAIN;  // a spurious run of the phases
    case state_e::decided:
        return carry_out(r, ctx);
    default:
        break;
    }
    if (ctx->candidate_pending) {
        // its keys were made before the body was read (reserve_candidate)
        ctx->candidate_pending = false;
        if (ctx->candidate.lcf == lcf) {
            ctx->state = state_e::idle;
            return reserve_candidate(r, ctx, mcf);
        }
        ctx->candidate = ngx_http_pairguard_group_t();
    }

    auto* refs = static_cast<ngx_http_pairguard_policy_ref_t*>(lcf->policies->elts);
    // the policies of this location that the request has not yet reserved,
    // in this location or an earlier one (internal redirects)
    bool fresh = false, needs_body = false;
    for (ngx_uint_t i = 0; i < lcf->policies->nelts; i++) {
        if (!reserved(ctx, refs[i].policy, lcf)) {
            fresh = true;
            needs_body = needs_body || refs[i].policy->uses_body;
        }
    }
    if (!fresh) {
        if (ctx->groups.empty()) {
            ctx->decided = true;
        }
        return NGX_DECLINED;
    }

    if (needs_body && !ctx->body_read) {
        ctx->state = state_e::reading_body;
        return ngx_http_pairguard_read_body(r);
    }
    ctx->state = state_e::idle;
    if (needs_body && !ctx->body_parsed) {
        const char* code = nullptr;
        ctx->body_error_status = parse_body(r, ctx, &code);
        ctx->body_error_code = code;
    }
    if (needs_body && ctx->body_error_status != 0 && !lcf->dry_run) {
        return refuse(r, ctx, ctx->body_error_status, pairguard::error_body(ctx->body_error_code), 0);
    }

    // the keys of the new policies; an empty one skips its policy
    ctx->candidate = ngx_http_pairguard_group_t();
    ctx->candidate.lcf = lcf;
    std::string value;
    const char* input_error = nullptr;  // the key cannot be read with certainty
    for (ngx_uint_t i = 0; i < lcf->policies->nelts; i++) {
        ngx_http_pairguard_policy_t* p = refs[i].policy;
        if (reserved(ctx, p, lcf)) {
            continue;
        }
        if (p->uses_body && ctx->body_error_status != 0) {
            // a dry run: the policy is skipped, not reserved on a key made
            // without its field (an enforcing location after it refuses)
            input_error = ctx->body_error_code != nullptr ? ctx->body_error_code : "invalid_body";
        } else if (p->uses_body) {
            // a field that occurs twice (or spelled another way, or whose
            // value is an array or an object) is read differently by
            // different parsers: the guard would count one account, the
            // upstream another
            auto* parts = static_cast<const ngx_http_pairguard_key_part_t*>(p->key.elts);
            for (ngx_uint_t j = 0; j < p->key.nelts && input_error == nullptr; j++) {
                if (parts[j].body_field.len > 0 && ctx->body
                    && ctx->body->ambiguous(as_view(parts[j].body_field))) {
                    input_error = "invalid_body";
                }
            }
        }
        if (input_error == nullptr && ngx_http_pairguard_key_repeated(r, &p->key)) {
            // X-Account: random, X-Account: victim: nginx reads the first, a
            // backend may read the last (PHP) or both
            input_error = "invalid_header";
        }
        if (input_error == nullptr) {
            if (!ngx_http_pairguard_eval_key(r, &p->key, value, p->key_normalize)) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
            if (value.empty() && p->limits.key_required) {
                input_error = "key_required";
            }
        }
        if (input_error != nullptr) {
            if (!lcf->dry_run) {
                if (std::string_view(input_error) == "key_required") {
                    ngx_http_pairguard_metric_decision(p, pairguard::metrics::key_required);
                }
                ctx->candidate = ngx_http_pairguard_group_t();
                return refuse(r, ctx, NGX_HTTP_BAD_REQUEST, pairguard::error_body(input_error), 0);
            }
            // a dry run never refuses: the policy is skipped for this request
            ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                          "pairguard: dry run, would refuse, policy \"%V\", %s", &p->name, input_error);
            ngx_http_pairguard_metric_decision(p, pairguard::metrics::dry_run);
            input_error = nullptr;
            value.clear();
            continue;
        }
        if (value.empty()) {
            continue;
        }
        ngx_http_pairguard_key_t key{p, mcf->keys->tag("g", as_view(p->name), value)};
        OPENSSL_cleanse(value.data(), value.size());
        if (p->device_cookie.len > 0) {
            key = trusted_device(r, mcf, ctx->candidate, key);
        }
        ctx->candidate.keys.push_back(key);
    }
    if (ctx->candidate.keys.empty()) {
        ctx->candidate = ngx_http_pairguard_group_t();
        if (ctx->groups.empty()) {
            ctx->decided = true;
        }
        return NGX_DECLINED;
    }
    return reserve_candidate(r, ctx, mcf);
}

// The candidate group's keys are made: a lock this node knows refuses it;
// else its attempt is reserved (in Redis, or on this node while Redis is
// down), once the request's body is in.
ngx_int_t reserve_candidate(ngx_http_request_t* r, ngx_http_pairguard_ctx_t* ctx, ngx_http_pairguard_main_conf_t* mcf) {
    // a node that knows a key is locked answers without Redis
    ngx_http_pairguard_local_verdict_t cached;
    if (ngx_http_pairguard_cached_lock(mcf->shm_zone, ctx->candidate.keys, cached)) {
        ngx_http_pairguard_metric_refused(ctx->candidate, cached.policy, false, true);
        return deny(r, ctx, cached.policy, cached.retry_ms, false);
    }

    ngx_pairguard_redis_t* store = ngx_http_pairguard_store();
    bool up = store != nullptr && store->accepting();
    if (!up && mcf->store_down != NGX_HTTP_PAIRGUARD_DOWN_LOCAL) {
        return decide_without_store(r, ctx, mcf);  // deny or allow: nothing is reserved
    }
    // the body is read in full before the attempt is reserved, whatever the
    // keys need: a reservation holds its attempt kReservationHoldMs (60 s),
    // and a client that trickled its body would reach the upstream after
    // its reservation had run out and stopped counting (as many attempts past
    // the budget as it holds connections open). The keys stay made; the
    // phases come back here (guard) once it is in.
    if (body_to_come(r) && !ctx->body_read) {
        ctx->candidate_pending = true;
        ctx->state = state_e::reading_body;
        return ngx_http_pairguard_read_body(r);
    }
    if (!up) {
        return decide_without_store(r, ctx, mcf);
    }

    // sent with every other reserve and settle of this loop iteration
    ngx_http_pairguard_batch_ptr op = ngx_http_pairguard_batch_new();
    std::string_view keys = encode_keys(mcf, ctx->candidate);
    auto& kept = ctx->candidate.keys_resp;  // for the settle
    if (keys.size() <= sizeof(kept.text) && ctx->candidate.keys.size() <= UINT8_MAX) {
        std::memcpy(kept.text, keys.data(), keys.size());
        kept.len = static_cast<uint8_t>(keys.size());
        kept.n = static_cast<uint8_t>(ctx->candidate.keys.size());
    }
    pairguard::make_guard_reserve(op->op, keys, ctx->candidate.keys.size(), group_limits(ctx->candidate));
    op->op.own_key = ctx->candidate.keys.size() == 1 && ctx->candidate.keys[0].policy->pinned_to_client;
    ngx_http_pairguard_batch_submit(op, [ctx](bool ok, pairguard::IntList v) { reserve_done(ctx, ok, v); });
    ctx->reserve_op = std::move(op);
    ctx->state = state_e::waiting;
    return ngx_http_pairguard_suspend(r);
}

// Settles from the operation's own copy of the keys: the request may be
// gone by then.
void settle_reply(const ngx_http_pairguard_keys_t& keys, ngx_shm_zone_t* zone, bool ok,
                  pairguard::IntList v) noexcept {
    try {
        if (!ok) {
            return;
        }
        std::vector<pairguard::LockStart> locks;
        if (!pairguard::decode_settle(v, keys.size(), locks)) {
            return;
        }
        for (const auto& l : locks) {
            ngx_http_pairguard_log_lock_start(ngx_cycle->log, keys[l.policy], l.lock_ms);
            ngx_http_pairguard_cache_lock(zone, keys[l.policy], l.lock_ms);
        }
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0, "pairguard: %s", e.what());
    }
}

void settle(ngx_http_request_t* r, ngx_http_pairguard_group_t& g, Outcome outcome) {
    g.settled = true;
    ngx_http_pairguard_main_conf_t* mcf = main_conf(r);

    if (g.store_local) {
        ngx_http_pairguard_local_settle(mcf->shm_zone, r->connection->log, g.keys, outcome, g.reservation);
        return;
    }
    if (outcome == Outcome::neutral && g.reservation == 0) {
        return;  // nothing to record, nothing to release
    }
    ngx_pairguard_redis_t* store = ngx_http_pairguard_store();
    if (store == nullptr || !store->accepting()) {
        // Redis went away while the upstream worked: its reservation runs out
        // there by itself; under "local" the outcome still counts on this node
        if (mcf->store_down == NGX_HTTP_PAIRGUARD_DOWN_LOCAL) {
            ngx_http_pairguard_local_settle(mcf->shm_zone, r->connection->log, g.keys, outcome, 0);
        }
        return;
    }

    ngx_http_pairguard_batch_ptr op = ngx_http_pairguard_batch_new();
    pairguard::make_guard_settle(op->op, encode_keys(mcf, g), g.keys.size(), outcome, g.reservation, group_limits(g));
    // the group keeps its keys (a later run of the phases, as post_action
    // makes, must not reserve them again); it goes out at the end
    // of this loop iteration, before this worker reads anything new, with
    // every other reserve and settle of the iteration
    ngx_http_pairguard_batch_settle(op, g.keys, mcf->shm_zone, settle_reply);
}

Outcome classify(const ngx_http_pairguard_loc_conf_t* lcf, ngx_uint_t status) {
    if (lcf == nullptr || lcf->failure_status == nullptr) {
        return Outcome::neutral;
    }
    return pairguard::classify_status(
        static_cast<int>(status), static_cast<const int*>(lcf->failure_status->elts), lcf->failure_status->nelts,
        lcf->neutral_status ? static_cast<const int*>(lcf->neutral_status->elts) : nullptr,
        lcf->neutral_status ? lcf->neutral_status->nelts : 0);
}

// A subrequest of a mirror (or the mirror itself): its answer goes nowhere.
bool in_background(const ngx_http_request_t* sr) {
    for (const ngx_http_request_t* p = sr; p != nullptr && p != p->main; p = p->parent) {
        if (p->background) {
            return true;
        }
    }
    return false;
}

// Calls answer(status, sent) for everything the request was answered after
// the group's reservation: its upstreams' attempts, and its subrequests'
// attempts and answers but mirrors' (`sent`: the attempt sent or got bytes).
// `handed_on`: only what was answered in locations the request was handed
// to, not in pages served with a forced status (ctx->entered).
template <class Answer>
void answers_since(ngx_http_request_t* r, const ngx_http_pairguard_ctx_t* ctx, const ngx_http_pairguard_group_t& g,
                   bool handed_on, Answer answer) {
    // whether the last location entered before the n-th attempt (or
    // subrequest) served a page with a forced status
    auto forced = [ctx, handed_on](auto field, size_t n) {
        bool page = false;
        if (handed_on) {
            for (const auto& e : ctx->entered) {
                if (e.*field <= n) {
                    page = e.forced;
                }
            }
        }
        return page;
    };
    auto states = [&](const ngx_http_request_t* req, ngx_uint_t from, bool main) {
        if (req->upstream_states != nullptr) {
            auto* st = static_cast<ngx_http_upstream_state_t*>(req->upstream_states->elts);
            for (ngx_uint_t i = from; i < req->upstream_states->nelts; i++) {
                if (!main || !forced(&ngx_http_pairguard_ctx_t::entered_t::states, i)) {
                    answer(st[i].status, st[i].bytes_sent > 0 || st[i].bytes_received > 0);
                }
            }
        }
    };
    states(r, g.states_from, true);
    for (size_t j = g.subrequests_from; j < ctx->subrequests.size(); j++) {
        const ngx_http_request_t* sr = ctx->subrequests[j];
        if (!in_background(sr) && !forced(&ngx_http_pairguard_ctx_t::entered_t::subrequests, j)) {
            states(sr, 0, false);
            answer(sr->headers_out.status, false);
        }
    }
}

// What the request was answered after the group's reservation, read with
// the group's status lists (an auth_request's 401 decides the request even
// when `error_page 401 = @login` turns it into a 302): `failure` when any
// was a failure (a failure wins), and whether every one was a success
// (none: true).
bool upstream_failed(ngx_http_request_t* r, const ngx_http_pairguard_ctx_t* ctx, const ngx_http_pairguard_group_t& g,
                     bool* all_success) {
    bool failed = false, success = true;
    answers_since(r, ctx, g, false, [&](ngx_uint_t status, bool) {
        if (status != 0) {
            Outcome u = classify(g.lcf, status);
            failed = failed || u == Outcome::failure;
            success = success && u == Outcome::success;
        }
    });
    if (all_success != nullptr) {
        *all_success = success;
    }
    return failed;
}

// An access-phase refusal was noted for the group (access_refused) and no
// location of its policies passed the request since: what an error_page
// made of the refusal is the refusal (never a success), but for the real
// answer of a location it was handed to with `error_page CODE = LOCATION`
// (no status forced: the request's answer is that location's) whose
// upstream or subrequest failed. A page served with a forced status
// (`error_page 403 /denied.html`, `=401`) is a page: what its location
// fetched is not a judgment of the key.
bool refused_in_access(const ngx_http_pairguard_group_t& g) {
    return g.access_refused && !g.passed_access;
}

// The outcome of a group refused_in_access: failure when a location it was
// handed to answered a failure, or (`unanswered`: the client went away) had
// the request at all; and a refusal that was a wrong guess stays one.
Outcome refused_outcome(ngx_http_request_t* r, const ngx_http_pairguard_ctx_t* ctx, const ngx_http_pairguard_group_t& g,
                        bool unanswered) {
    bool failure = false, attempted = unanswered && ctx->carried_on != g.carried_from;
    answers_since(r, ctx, g, true, [&](ngx_uint_t status, bool sent) {
        failure = failure || (status != 0 && classify(g.lcf, status) == Outcome::failure);
        attempted = attempted || status != 0 || sent;
    });
    return failure || (unanswered && attempted) ? Outcome::failure : Outcome::neutral;
}

// Whether an answer that came before the group's location got past its
// access phase (its PRECONTENT handler never ran) without a refusal noted
// there is no guess: anything but a failure (what made it is not known to be
// a check of the key, and it is no success).
bool before_access(const ngx_http_pairguard_group_t& g, Outcome outcome) {
    return !g.passed_access && outcome != Outcome::failure;
}

ngx_int_t header_filter(ngx_http_request_t* r) noexcept {
    if (r != r->main) {
        ngx_http_pairguard_note_subrequest(r);  // its answer, final now
    }
    try {
        ngx_http_pairguard_ctx_t* ctx = r == r->main ? ngx_http_pairguard_get_ctx(r) : nullptr;
        if (ctx != nullptr && !ctx->groups.empty()) {
            for (auto& g : ctx->groups) {
                if (g.settled) {
                    continue;
                }
                // each group with the lists of the location that reserved it;
                // the guard's own refusal (in a later location) releases
                // them, unless the upstream already answered a failure
                Outcome outcome = ctx->guard_refused ? Outcome::neutral : classify(g.lcf, r->headers_out.status);
                bool upstream_success = true;
                if (refused_in_access(g)) {
                    outcome = refused_outcome(r, ctx, g, false);
                    upstream_success = false;
                } else {
                    if (before_access(g, outcome)) {
                        outcome = Outcome::neutral;
                    }
                    // what the upstream said counts too: `error_page 404
                    // =200` (with proxy_intercept_errors) must not turn a
                    // wrong guess into a success, nor hand out a
                    // trusted-device cookie, and an error_page into a
                    // location that refuses must not release it
                    if (upstream_failed(r, ctx, g, &upstream_success)) {
                        outcome = Outcome::failure;
                    }
                }
                if (g.access_outcome == Outcome::failure) {
                    // a refusal that was a wrong guess stays one, wherever
                    // the request went after it (a login page's 200)
                    outcome = Outcome::failure;
                }
                ngx_http_pairguard_metric_outcome(g, outcome);
                settle(r, g, outcome);
                if (outcome == Outcome::success && upstream_success) {
                    try {
                        issue_devices(r, g);
                    } catch (const std::exception& e) {
                        // the login stands; the device just stays untrusted
                        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "pairguard: device cookie: %s", e.what());
                    }
                }
            }
        }
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "pairguard: %s", e.what());
    }
    return ngx_http_next_header_filter(r);
}

// Whether an upstream may have seen the request after the group's
// reservation: one of its attempts sent the upstream a byte or heard from
// it. A request proxied (ngx_http_upstream: proxy, fastcgi, grpc, ...) that
// never got that far (its client went away while nginx read its body or
// connected) was seen by no one; one that the group's location did not
// proxy (an endpoint of this module, `return 444`, an njs handler after an
// earlier location's upstream) may have been acted on by whatever answered
// it, and one that made a subrequest (`mirror`, `auth_request`, SSI) or went
// on to another location after it was proxied (error_page into an njs or
// Lua handler) may have been carried on by it, whatever its upstream did.
bool upstream_saw(ngx_http_request_t* r, const ngx_http_pairguard_ctx_t* ctx, const ngx_http_pairguard_group_t& g) {
    if (r->upstream == g.upstream_at || ctx->carried_on != g.carried_from) {
        return true;
    }
    // the states are final by now: the upstream's own cleanup (finalizing
    // it, bytes_sent recorded, its connection closed) ran before the pool's
    if (r->upstream_states != nullptr) {
        auto* st = static_cast<ngx_http_upstream_state_t*>(r->upstream_states->elts);
        for (ngx_uint_t i = g.states_from; i < r->upstream_states->nelts; i++) {
            if (st[i].status != 0 || st[i].bytes_sent > 0 || st[i].bytes_received > 0) {
                return true;
            }
        }
    }
    return false;
}

}  // namespace

// An attempt whose answer was never sent (the client hung up while the
// upstream worked, `return 444`) counts as a failure when the upstream may
// have seen it (upstream_saw): it may have acted on it, and left unsettled
// its reservation would only hold the budget until it expires, with nothing
// counted, so that hanging up on every guess would guess without ever
// locking. One the upstream never received (the client went away while
// nginx read its body or connected) counts nothing. A request the guard
// refused (in a later location) releases its reservations as when it is
// answered: unless the upstream already answered a failure.
void ngx_http_pairguard_settle_unanswered(ngx_http_pairguard_ctx_t* ctx) noexcept {
    try {
        ngx_http_request_t* r = ctx->request;
        if (r == nullptr) {
            return;
        }
        // allowed by Redis, but gone before the verdict was carried out (the
        // hang-up read in the same pass as Redis' answer): it never reached
        // the upstream, and what Redis reserved for it is released at once
        // (a reserve still on its way is released by the batch layer)
        if (ctx->state == state_e::decided && ctx->verdict == verdict_e::allow && ctx->verdict_reservation != 0
            && !ctx->candidate.settled) {
            ctx->verdict = verdict_e::none;
            ctx->candidate.reservation = ctx->verdict_reservation;
            settle(r, ctx->candidate, Outcome::neutral);
        }
        for (auto& g : ctx->groups) {
            if (!g.settled) {
                Outcome outcome = Outcome::neutral;
                if (refused_in_access(g)) {
                    // `error_page 403 = /gone` with `return 444`: the
                    // refusal, unless an upstream it was handed to had it
                    outcome = refused_outcome(r, ctx, g, true);
                } else if (upstream_failed(r, ctx, g, nullptr) || (!ctx->guard_refused && upstream_saw(r, ctx, g))) {
                    outcome = Outcome::failure;
                }
                if (g.access_outcome == Outcome::failure) {
                    outcome = Outcome::failure;  // a refusal that was a wrong guess
                }
                ngx_http_pairguard_metric_outcome(g, outcome);
                settle(r, g, outcome);
            }
        }
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0, "pairguard: %s", e.what());
    }
}

ngx_int_t ngx_http_pairguard_guard_access(ngx_http_request_t* r) noexcept {
    try {
        auto* lcf = static_cast<ngx_http_pairguard_loc_conf_t*>(ngx_http_get_module_loc_conf(r, ngx_http_pairguard_module));
        if (lcf->policies == nullptr || lcf->policies->nelts == 0 || r != r->main) {
            return NGX_DECLINED;
        }
        ngx_http_pairguard_ctx_t* ctx = ngx_http_pairguard_get_or_create_ctx(r);
        if (ctx == nullptr) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        if (r->header_sent || r->post_action) {
            // post_action: the request was decided and answered, or its
            // client is gone (nginx runs it after a 499 too, with no header
            // sent); its attempts settle when it ends
            return NGX_DECLINED;
        }
        if (ctx->guard_refused) {
            // refused already (a refusal anywhere refuses); nothing re-enters
            // after an answer, but should it, it is not let through
            return r->header_sent ? NGX_ERROR : refuse(r, ctx, lcf->deny_status,
                                                       pairguard::too_many_attempts_body(ctx->retry_after),
                                                       ctx->retry_after);
        }
        return guard(r, lcf, ctx);
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "pairguard: %s", e.what());
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}

// PRECONTENT: the request got past the access phase of this location; its
// groups reserved here count what follows as guesses (before_access).
ngx_int_t ngx_http_pairguard_guard_precontent(ngx_http_request_t* r) noexcept {
    if (r != r->main) {
        return NGX_DECLINED;
    }
    ngx_http_pairguard_ctx_t* ctx = ngx_http_pairguard_get_ctx(r);
    if (ctx == nullptr || ctx->groups.empty()) {
        return NGX_DECLINED;
    }
    // an error_page with a forced status (`error_page 403 /denied.html`,
    // `=401`) serves a page here: nothing judged. Read now: an upstream
    // error this location intercepts sets it later.
    bool forced = r->err_status != 0;
    try {
        ctx->entered.push_back({r->upstream_states != nullptr ? r->upstream_states->nelts : 0, ctx->subrequests.size(), forced});
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "pairguard: %s", e.what());
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    auto* lcf = static_cast<ngx_http_pairguard_loc_conf_t*>(ngx_http_get_module_loc_conf(r, ngx_http_pairguard_module));
    if (lcf->policies == nullptr || lcf->policies->nelts == 0 || forced) {
        return NGX_DECLINED;
    }
    // every group holding one of this location's policies: an error_page
    // from a location that refused may hand the request to another location
    // of the same policy (which then reserves nothing again), and what comes
    // after its access phase is judged as anywhere
    auto* refs = static_cast<ngx_http_pairguard_policy_ref_t*>(lcf->policies->elts);
    for (auto& g : ctx->groups) {
        for (ngx_uint_t i = 0; i < lcf->policies->nelts && !g.passed_access && !g.settled; i++) {
            g.passed_access = holds(g, refs[i].policy);
        }
    }
    return NGX_DECLINED;
}

// ---- the access phase's refusals --------------------------------------------
//
// A refusal in the access phase (allow/deny, auth_basic, auth_request, any
// module's handler) is noted where it is made, on every unsettled group of
// the request: an error_page may turn it into anything (a 302 to a login
// page, a page, `return 444`). A refusal that judged the key is classified
// like an upstream's answer (auth_basic's 401 to wrong credentials, an
// access_by_lua check's 403, an auth_request's subrequest) and a failure
// stays one whatever follows; deny's 403 (the client's address) and
// auth_basic's challenge of a request without credentials judge nothing.
// With `satisfy any` a refusal counts only if the phase ends refused
// (post_access_checker). After a refusal, a location the request is handed
// to with `error_page CODE = LOCATION` is judged: its failures count
// (refused_outcome), and a location of the same policy judges it as
// anywhere (guard_precontent); a page with a forced status is not.
namespace {

// `judged`: whether the refusal judged the request's key (not deny's 403,
// not auth_basic's challenge of a request without credentials).
void access_refused(ngx_http_request_t* r, ngx_int_t rc, bool judged) {
    ngx_http_pairguard_ctx_t* ctx = ngx_http_pairguard_get_ctx(r);
    if (ctx == nullptr) {
        return;
    }
    // every unsettled group, wherever it was reserved and whether this
    // location holds its policies or not (`try_files ... @gated` after the
    // location that reserved it passed its own access phase; a named
    // location does not inherit `pairguard`): the request is refused here.
    // Classified with the group's own lists; a refusal is no success.
    for (auto& g : ctx->groups) {
        if (g.settled) {
            continue;
        }
        if ((judged && classify(g.lcf, static_cast<ngx_uint_t>(rc)) == Outcome::failure)
            || upstream_failed(r, ctx, g, nullptr)) {
            g.access_outcome = Outcome::failure;
        }
        g.access_refused = true;
        g.passed_access = false;
    }
}

// The status an ACCESS handler returned, for ngx_http_core_access_phase to
// act on (one request at a time: a worker runs the phases on one thread).
ngx_int_t access_rc = NGX_DECLINED;

ngx_int_t returned_access_rc(ngx_http_request_t*) noexcept {
    return access_rc;
}

// The checker of the POST_ACCESS entry: a `satisfy any` access phase that
// ends refused (r->access_code) notes its refusals now.
ngx_int_t post_access_checker(ngx_http_request_t* r, ngx_http_phase_handler_t* ph) noexcept {
    ngx_http_pairguard_ctx_t* ctx = r == r->main ? ngx_http_pairguard_get_ctx(r) : nullptr;
    if (ctx != nullptr && !ctx->pending_refusals.empty()) {
        if (r->access_code != 0) {
            try {
                for (const auto& [rc, judged] : ctx->pending_refusals) {
                    access_refused(r, rc, judged);
                }
            } catch (const std::exception& e) {
                ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "pairguard: %s", e.what());
            }
        }
        ctx->pending_refusals.clear();
    }
    return ngx_http_core_post_access_phase(r, ph);
}

// The checker of every ACCESS entry of the phase engine. It calls the entry's
// handler itself, notes a refusal (under `satisfy any`, one that another
// handler may still overrule is kept pending), and hands the status to
// nginx's own checker through a copy of the entry whose handler returns it:
// satisfy, auth_delay and finalizing stay nginx's. Handlers stay in their
// entries, so a module that moves its entry at run time (access_by_lua moves
// itself to the end of the phase on the first request) still runs where it
// put itself.
ngx_int_t access_checker(ngx_http_request_t* r, ngx_http_phase_handler_t* ph) noexcept {
    if (r != r->main) {
        return ngx_http_core_access_phase(r, ph);  // skips the phase
    }
    ngx_http_handler_pt handler = ph->handler;
    ngx_int_t rc = handler(r);
    if (rc == NGX_AGAIN || rc == NGX_DONE) {
        // as nginx's checker: the handler may have finished the request
        // already (access_by_lua's ngx.exec), `r` is not touched again
        return NGX_OK;
    }
    auto* clcf = static_cast<ngx_http_core_loc_conf_t*>(ngx_http_get_module_loc_conf(r, ngx_http_core_module));
    bool any = clcf->satisfy != NGX_HTTP_SATISFY_ALL;
    bool refused = rc >= NGX_HTTP_SPECIAL_RESPONSE;
    // (the context only when there is something to note: most handlers decline)
    ngx_http_pairguard_ctx_t* ctx = refused || (rc == NGX_OK && any) ? ngx_http_pairguard_get_ctx(r) : nullptr;
    if (refused && ctx != nullptr) {
        try {
            ngx_http_pairguard_main_conf_t* mcf = main_conf(r);
            bool address = handler == mcf->address_handler && rc == NGX_HTTP_FORBIDDEN;
            bool challenge = handler == mcf->basic_handler && rc == NGX_HTTP_UNAUTHORIZED && r->headers_in.user.len == 0;
            if (any && (rc == NGX_HTTP_FORBIDDEN || rc == NGX_HTTP_UNAUTHORIZED)) {
                // another handler may still pass the request
                ctx->pending_refusals.emplace_back(rc, !address && !challenge);
            } else {
                access_refused(r, rc, !address && !challenge);
            }
        } catch (const std::exception& e) {
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "pairguard: %s", e.what());
        }
    } else if (rc == NGX_OK && any && ctx != nullptr) {
        ctx->pending_refusals.clear();  // satisfy any: passed
    }
    // `ph` may hold another entry now (a handler that moved its own); the
    // checker reads only `next` of it, the same for every entry of the phase
    ngx_http_phase_handler_t answered = *ph;
    answered.handler = returned_access_rc;
    access_rc = rc;
    return ngx_http_core_access_phase(r, &answered);
}

}  // namespace

// The ACCESS handler of a module nginx builds in (allow/deny's, auth_basic's),
// so that its refusals can be told from other handlers' (access_checker):
// those modules keep their handler static, and their postconfiguration does
// nothing but push it onto the access phase's handlers, so it is run once
// more here and what it pushed is taken back off. A module nginx was built
// without (the weak reference is null), or a postconfiguration that does
// anything else, leaves it unknown (null): its refusals are then classified
// like any handler's.
static ngx_http_handler_pt learn_access_handler(ngx_conf_t* cf, ngx_module_t* module) {
    if (module == nullptr || module->type != NGX_HTTP_MODULE) {
        return nullptr;
    }
    auto* module_ctx = static_cast<ngx_http_module_t*>(module->ctx);
    if (module_ctx == nullptr || module_ctx->postconfiguration == nullptr) {
        return nullptr;
    }
    auto* cmcf = static_cast<ngx_http_core_main_conf_t*>(ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module));
    ngx_array_t* handlers = &cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers;
    ngx_uint_t before = handlers->nelts;
    ngx_http_handler_pt found = nullptr;
    if (module_ctx->postconfiguration(cf) == NGX_OK && handlers->nelts == before + 1) {
        found = static_cast<ngx_http_handler_pt*>(handlers->elts)[before];
    }
    if (handlers->nelts > before) {
        handlers->nelts = before;
    }
    return found;
}

// Runs in init_module, after the whole configuration built the phase engine
// (postconfiguration would miss the handlers of modules loaded after this
// one), once per cycle: a new cycle has a new engine.
ngx_int_t ngx_http_pairguard_access_wrap(ngx_cycle_t* cycle) noexcept {
    auto* mcf = static_cast<ngx_http_pairguard_main_conf_t*>(
        ngx_http_cycle_get_module_main_conf(cycle, ngx_http_pairguard_module));
    if (mcf == nullptr || mcf->policies.nelts == 0) {
        return NGX_OK;  // no guard policy: nothing to note
    }
    auto* cmcf = static_cast<ngx_http_core_main_conf_t*>(ngx_http_cycle_get_module_main_conf(cycle, ngx_http_core_module));
    for (ngx_http_phase_handler_t* ph = cmcf->phase_engine.handlers; ph->checker != nullptr; ph++) {
        if (ph->checker == ngx_http_core_access_phase) {
            ph->checker = access_checker;
        } else if (ph->checker == ngx_http_core_post_access_phase) {
            ph->checker = post_access_checker;
        }
    }
    return NGX_OK;
}

// A key template, built from indexed variables (see key_template.hpp).
bool ngx_http_pairguard_eval_key(ngx_http_request_t* r, const ngx_array_t* key, std::string& out, bool normalize) {
    out.clear();
    auto* parts = static_cast<const ngx_http_pairguard_key_part_t*>(key->elts);
    for (ngx_uint_t i = 0; i < key->nelts; i++) {
        if (parts[i].index == NGX_ERROR) {
            // under key_normalize already in lower case (the policy's configuration)
            out.append(reinterpret_cast<const char*>(parts[i].literal.data), parts[i].literal.len);
            continue;
        }
        ngx_http_variable_value_t* v = ngx_http_get_flushed_variable(r, static_cast<ngx_uint_t>(parts[i].index));
        if (v == nullptr) {
            return false;
        }
        if (v->not_found) {
            continue;
        }
        std::string_view raw(reinterpret_cast<const char*>(v->data), v->len);
        bool decode = parts[i].cookie.len > 0 || parts[i].arg.len > 0;
        if (!decode && (!normalize || parts[i].binary)) {
            out.append(raw);
            continue;
        }
        std::string value;
        if (decode) {
            // every spelling of one value is one key (%76ictim is victim)
            pairguard::pair_key_value(
                raw, parts[i].cookie.len > 0 ? pairguard::PairList::cookie : pairguard::PairList::query, value);
        } else {
            value.assign(raw);
        }
        if (normalize && !parts[i].binary) {
            // each value on its own: an address' bytes folded or trimmed
            // would make two clients one key (0x46 and 0x66, a leading 0x0a)
            pairguard::normalize_key_value(value);
        }
        out.append(value);
        OPENSSL_cleanse(value.data(), value.size());
    }
    if (normalize && pairguard::key_value_blank(out)) {
        out.clear();  // blanks only (the literals') are no key, as a whole-value trim made them
    }
    return true;
}

bool ngx_http_pairguard_key_repeated(ngx_http_request_t* r, const ngx_array_t* key) {
    auto* parts = static_cast<const ngx_http_pairguard_key_part_t*>(key->elts);
    for (ngx_uint_t i = 0; i < key->nelts; i++) {
        const ngx_http_pairguard_key_part_t& kp = parts[i];
        if (kp.header.len > 0) {
            std::string_view name = as_view(kp.header);
            std::optional<std::string_view> first;
            for (ngx_list_part_t* part = &r->headers_in.headers.part; part != nullptr; part = part->next) {
                auto* h = static_cast<ngx_table_elt_t*>(part->elts);
                for (ngx_uint_t j = 0; j < part->nelts; j++) {
                    if (h[j].hash == 0 || !pairguard::header_is_variable(as_view(h[j].key), name)) {
                        continue;
                    }
                    if (!first) {
                        first = as_view(h[j].value);
                    } else if (*first != as_view(h[j].value)) {
                        return true;
                    }
                }
            }
        } else if (kp.cookie.len > 0 || kp.arg.len > 0) {
            pairguard::PairList kind = kp.cookie.len > 0 ? pairguard::PairList::cookie : pairguard::PairList::query;
            // what nginx reads, and every copy some backend may read instead
            std::optional<std::string> nginx_value;
            ngx_http_variable_value_t* v = ngx_http_get_flushed_variable(r, static_cast<ngx_uint_t>(kp.index));
            std::string_view raw;
            if (v != nullptr && !v->not_found) {
                raw = std::string_view(reinterpret_cast<const char*>(v->data), v->len);
                nginx_value.emplace();
                pairguard::pair_key_value(raw, kind, *nginx_value);
            }
            pairguard::NameCopies copies;
            if (kind == pairguard::PairList::cookie) {
                // a value backends read differently is no key (Python
                // unescapes "\151", trims non-ASCII blanks, splits at spaces)
                copies.differs = nginx_value && !pairguard::plain_cookie_value(raw);
                auto** h = static_cast<ngx_table_elt_t**>(r->headers_in.cookies.elts);
                for (ngx_uint_t j = 0; j < r->headers_in.cookies.nelts; j++) {
                    pairguard::scan_name_copies(as_view(h[j]->value), kind, as_view(kp.cookie), nginx_value, copies);
                }
            } else {
                pairguard::scan_name_copies(as_view(r->args), kind, as_view(kp.arg), nginx_value, copies);
            }
            bool ambiguous = copies.ambiguous(nginx_value.has_value());
            if (nginx_value) {
                OPENSSL_cleanse(nginx_value->data(), nginx_value->size());
            }
            if (ambiguous) {
                return true;
            }
        }
    }
    return false;
}

void ngx_http_pairguard_log_lock_start(ngx_log_t* log, const ngx_http_pairguard_key_t& key, int64_t lock_ms) {
    ngx_http_pairguard_metric_lockout(key.policy);
    std::string label = pairguard::tag_label(key.tag);
    ngx_log_error(NGX_LOG_NOTICE, log, 0, "pairguard: lockout start, policy \"%V\", %s %s, %Ls", &key.policy->name,
                  ngx_http_pairguard_key_kind(key), label.c_str(), pairguard::retry_after_seconds(lock_ms));
}

void ngx_http_pairguard_log_lock_end(ngx_log_t* log, const ngx_http_pairguard_key_t& key) {
    std::string label = pairguard::tag_label(key.tag);
    ngx_log_error(NGX_LOG_NOTICE, log, 0, "pairguard: lockout end, policy \"%V\", %s %s", &key.policy->name,
                  ngx_http_pairguard_key_kind(key), label.c_str());
}

ngx_int_t ngx_http_pairguard_init_guard(ngx_conf_t* cf) {
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = header_filter;
    auto* mcf = static_cast<ngx_http_pairguard_main_conf_t*>(ngx_http_conf_get_module_main_conf(cf, ngx_http_pairguard_module));
    mcf->address_handler = learn_access_handler(cf, &ngx_http_access_module);
    mcf->basic_handler = learn_access_handler(cf, &ngx_http_auth_basic_module);
    return NGX_OK;
}
