// The pairing flow at the edge (SPEC section 3): the endpoints of
// `pairguard_pairing`, and `pairguard_require_paired` with its per-worker
// approval cache, kept honest by the events channel.
//
// Everything that decides lives in src/core/pairing.* and src/lua/pair_*.lua,
// shared with pairguardctl; this file only moves requests and replies.

#include <algorithm>
#include <unordered_map>

#include "../core/ttl_cache.hpp"

#include "ngx_http_pairguard.h"

namespace {

using pairguard::Reply;
using pairguard::StoreCall;

ngx_http_pairguard_main_conf_t* main_conf(ngx_http_request_t* r) {
    return static_cast<ngx_http_pairguard_main_conf_t*>(ngx_http_get_module_main_conf(r, ngx_http_pairguard_module));
}

std::string_view view(const ngx_str_t& s) {
    return std::string_view(reinterpret_cast<const char*>(s.data), s.len);
}

ngx_http_pairguard_answer_t to_answer(const pairguard::HttpAnswer& a) {
    return ngx_http_pairguard_answer_t{static_cast<ngx_uint_t>(a.status), a.body, a.retry_after, {}};
}

// From the body handler, on the request's own event.
void answer_now(ngx_http_request_t* r, const pairguard::HttpAnswer& a) {
    ngx_http_pairguard_answer_now(r, to_answer(a));
}

// From a Redis callback (or wherever one may be running): the answer is sent
// from the request's connection, never from inside a Redis reply callback.
void answer_later(ngx_http_request_t* r, const pairguard::HttpAnswer& a) {
    ngx_http_pairguard_answer_later(r, to_answer(a));
}

void answer_unavailable(ngx_http_request_t* r) {
    answer_later(r, pairguard::HttpAnswer{503, pairguard::render_error("store_unavailable"), 0});
}

pairguard::HttpAnswer invalid_request(std::string_view message) {
    return pairguard::HttpAnswer{400, pairguard::render_invalid_request(message), 0};
}

// A store call for an endpoint: whatever its reply handler throws, the
// request is answered (500) rather than left waiting.
bool store_call(ngx_http_request_t* r, ngx_http_pairguard_ctx_t* ctx, const StoreCall& sc,
                ngx_http_pairguard_reply_fn done) {
    return ngx_http_pairguard_call(ctx, sc, [r, done = std::move(done)](bool ok, const Reply& reply) noexcept {
        try {
            done(ok, reply);
        } catch (const std::exception& e) {
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "pairguard: %s", e.what());
            try {
                answer_later(r, pairguard::HttpAnswer{500, pairguard::render_error("internal_error"), 0});
            } catch (const std::exception&) {
                ngx_http_pairguard_answer_t bare;  // allocates nothing
                bare.status = NGX_HTTP_INTERNAL_SERVER_ERROR;
                ngx_http_pairguard_answer_later(r, std::move(bare));
            }
        }
    });
}

std::optional<std::string> query_arg(ngx_http_request_t* r, const char* name) {
    ngx_str_t value;
    if (ngx_http_arg(r, (u_char*) name, ngx_strlen(name), &value) != NGX_OK) {
        return std::nullopt;
    }
    u_char* buf = static_cast<u_char*>(ngx_pnalloc(r->pool, value.len + 1));
    if (buf == nullptr) {
        return std::nullopt;
    }
    u_char* src = value.data;
    u_char* dst = buf;
    ngx_unescape_uri(&dst, &src, value.len, NGX_UNESCAPE_URI);
    std::string out(reinterpret_cast<const char*>(buf), static_cast<size_t>(dst - buf));
    for (char& ch : out) {
        if (ch == '+') {
            ch = ' ';
        }
    }
    return out;
}

// ---- the endpoints ----------------------------------------------------------

constexpr int kCodeDraws = 4;  // a fresh code colliding with a pending one is redrawn

void do_request(ngx_http_request_t* r, ngx_http_pairguard_ctx_t* ctx, pairguard::PairingRequest req, int draws) {
    ngx_http_pairguard_main_conf_t* mcf = main_conf(r);
    std::string code = pairguard::generate_code();
    StoreCall sc = pairguard::make_request(*mcf->keys, view(mcf->prefix), *mcf->pairing, req, code);
    bool sent = store_call(r, ctx, sc, [r, ctx, req, code, draws](bool ok, const Reply& reply) {
        if (!ok) {
            answer_unavailable(r);
            return;
        }
        pairguard::RequestResult res = pairguard::decode_request(reply);
        if (res.status == pairguard::RequestStatus::collision && draws + 1 < kCodeDraws) {
            do_request(r, ctx, req, draws + 1);
            return;
        }
        answer_later(r, pairguard::answer_request(res, code));
    });
    if (!sent) {
        answer_unavailable(r);
    }
}

void do_approve(ngx_http_request_t* r, ngx_http_pairguard_ctx_t* ctx, const std::string& body) {
    ngx_http_pairguard_main_conf_t* mcf = main_conf(r);
    pairguard::ApproveInput in;
    std::string err = pairguard::parse_approve_body(body, in);
    if (err.empty() && !pairguard::platform_allowed(*mcf->pairing, in.platform)) {
        // a public approve must not make Redis keys for any name it is sent
        err = "platform not allowed";
    }
    if (!err.empty()) {
        answer_now(r, invalid_request(err));
        return;
    }
    auto code = pairguard::normalize_code(in.code);
    if (!code) {
        // cannot be a code at all: nothing to count, nothing to look up
        answer_now(r, pairguard::HttpAnswer{404, pairguard::render_error("invalid_code"), 0});
        return;
    }
    StoreCall sc = pairguard::make_approve(*mcf->keys, view(mcf->prefix), *mcf->pairing, in.platform, *code);
    std::string platform = in.platform;
    bool sent = store_call(r, ctx, sc, [r, platform](bool ok, const Reply& reply) {
        if (!ok) {
            answer_unavailable(r);
            return;
        }
        pairguard::ApproveResult res = pairguard::decode_approve(reply);
        if (res.lock_started_ms > 0) {
            ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                          "pairguard: pairing lockout start, platform \"%s\", %Ls", platform.c_str(),
                          (res.lock_started_ms + 999) / 1000);
        }
        if (res.burned > 0) {
            ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                          "pairguard: %L pending code(s) of platform \"%s\" burned after too many wrong approvals",
                          res.burned, platform.c_str());
        }
        if (res.status == pairguard::ApproveStatus::ok) {
            ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0, "pairguard: pairing approved, platform \"%s\"",
                          platform.c_str());
        }
        answer_later(r, pairguard::answer_approve(res, platform));
    });
    if (!sent) {
        answer_unavailable(r);
    }
}

// pending / approved, for one platform or (no ?platform=) every configured
// one: a bounded number of calls, whatever strangers sent.
struct listing_t {
    std::vector<pairguard::PendingEntry> pending;
    std::vector<pairguard::ApprovedEntry> approved;
    int64_t cleared = 0;
    size_t outstanding = 0;
    bool failed = false;
};

void list_platform(ngx_http_request_t* r, ngx_http_pairguard_ctx_t* ctx, std::shared_ptr<listing_t> acc,
                   const std::string& platform, ngx_uint_t op, bool clear);

void finish_listing(ngx_http_request_t* r, const listing_t& acc, ngx_uint_t op, bool clear) {
    if (acc.failed) {
        answer_unavailable(r);
    } else if (clear) {
        answer_later(r, pairguard::HttpAnswer{200, pairguard::render_cleared(acc.cleared), 0});
    } else if (op == NGX_HTTP_PAIRGUARD_PAIRING_PENDING) {
        answer_later(r, pairguard::HttpAnswer{200, pairguard::render_pending(acc.pending), 0});
    } else {
        answer_later(r, pairguard::HttpAnswer{200, pairguard::render_approved(acc.approved), 0});
    }
}

void list_platform(ngx_http_request_t* r, ngx_http_pairguard_ctx_t* ctx, std::shared_ptr<listing_t> acc,
                   const std::string& platform, ngx_uint_t op, bool clear) {
    ngx_http_pairguard_main_conf_t* mcf = main_conf(r);
    StoreCall sc = clear ? pairguard::make_clear(*mcf->keys, view(mcf->prefix), platform)
                   : op == NGX_HTTP_PAIRGUARD_PAIRING_PENDING
                       ? pairguard::make_pending(*mcf->keys, view(mcf->prefix), platform)
                       : pairguard::make_approved(*mcf->keys, view(mcf->prefix), platform);
    acc->outstanding++;
    bool sent = store_call(r, ctx, sc, [r, acc, platform, op, clear](bool ok, const Reply& reply) {
        acc->outstanding--;
        if (!ok) {
            acc->failed = true;
        } else if (clear) {
            auto n = pairguard::decode_clear(reply);
            acc->failed = acc->failed || !n;
            acc->cleared += n.value_or(0);
        } else if (op == NGX_HTTP_PAIRGUARD_PAIRING_PENDING) {
            auto l = pairguard::decode_pending(reply, platform);
            acc->failed = acc->failed || !l;
            if (l) {
                acc->pending.insert(acc->pending.end(), l->begin(), l->end());
            }
        } else {
            auto l = pairguard::decode_approved(reply, platform);
            acc->failed = acc->failed || !l;
            if (l) {
                acc->approved.insert(acc->approved.end(), l->begin(), l->end());
            }
        }
        if (acc->outstanding == 0) {
            finish_listing(r, *acc, op, clear);
        }
    });
    if (!sent) {
        acc->outstanding--;
        acc->failed = true;
    }
}

void do_listing(ngx_http_request_t* r, ngx_http_pairguard_ctx_t* ctx, ngx_uint_t op, bool clear) {
    auto acc = std::make_shared<listing_t>();
    std::vector<std::string> platforms;
    auto platform = query_arg(r, "platform");
    if (platform) {
        // any well-formed name: the owner may still list (and revoke) users
        // of a platform that has left the configuration
        auto p = pairguard::normalize_platform(*platform);
        if (!p) {
            answer_now(r, invalid_request("invalid \"platform\""));
            return;
        }
        platforms.push_back(*p);
    } else {
        platforms = main_conf(r)->pairing->platforms;
        std::sort(platforms.begin(), platforms.end());
    }
    for (const std::string& p : platforms) {
        list_platform(r, ctx, acc, p, op, clear);
    }
    if (acc->outstanding == 0) {
        finish_listing(r, *acc, op, clear);
    }
}

void do_revoke(ngx_http_request_t* r, ngx_http_pairguard_ctx_t* ctx) {
    ngx_http_pairguard_main_conf_t* mcf = main_conf(r);
    auto platform_raw = query_arg(r, "platform");
    auto user_raw = query_arg(r, "user_id");
    auto platform = platform_raw ? pairguard::normalize_platform(*platform_raw) : std::nullopt;
    auto user = platform && user_raw ? pairguard::normalize_user_id(*platform, *user_raw) : std::nullopt;
    if (!platform || !user) {
        answer_now(r, invalid_request("\"platform\" and \"user_id\" are required"));
        return;
    }
    std::string p = *platform;
    bool sent = store_call(r, ctx, pairguard::make_revoke(*mcf->keys, view(mcf->prefix), *platform, *user),
                     [r, p](bool ok, const Reply& reply) {
                         if (!ok) {
                             answer_unavailable(r);
                             return;
                         }
                         auto res = pairguard::decode_revoke(reply);
                         if (res && *res) {
                             ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                                           "pairguard: pairing revoked, platform \"%s\"", p.c_str());
                         }
                         answer_later(r, pairguard::answer_revoke(res));
                     });
    if (!sent) {
        answer_unavailable(r);
    }
}

void pairing_body_handler(ngx_http_request_t* r) noexcept {
    try {
        auto* lcf = static_cast<ngx_http_pairguard_loc_conf_t*>(ngx_http_get_module_loc_conf(r, ngx_http_pairguard_module));
        ngx_http_pairguard_ctx_t* ctx = ngx_http_pairguard_get_or_create_ctx(r);
        if (ctx == nullptr) {
            ngx_http_finalize_request(r, NGX_ERROR);
            return;
        }
        ngx_pairguard_redis_t* store = ngx_http_pairguard_store();
        if (store == nullptr || !store->accepting()) {
            answer_now(r, pairguard::HttpAnswer{503, pairguard::render_error("store_unavailable"), 0});
            return;
        }
        // a client that goes away is noticed; its calls are cancelled
        r->read_event_handler = ngx_http_test_reading;

        std::string body;
        if (!ngx_http_pairguard_body_text(r, body)) {
            answer_now(r, pairguard::HttpAnswer{413, pairguard::render_error("body_too_large"), 0});
            return;
        }
        ngx_http_pairguard_main_conf_t* mcf = main_conf(r);
        switch (lcf->pairing_op) {
        case NGX_HTTP_PAIRGUARD_PAIRING_REQUEST: {
            pairguard::PairingRequest req;
            std::string err = pairguard::parse_request_body(body, req);
            if (err.empty() && !pairguard::platform_allowed(*mcf->pairing, req.platform)) {
                err = "platform not allowed";
            }
            if (!err.empty()) {
                answer_now(r, invalid_request(err));
                return;
            }
            // lists the (configured) platform for pairguardctl's listings
            // without a platform (another slot, so not inside the request
            // script); its answer does not matter
            store_call(r, ctx, pairguard::make_register(view(mcf->prefix), req.platform), [](bool, const Reply&) {});
            do_request(r, ctx, std::move(req), 0);
            return;
        }
        case NGX_HTTP_PAIRGUARD_PAIRING_APPROVE:
            do_approve(r, ctx, body);
            return;
        case NGX_HTTP_PAIRGUARD_PAIRING_PENDING:
            do_listing(r, ctx, lcf->pairing_op, r->method == NGX_HTTP_DELETE);
            return;
        default:
            if (r->method == NGX_HTTP_DELETE) {
                do_revoke(r, ctx);
            } else {
                do_listing(r, ctx, lcf->pairing_op, false);
            }
            return;
        }
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "pairguard: %s", e.what());
        answer_later(r, pairguard::HttpAnswer{500, pairguard::render_error("internal_error"), 0});
    }
}

// ---- the approval cache ------------------------------------------------------

constexpr ngx_msec_t kPairedCacheMs = 1000;  // the bound when an event is missed
constexpr size_t kPairedCacheMax = 65536;

struct paired_entry_t {
    bool approved;
    std::string platform_tag;  // platform_tag(): what events name
};

// Per worker, keyed by "platform\0user"; only this worker's event loop
// touches it. One cache for every platform (platform and user may both come
// from variables): entries leave a second after they came (core/ttl_cache),
// so ever new ids cost only the last second's, 65536 at most.
// A check sent before an approval event or a resync does not put its (maybe
// revoked) answer into the cache (the cache's generation).
pairguard::TtlCache<paired_entry_t> paired_cache(kPairedCacheMs, kPairedCacheMax);

std::string paired_key(const std::string& platform, const std::string& user) {
    std::string k;
    k.reserve(platform.size() + 1 + user.size());
    k.append(platform).push_back('\0');
    k.append(user);
    return k;
}

// The tag is worked out here, with the Redis answer, not when an event
// comes: platforms may come from variables, and an event must not cost one
// HMAC per platform the cache holds.
void remember(ngx_http_pairguard_main_conf_t* mcf, const std::string& platform, const std::string& user, bool approved) {
    paired_cache.put(paired_key(platform, user), paired_entry_t{approved, pairguard::platform_tag(*mcf->keys, platform)},
                     ngx_current_msec);
}

// The check's reply: the verdict is kept, and carried out when the phases
// run again from the request's own connection.
void paired_done(ngx_http_pairguard_ctx_t* ctx, bool ok, const Reply& reply) noexcept {
    ngx_http_request_t* r = ctx->request;
    ctx->paired = ngx_http_pairguard_ctx_t::paired_e::unavailable;
    try {
        pairguard::PairedCheck check = ok ? pairguard::decode_check(reply) : pairguard::PairedCheck{};
        if (check.valid) {
            ctx->paired = check.approved ? ngx_http_pairguard_ctx_t::paired_e::approved
                                         : ngx_http_pairguard_ctx_t::paired_e::refused;
            if (ctx->paired_generation == paired_cache.generation()) {
                remember(main_conf(r), ctx->paired_platform, ctx->paired_user, check.approved);
            }
        }
    } catch (const std::exception& e) {
        // the verdict stands; only the cache missed it
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "pairguard: %s", e.what());
    }
    ngx_http_pairguard_resume(r);  // whatever happened: the request never waits forever
}

ngx_int_t paired_verdict(ngx_http_request_t* r, ngx_http_pairguard_ctx_t* ctx) {
    using p = ngx_http_pairguard_ctx_t::paired_e;
    switch (ctx->paired) {
    case p::approved:
        return NGX_DECLINED;
    case p::refused:
        ctx->paired = p::unchecked;  // answered; never decided again
        return ngx_http_pairguard_answer_now(r, to_answer(pairguard::answer_not_paired()));
    default:
        return ngx_http_pairguard_answer_now(
            r, ngx_http_pairguard_answer_t{NGX_HTTP_SERVICE_UNAVAILABLE, pairguard::render_error("store_unavailable"), 0, {}});
    }
}

}  // namespace

ngx_int_t ngx_http_pairguard_pairing_handler(ngx_http_request_t* r) noexcept {
    auto* lcf = static_cast<ngx_http_pairguard_loc_conf_t*>(ngx_http_get_module_loc_conf(r, ngx_http_pairguard_module));
    ngx_uint_t allowed;
    switch (lcf->pairing_op) {
    case NGX_HTTP_PAIRGUARD_PAIRING_REQUEST:
    case NGX_HTTP_PAIRGUARD_PAIRING_APPROVE:
        allowed = NGX_HTTP_POST;
        break;
    default:
        allowed = NGX_HTTP_GET | NGX_HTTP_DELETE;
        break;
    }
    ngx_int_t rc;
    if (!ngx_http_pairguard_method_allowed(r, allowed, allowed == NGX_HTTP_POST ? "POST" : "GET, DELETE", &rc)) {
        return rc;
    }
    r->request_body_in_single_buf = 1;
    rc = ngx_http_read_client_request_body(r, pairing_body_handler);
    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }
    return NGX_DONE;
}

ngx_int_t ngx_http_pairguard_paired_handler(ngx_http_request_t* r) noexcept {
    try {
        auto* lcf = static_cast<ngx_http_pairguard_loc_conf_t*>(ngx_http_get_module_loc_conf(r, ngx_http_pairguard_module));
        if (lcf->paired_platform == nullptr || r != r->main) {
            return NGX_DECLINED;
        }
        ngx_http_pairguard_ctx_t* ctx = ngx_http_pairguard_get_or_create_ctx(r);
        if (ctx == nullptr) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        using p = ngx_http_pairguard_ctx_t::paired_e;
        if (ctx->paired == p::waiting) {
            return ngx_http_pairguard_suspend(r);
        }
        if (ngx_http_pairguard_key_repeated(r, lcf->paired_platform)
            || ngx_http_pairguard_key_repeated(r, lcf->paired_user)) {
            // nginx reads the first of two X-User-Id headers, a backend may
            // act on the last: not a user the check can vouch for
            ctx->paired = p::refused;
            return paired_verdict(r, ctx);
        }
        std::string platform_raw, user_raw;
        if (!ngx_http_pairguard_eval_key(r, lcf->paired_platform, platform_raw)
            || !ngx_http_pairguard_eval_key(r, lcf->paired_user, user_raw)) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        auto platform = pairguard::normalize_platform(platform_raw);
        auto user = platform ? pairguard::normalize_user_id(*platform, user_raw) : std::nullopt;
        if (!platform || !user) {
            ctx->paired = p::refused;
            return paired_verdict(r, ctx);
        }
        if (ctx->paired != p::unchecked && ctx->paired_platform == *platform && ctx->paired_user == *user) {
            // checked already, in this location (the answer came) or in one
            // before it (an internal redirect) for the same user
            return paired_verdict(r, ctx);
        }
        // first check, or a location that names another platform or user
        // than the one checked before an internal redirect: that pair is
        // checked, not the earlier one's verdict carried over
        ctx->paired = p::unchecked;
        ctx->paired_platform = *platform;
        ctx->paired_user = *user;

        ngx_http_pairguard_main_conf_t* mcf = main_conf(r);
        if (const paired_entry_t* cached = paired_cache.get(paired_key(*platform, *user), ngx_current_msec)) {
            ctx->paired = cached->approved ? p::approved : p::refused;
            return paired_verdict(r, ctx);
        }
        ctx->paired_generation = paired_cache.generation();

        StoreCall sc = pairguard::make_check(*mcf->keys, view(mcf->prefix), *platform, *user);
        bool sent = ngx_http_pairguard_call(ctx, sc, [ctx](bool ok, const Reply& reply) { paired_done(ctx, ok, reply); });
        if (!sent) {
            ctx->paired = p::unavailable;
            return paired_verdict(r, ctx);
        }
        ctx->paired = p::waiting;
        return ngx_http_pairguard_suspend(r);
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "pairguard: %s", e.what());
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}

void ngx_http_pairguard_pairing_event(ngx_shm_zone_t* zone, std::string_view message) {
    auto ev = pairguard::parse_event(message);
    if (!ev) {
        return;
    }
    switch (ev->kind) {
    case pairguard::EventKind::approved:
    case pairguard::EventKind::revoked:
        // the event names the user by an HMAC this cache does not keep:
        // forget the whole platform, one Redis call per user brings it back
        paired_cache.erase_if([&](const paired_entry_t& e) { return e.platform_tag == ev->tag; });
        break;
    case pairguard::EventKind::unlocked_guard: {
        std::string prefix;
        if (zone != nullptr && pairguard::base64url_decode(ev->tag, prefix)) {
            ngx_http_pairguard_forget_lock(zone, prefix);
        }
        break;
    }
    default:
        break;
    }
}

void ngx_http_pairguard_pairing_resync() {
    paired_cache.clear();
}
