// Types shared by the module's nginx glue files.
#pragma once

#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "../core/auth_store.hpp"
#include "../core/body.hpp"
#include "../core/device.hpp"
#include "../core/pairing.hpp"
#include "../core/keys.hpp"
#include "../core/policy.hpp"
#include "../core/small_vec.hpp"
#include "../redis/ngx_pairguard_redis.h"
#include "ngx_pairguard.h"

#define NGX_HTTP_PAIRGUARD_DOWN_LOCAL 0
#define NGX_HTTP_PAIRGUARD_DOWN_DENY 1
#define NGX_HTTP_PAIRGUARD_DOWN_ALLOW 2

extern "C" ngx_module_t ngx_http_pairguard_module;

// The per-worker caches (sessions, approvals) and the verdict zone's lock
// times count ngx_current_msec as a clock that never wraps; a 32-bit
// ngx_msec_t wraps every 49.7 days.
static_assert(sizeof(ngx_msec_t) >= 8, "pairguard needs a 64-bit ngx_msec_t (a 64-bit build)");

struct ngx_http_pairguard_key_part_t {
    ngx_str_t literal;
    ngx_int_t index;  // NGX_ERROR for a literal
    ngx_str_t body_field;  // NAME of $pairguard_body_NAME, else empty
    // NAME of $http_NAME (one header: nginx reads the first of several), of
    // $cookie_NAME and of $arg_NAME, in lower case, else empty
    ngx_str_t header;
    ngx_str_t cookie;
    ngx_str_t arg;
    bool binary;  // $binary_remote_addr: bytes, never normalised (key_normalize)
};

struct ngx_http_pairguard_policy_t {
    ngx_str_t name;
    ngx_array_t key;  // of ngx_http_pairguard_key_part_t
    pairguard::PolicyLimits limits;
    ngx_str_t limits_resp;  // the five limit arguments, RESP-encoded once
    bool uses_body;
    bool key_normalize;  // key_normalize: trimmed, ASCII lower case
    // the key has the client's address in it (core: key_pinned_to_client):
    // its reserve may take the script-free path
    bool pinned_to_client;
    ngx_uint_t index;  // in mcf->policies: the policy's counters (pairguard_status)
    // trusted devices (device_cookie=); device_cookie.len == 0: none
    ngx_str_t device_cookie;
    int64_t device_ttl_s;
    pairguard::PolicyLimits device_limits;
    ngx_str_t device_limits_resp;
};

struct ngx_http_pairguard_main_conf_t {
    ngx_array_t policies;  // of ngx_http_pairguard_policy_t *
    bool redis_set;
    ngx_pairguard_redis_conf_t* redis;  // pool-owned
    ngx_str_t prefix;
    pairguard::KeyDeriver* keys;        // pool-owned
    ngx_uint_t store_down;
    size_t zone_size;
    ngx_shm_zone_t* shm_zone;
    ngx_flag_t used;                   // anything needs Redis and the secret
    pairguard::PairingLimits* pairing; // pool-owned; pairguard_pairing_policy or defaults
    ngx_flag_t pairing_used;           // endpoints or require_paired: subscribe to events
    pairguard::AuthPolicy* auth;       // pool-owned; pairguard_auth_policy or defaults
    ngx_str_t thread_pool_name;        // pairguard_thread_pool, default "default"
    // allow/deny's and auth_basic's ACCESS handlers, learnt at
    // postconfiguration: deny's 403 refuses the client's address, and
    // auth_basic's 401 to a request without credentials is a challenge,
    // neither a guess; null: that module is not built in
    ngx_http_handler_pt address_handler;
    ngx_http_handler_pt basic_handler;
    ngx_thread_pool_t* thread_pool;    // for Argon2id, when a location needs it
    ngx_flag_t events_log;             // pairguard_events_log: worker 0 logs each event
};

struct ngx_http_pairguard_policy_ref_t {
    ngx_str_t name;
    ngx_http_pairguard_policy_t* policy;
    u_char* file;
    ngx_uint_t line;
};

struct ngx_http_pairguard_loc_conf_t {
    ngx_array_t* policies;        // of ngx_http_pairguard_policy_ref_t
    ngx_array_t* failure_status;  // of int
    ngx_array_t* neutral_status;  // of int
    ngx_uint_t deny_status;
    ngx_uint_t client_v4_bits;  // pairguard_client_prefix
    ngx_uint_t client_v6_bits;
    ngx_flag_t dry_run;
    bool uses_body;
    ngx_uint_t pairing_op;          // NGX_HTTP_PAIRGUARD_PAIRING_*, 0: none
    ngx_array_t* paired_platform;   // pairguard_require_paired platform= (key parts)
    ngx_array_t* paired_user;       // ... user=
    ngx_uint_t auth_op;             // NGX_HTTP_PAIRGUARD_AUTH_*, 0: none
    ngx_flag_t auth_require;        // pairguard_auth_require
};

#define NGX_HTTP_PAIRGUARD_AUTH_PASSWORD 1
#define NGX_HTTP_PAIRGUARD_AUTH_SESSION 2
#define NGX_HTTP_PAIRGUARD_AUTH_CHALLENGE 3
#define NGX_HTTP_PAIRGUARD_AUTH_VERIFY 4
#define NGX_HTTP_PAIRGUARD_AUTH_HAYSTACK 5

#define NGX_HTTP_PAIRGUARD_PAIRING_REQUEST 1
#define NGX_HTTP_PAIRGUARD_PAIRING_APPROVE 2
#define NGX_HTTP_PAIRGUARD_PAIRING_PENDING 3
#define NGX_HTTP_PAIRGUARD_PAIRING_APPROVED 4

struct ngx_http_pairguard_key_t {
    ngx_http_pairguard_policy_t* policy;
    pairguard::KeyTag tag;
    bool device = false;  // a trusted device's own key (device_store_key, device limits)
};

// Memory that every request takes and gives back (its context, its batch
// operations) is kept on per-worker lists of raw blocks of one type instead
// of going back to malloc: a block of more than 1 kB (the context) misses
// malloc's per-thread cache. Single-threaded (the worker's loop); the lists
// are never destroyed, so a block given back during static destruction
// still finds its list. Under AddressSanitizer nothing is kept, so that a
// use after the end is still seen.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool ngx_http_pairguard_recycle = false;
#else
inline constexpr bool ngx_http_pairguard_recycle = true;
#endif

template <class T, size_t Max>
struct ngx_http_pairguard_blocks {
    static std::vector<void*>& spare() {
        static auto* blocks = new std::vector<void*>;
        return *blocks;
    }
    // storage for one T (throws std::bad_alloc like operator new)
    static void* take() {
        auto& list = spare();
        if (ngx_http_pairguard_recycle && !list.empty()) {
            void* p = list.back();
            list.pop_back();
            return p;
        }
        return ::operator new(sizeof(T));
    }
    // storage whose T is already destroyed
    static void give_back(void* p) noexcept {
        auto& list = spare();
        if (ngx_http_pairguard_recycle && list.size() < Max) {
            try {
                list.push_back(p);
                return;
            } catch (const std::exception&) {
            }
        }
        ::operator delete(p);
    }
};

// A location's keys (one per policy it holds): inline up to three policies.
using ngx_http_pairguard_keys_t = pairguard::SmallVec<ngx_http_pairguard_key_t, 3>;

inline const pairguard::PolicyLimits& ngx_http_pairguard_key_limits(const ngx_http_pairguard_key_t& k) {
    return k.device ? k.policy->device_limits : k.policy->limits;
}

// What logs call a key: "key LABEL" or "device LABEL".
inline const char* ngx_http_pairguard_key_kind(const ngx_http_pairguard_key_t& k) {
    return k.device ? "device" : "key";
}

// A policy with device_cookie in a reserved group: what a success hands out.
struct ngx_http_pairguard_device_t {
    ngx_http_pairguard_policy_t* policy;
    pairguard::KeyTag account;   // the policy's key for this request
    pairguard::DeviceId id{};    // the device's id, when `known`
    int64_t expires_s = 0;       // its token's expiry, when `known`
    bool known = false;          // the request carried a valid cookie for `account`
};

struct ngx_http_pairguard_batch_op_t;  // below
using ngx_http_pairguard_batch_ptr = std::shared_ptr<ngx_http_pairguard_batch_op_t>;

// An answer the module gives itself (refusals, endpoint replies).
struct ngx_http_pairguard_answer_t {
    ngx_uint_t status = 0;
    std::string body;      // JSON; empty: a bare status (Haystack failures)
    int64_t retry_after = 0;  // > 0: a Retry-After header
    std::vector<std::pair<std::string, std::string>> headers;  // WWW-Authenticate, Allow, ...
};

// Policies reserved together, in one location: settled with that location's
// status lists, whatever location finally answers.
struct ngx_http_pairguard_group_t {
    ngx_http_pairguard_loc_conf_t* lcf = nullptr;
    ngx_http_pairguard_keys_t keys;
    // the keys' Redis keys, RESP-encoded, as the reserve sent them: the
    // settle sends the same text. Valid while `keys` holds the same `n`
    // keys; anything that moves a key out of a group clears it (then the
    // settle encodes them again), as does a text that does not fit.
    struct keys_resp_t {
        uint8_t n = 0;
        uint8_t len = 0;
        char text[112];  // its first `len` bytes; copied no further
        keys_resp_t() = default;
        keys_resp_t(const keys_resp_t& o) noexcept : n(o.n), len(o.len) { std::memcpy(text, o.text, len); }
        keys_resp_t& operator=(const keys_resp_t& o) noexcept {
            n = o.n;
            len = o.len;
            std::memmove(text, o.text, len);
            return *this;
        }
    } keys_resp;
    std::vector<ngx_http_pairguard_device_t> devices;  // set on a success (trusted devices)
    int64_t reservation = 0;
    // a dry-run location let this group's refusal through: its policies are
    // not reserved for a location that enforces them, which reserves them
    // itself (and takes them out of this group)
    bool dry_refused = false;
    bool store_local = false;  // the reservation lives in shared memory
    bool settled = false;
    // the request got past the access phase of a location holding one of
    // the group's policies (PRECONTENT ran there, no status forced by an
    // error_page) since the last refusal: what follows is judged
    bool passed_access = false;
    // an access phase the request reached after the reservation refused it
    // (allow/deny, auth_basic, auth_request, satisfy, another module's
    // handler; access_refused)
    bool access_refused = false;
    // failure: one such refusal was a wrong guess, which it stays whatever
    // the request did after it; neutral otherwise
    pairguard::Outcome access_outcome = pairguard::Outcome::neutral;
    // Where the request stood when this group was reserved: only what it
    // did after counts for the group (an upstream that answered 404 in an
    // unguarded location before an error_page into this one is not a guess).
    ngx_uint_t states_from = 0;     // r->upstream_states->nelts
    size_t subrequests_from = 0;    // ctx->subrequests.size()
    uint32_t carried_from = 0;      // ctx->carried_on
    ngx_http_upstream_t* upstream_at = nullptr;  // r->upstream (a new location's proxying makes a new one)
};

// The guard, per location the request reaches:
// idle -> [reading_body] -> [waiting for Redis] -> decided (a verdict made in
// a Redis callback, carried out when the phases run again) -> idle.
enum class ngx_http_pairguard_state_e { idle, reading_body, waiting, decided };
enum class ngx_http_pairguard_verdict_e { none, allow, refuse, fallback };

struct ngx_http_pairguard_ctx_t {
    ngx_http_request_t* request = nullptr;
    bool body_read = false;
    bool candidate_pending = false;  // its keys made, the body being read before the reserve
    unsigned error_page_before_body = 0;  // r->error_page while the guard reads the body
    bool body_parsed = false;
    // the body could not be read for a key: what to refuse with (every
    // location that enforces a body policy refuses, not only the first)
    ngx_uint_t body_error_status = 0;
    const char* body_error_code = nullptr;
    // the parsed body, once a key needed it (nothing to build or tear down
    // for the requests whose keys name no body field)
    std::optional<pairguard::BodyFields> body;

    // the guard
    ngx_http_pairguard_state_e state = ngx_http_pairguard_state_e::idle;
    // reserved, in the order of the locations (the first inline)
    pairguard::SmallVec<ngx_http_pairguard_group_t, 1> groups;
    ngx_http_pairguard_group_t candidate;            // being decided in the current location
    ngx_http_pairguard_verdict_e verdict = ngx_http_pairguard_verdict_e::none;
    size_t refuse_policy = 0;
    int64_t refuse_retry_ms = 0;
    int64_t verdict_reservation = 0;
    bool guard_refused = false;  // the guard answered itself: groups settle neutral unless the upstream failed
    // how often a subrequest ran (mirror, auth_request, SSI) or the request
    // went on to another location after it was proxied: something besides
    // its upstream may have acted on it (a group counts those after its
    // reservation)
    uint32_t carried_on = 0;
    // the request's subrequests, in the order they ran: an auth_request's
    // answer decides the request, whatever error_page makes of it
    std::vector<ngx_http_request_t*> subrequests;
    // the content locations the request entered (PRECONTENT), in order: the
    // number of upstream attempts it had made on entering, and whether the
    // location serves an error_page with a forced status (a page: what its
    // upstream answers judges nothing after an access-phase refusal)
    struct entered_t {
        ngx_uint_t states;       // upstream attempts made before
        size_t subrequests;      // subrequests made before
        bool forced;
    };
    pairguard::SmallVec<entered_t, 4> entered;
    // `satisfy any`: the refusals of the access phase under way, noted only
    // if it ends refused (POST_ACCESS), not when another handler passes
    // the request: {status, judged}
    std::vector<std::pair<ngx_int_t, bool>> pending_refusals;

    bool decided = false;  // for $pairguard_decision
    bool denied = false;
    int64_t retry_after = 0;
    ngx_str_t deny_policy = ngx_null_string;

    ngx_http_pairguard_batch_ptr reserve_op;  // the guard's reserve in flight

    // an answer decided in a callback, sent from the request's connection
    std::optional<ngx_http_pairguard_answer_t> answer;

    // pairguard_require_paired
    enum class paired_e { unchecked, waiting, approved, refused, unavailable } paired = paired_e::unchecked;
    std::string paired_platform;
    std::string paired_user;
    uint64_t paired_generation = 0;  // the approval cache's, when the check was sent
    // endpoints: commands in flight, cancelled if the request goes
    std::vector<ngx_pairguard_redis_command_t*> calls;

    // pairguard_auth_require and the haystack exchange (PREACCESS): decided in
    // callbacks, carried out when the phases run again
    enum class auth_e { unchecked, waiting, allowed, answer } auth = auth_e::unchecked;
    std::string auth_user;  // $pairguard_user once authenticated
    ngx_http_pairguard_answer_t auth_answer;  // auth == answer: what to answer on re-entry
};

// PRECONTENT: the groups reserved in this location passed its access phase.
ngx_int_t ngx_http_pairguard_guard_precontent(ngx_http_request_t* r) noexcept;
// init_module: every ACCESS phase handler of the cycle's phase engine (any
// module's, loaded before or after this one) is called through one wrapper
// that notes the refusals of the request's groups.
ngx_int_t ngx_http_pairguard_access_wrap(ngx_cycle_t* cycle) noexcept;

// ngx_http_pairguard_batch.cpp: the guard's reserves and settles of one
// event-loop iteration, sent as one script call.
using ngx_http_pairguard_batch_fn = std::function<void(bool ok, pairguard::IntList reply)>;
// A settle, whose reply needs the keys it settled: they travel with the
// operation (the request may be gone by then), the callback is a plain
// function.
using ngx_http_pairguard_settle_fn = void (*)(const ngx_http_pairguard_keys_t& keys, ngx_shm_zone_t* zone, bool ok,
                                              pairguard::IntList reply) noexcept;
struct ngx_http_pairguard_batch_op_t {
    pairguard::GuardOp op;
    ngx_http_pairguard_batch_fn done;  // empty once cancelled
    bool cancelled = false;            // its request went away
    bool fresh_tried = false;          // sent once without the script: the script decides now
    // when it was sent (this worker's monotonic and wall clocks): Redis ran
    // it after that
    ngx_msec_t sent_ms = 0;
    int64_t sent_wall_ms = 0;
    // a settle: its keys and zone travel here, its callback is a plain
    // function (no captured state for std::function to allocate)
    ngx_http_pairguard_settle_fn settle_done = nullptr;
    ngx_http_pairguard_keys_t keys;
    ngx_shm_zone_t* zone = nullptr;

    // Runs the callback once (none once cancelled or run).
    void finish(bool ok, pairguard::IntList reply) noexcept;
};
// Operations are recycled by the worker (ngx_http_pairguard_batch.cpp):
// a new one is empty but keeps its buffer's capacity.
ngx_http_pairguard_batch_ptr ngx_http_pairguard_batch_new();
// `done` runs once with the operation's own reply (ok=false: Redis failed),
// unless cancelled first. `o->op` is filled.
void ngx_http_pairguard_batch_submit(const ngx_http_pairguard_batch_ptr& o, ngx_http_pairguard_batch_fn done);
ngx_http_pairguard_batch_ptr ngx_http_pairguard_batch_submit(pairguard::GuardOp op, ngx_http_pairguard_batch_fn done);
void ngx_http_pairguard_batch_settle(const ngx_http_pairguard_batch_ptr& o, const ngx_http_pairguard_keys_t& keys,
                                     ngx_shm_zone_t* zone, ngx_http_pairguard_settle_fn done);
void ngx_http_pairguard_batch_cancel(ngx_http_pairguard_batch_op_t* op) noexcept;
void ngx_http_pairguard_batch_exit() noexcept;

// The most of a body the module reads to find key fields.
#define NGX_HTTP_PAIRGUARD_BODY_MAX (1024 * 1024)

// ngx_http_pairguard_request.cpp: the plumbing guard, pairing and auth share.
// The request's context, created on first use and found again after
// internal redirects.
ngx_http_pairguard_ctx_t* ngx_http_pairguard_get_ctx(ngx_http_request_t* r);
// What the guard and auth decided, for variables: a subrequest without a
// context of its own reads its main request's (never to be changed).
ngx_http_pairguard_ctx_t* ngx_http_pairguard_decided_ctx(ngx_http_request_t* r);
ngx_http_pairguard_ctx_t* ngx_http_pairguard_get_or_create_ctx(ngx_http_request_t* r);
// From the PREACCESS handler: a subrequest, or a main request entering a
// location after it was proxied (an internal redirect), is noted on the main
// request's context (ngx_http_pairguard_settle_unanswered counts it as seen).
void ngx_http_pairguard_note_carried_on(ngx_http_request_t* r) noexcept;
// A subrequest whose answer counts for the main request's groups.
void ngx_http_pairguard_note_subrequest(ngx_http_request_t* r) noexcept;
// From a phase handler or a body handler running on the request's own event:
// sends the answer, finalizes, returns NGX_DONE for a phase handler to
// return. Never becomes a 500, never re-enters the phases. Not for a content
// handler's return value (the content phase finalizes that once more).
ngx_int_t ngx_http_pairguard_answer_now(ngx_http_request_t* r, const ngx_http_pairguard_answer_t& a) noexcept;
// From a Redis callback or a thread task's completion: keeps the answer and
// sends it from the request's connection (posted), never from inside a Redis reply callback.
void ngx_http_pairguard_answer_later(ngx_http_request_t* r, ngx_http_pairguard_answer_t a) noexcept;
// A phase handler waits for a callback: `return ngx_http_pairguard_suspend(r);`
ngx_int_t ngx_http_pairguard_suspend(ngx_http_request_t* r) noexcept;
// The callback's decision is made: the phases run again (posted).
void ngx_http_pairguard_resume(ngx_http_request_t* r) noexcept;
// For a content handler: false when the method is not in `mask`; the 405
// with Allow is sent (not finalized) and the handler returns *rc.
bool ngx_http_pairguard_method_allowed(ngx_http_request_t* r, ngx_uint_t mask, const char* allow, ngx_int_t* rc);
// From a phase handler: reads the body (with the location's own body
// settings), then runs the phases again. Returns what the handler returns.
ngx_int_t ngx_http_pairguard_read_body(ngx_http_request_t* r);
// The request body as text (from memory or its file); false when it is
// larger than NGX_HTTP_PAIRGUARD_BODY_MAX or cannot be read.
bool ngx_http_pairguard_body_text(ngx_http_request_t* r, std::string& out);
// The values of cookie `name` in the request's Cookie headers, in order, at
// most pairguard::kDeviceCookiesChecked.
void ngx_http_pairguard_cookie_values(ngx_http_request_t* r, const ngx_str_t& name,
                                      std::vector<std::string_view>& out);
// Adds a response header (copied into the request's pool); false on no memory.
bool ngx_http_pairguard_add_header(ngx_http_request_t* r, std::string_view name, std::string_view value);
// The client address (after realip) cut to the location's
// pairguard_client_prefix, as "ADDRESS/BITS"; IPv4-mapped IPv6 is IPv4.
std::string ngx_http_pairguard_client_net(ngx_http_request_t* r);
// postconfiguration: what the plumbing needs to know of other modules
ngx_int_t ngx_http_pairguard_init_request(ngx_conf_t* cf);

// ngx_http_pairguard_module.cpp
ngx_pairguard_redis_t* ngx_http_pairguard_store();

// ngx_http_pairguard_module.cpp: key templates (text with $variables)
ngx_int_t ngx_http_pairguard_compile_key(ngx_conf_t* cf, std::string_view text, ngx_array_t* out, bool* uses_body,
                                         std::string& err);

// ngx_http_pairguard_guard.cpp
ngx_int_t ngx_http_pairguard_init_guard(ngx_conf_t* cf);
// The PREACCESS steps, run in this order by one handler that nginx calls
// after every other PREACCESS handler (realip at location level included).
ngx_int_t ngx_http_pairguard_auth_access(ngx_http_request_t* r) noexcept;
ngx_int_t ngx_http_pairguard_paired_handler(ngx_http_request_t* r) noexcept;
ngx_int_t ngx_http_pairguard_guard_access(ngx_http_request_t* r) noexcept;
// The request ends (its pool goes) with attempts no answer settled: the
// client went away before the upstream answered, or nothing was sent.
void ngx_http_pairguard_settle_unanswered(ngx_http_pairguard_ctx_t* ctx) noexcept;
// `normalize` (key_normalize): each variable's value normalised on its own
// (core: normalize_key_value), the literals and $binary_remote_addr's bytes
// as they are.
bool ngx_http_pairguard_eval_key(ngx_http_request_t* r, const ngx_array_t* key, std::string& out,
                                 bool normalize = false);
// Whether a header ($http_NAME), cookie ($cookie_NAME) or query argument
// ($arg_NAME) the key reads is given so that nginx and a backend may read
// different values: copies with different values (nginx reads the first, a
// backend may read the last), or a spelling nginx does not read and a
// backend does (`%73id=`, `session.id=` for session_id).
bool ngx_http_pairguard_key_repeated(ngx_http_request_t* r, const ngx_array_t* key);

// ngx_http_pairguard_calls.cpp: what the endpoints share
using ngx_http_pairguard_reply_fn = std::function<void(bool ok, const pairguard::Reply& reply)>;
// One store call bound to the request: `done` gets the reply, or ok=false
// when Redis failed; it does not run if the request went first.
bool ngx_http_pairguard_call(ngx_http_pairguard_ctx_t* ctx, const pairguard::StoreCall& sc,
                             ngx_http_pairguard_reply_fn done);

// ngx_http_pairguard_pairing.cpp
ngx_int_t ngx_http_pairguard_pairing_handler(ngx_http_request_t* r) noexcept;
// Per-worker: the approval cache and what the events channel says about it.
void ngx_http_pairguard_pairing_event(ngx_shm_zone_t* zone, std::string_view message);
void ngx_http_pairguard_pairing_resync();

// ngx_http_pairguard_auth.cpp
char* ngx_http_pairguard_auth_policy(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
char* ngx_http_pairguard_auth(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
char* ngx_http_pairguard_auth_require(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
char* ngx_http_pairguard_thread_pool(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
// postconfiguration: defaults, the thread pool, the PREACCESS handler
ngx_int_t ngx_http_pairguard_auth_init(ngx_conf_t* cf);
// Per-worker: the session cache and what the events channel says about it.
void ngx_http_pairguard_auth_event(std::string_view message);
void ngx_http_pairguard_auth_resync();

// ngx_http_pairguard_variables.cpp
ngx_int_t ngx_http_pairguard_add_variables(ngx_conf_t* cf);

// ngx_http_pairguard_zone.cpp: per-node state in shared memory
ngx_int_t ngx_http_pairguard_init_zone(ngx_shm_zone_t* shm_zone, void* data) noexcept;

struct ngx_http_pairguard_local_verdict_t {
    pairguard::Verdict verdict = pairguard::Verdict::allow;
    size_t policy = 0;
    int64_t retry_ms = 0;
};

// Refuses from the verdict cache: a key this node knows to be locked.
bool ngx_http_pairguard_cached_lock(ngx_shm_zone_t* zone, const ngx_http_pairguard_keys_t& keys,
                                    ngx_http_pairguard_local_verdict_t& out);
void ngx_http_pairguard_cache_lock(ngx_shm_zone_t* zone, const ngx_http_pairguard_key_t& key, int64_t lock_ms);
// Forgets this node's cached lock of the key whose tag starts with `prefix`
// (pairguardctl unlock): Redis no longer has it.
void ngx_http_pairguard_forget_lock(ngx_shm_zone_t* zone, const std::string& prefix);
// Store-down "local": the whole reserve/settle on this node's memory.
void ngx_http_pairguard_local_reserve(ngx_shm_zone_t* zone, ngx_log_t* log,
                                      const ngx_http_pairguard_keys_t& keys, bool reserve,
                                      ngx_http_pairguard_local_verdict_t& out, int64_t& reservation);
void ngx_http_pairguard_local_settle(ngx_shm_zone_t* zone, ngx_log_t* log,
                                     const ngx_http_pairguard_keys_t& keys, pairguard::Outcome outcome,
                                     int64_t reservation);

void ngx_http_pairguard_log_lock_start(ngx_log_t* log, const ngx_http_pairguard_key_t& key, int64_t lock_ms);
void ngx_http_pairguard_log_lock_end(ngx_log_t* log, const ngx_http_pairguard_key_t& key);
