// Types shared by the module's nginx glue files.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "../core/auth_store.hpp"
#include "../core/body.hpp"
#include "../core/pairing.hpp"
#include "../core/keys.hpp"
#include "../core/policy.hpp"
#include "../redis/ngx_pairguard_redis.h"
#include "ngx_pairguard.h"

#define NGX_HTTP_PAIRGUARD_DOWN_LOCAL 0
#define NGX_HTTP_PAIRGUARD_DOWN_DENY 1
#define NGX_HTTP_PAIRGUARD_DOWN_ALLOW 2

extern "C" ngx_module_t ngx_http_pairguard_module;

struct ngx_http_pairguard_key_part_t {
    ngx_str_t literal;
    ngx_int_t index;  // NGX_ERROR for a literal
};

struct ngx_http_pairguard_policy_t {
    ngx_str_t name;
    ngx_array_t key;  // of ngx_http_pairguard_key_part_t
    pairguard::PolicyLimits limits;
    ngx_str_t limits_resp;  // the five limit arguments, RESP-encoded once
    bool uses_body;
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
    ngx_thread_pool_t* thread_pool;    // for Argon2id, when a location needs it
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
};

// init -> [reading_body] -> [waiting for Redis] -> allowed | refuse | fallback
// -> (re-entry) allowed | answered. `refuse` and `fallback` are decisions
// made in a Redis callback and carried out when the phases run again.
enum class ngx_http_pairguard_state_e { init, reading_body, waiting, allowed, refuse, fallback, answered };

struct ngx_http_pairguard_ctx_t {
    ngx_http_request_t* request = nullptr;
    ngx_http_pairguard_state_e state = ngx_http_pairguard_state_e::init;
    bool body_read = false;
    bool body_parsed = false;
    pairguard::BodyFields body;
    std::vector<ngx_http_pairguard_key_t> keys;
    std::string keys_resp;  // the store keys, RESP-encoded for reserve and settle

    bool decided = false;  // for $pairguard_decision
    bool denied = false;
    int64_t retry_after = 0;
    ngx_str_t deny_policy = ngx_null_string;
    size_t refuse_policy = 0;
    int64_t refuse_retry_ms = 0;

    bool reserved = false;    // an attempt is counted in flight: settle it
    bool settled = false;
    bool store_local = false; // the reservation lives in shared memory
    int64_t reservation = 0;

    ngx_pairguard_redis_command_t* pending = nullptr;

    // pairguard_require_paired
    enum class paired_e { unchecked, waiting, approved, refused, unavailable } paired = paired_e::unchecked;
    std::string paired_platform;
    std::string paired_user;
    // pairing endpoints: commands in flight, cancelled if the request goes
    std::vector<ngx_pairguard_redis_command_t*> calls;

    // pairguard_auth_require and the haystack exchange (PREACCESS): decided in
    // callbacks, carried out when the phases run again
    enum class auth_e { unchecked, waiting, allowed, answer } auth = auth_e::unchecked;
    std::string auth_user;  // $pairguard_user once authenticated
    int auth_status = 0;    // answer: status, JSON body, WWW-Authenticate / Authentication-Info
    std::string auth_body;
    std::string auth_header_name, auth_header_value;
};

// ngx_http_pairguard_module.cpp
ngx_pairguard_redis_t* ngx_http_pairguard_store();

// ngx_http_pairguard_module.cpp: key templates (text with $variables)
ngx_int_t ngx_http_pairguard_compile_key(ngx_conf_t* cf, std::string_view text, ngx_array_t* out, bool* uses_body,
                                         std::string& err);

// ngx_http_pairguard_guard.cpp
ngx_int_t ngx_http_pairguard_init_phases(ngx_conf_t* cf);
ngx_http_pairguard_ctx_t* ngx_http_pairguard_get_ctx(ngx_http_request_t* r);
ngx_http_pairguard_ctx_t* ngx_http_pairguard_get_or_create_ctx(ngx_http_request_t* r);
bool ngx_http_pairguard_eval_key(ngx_http_request_t* r, const ngx_array_t* key, std::string& out);
ngx_int_t ngx_http_pairguard_send_json(ngx_http_request_t* r, ngx_uint_t status, const std::string& body,
                                       int64_t retry_after);

// ngx_http_pairguard_calls.cpp: what the endpoints share
using ngx_http_pairguard_reply_fn = std::function<void(bool ok, const pairguard::Reply& reply)>;
pairguard::Reply ngx_http_pairguard_reply(const redisReply* r);
// The request body as text; false when it is not all in memory.
bool ngx_http_pairguard_body_text(ngx_http_request_t* r, std::string& out);
// One store call bound to the request: `done` gets the reply, or ok=false
// when Redis failed; it does not run if the request went first.
bool ngx_http_pairguard_call(ngx_http_pairguard_ctx_t* ctx, const pairguard::StoreCall& sc,
                             ngx_http_pairguard_reply_fn done);

// ngx_http_pairguard_pairing.cpp
ngx_int_t ngx_http_pairguard_pairing_handler(ngx_http_request_t* r) noexcept;
ngx_int_t ngx_http_pairguard_paired_handler(ngx_http_request_t* r) noexcept;
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
ngx_int_t ngx_http_pairguard_init_zone(ngx_shm_zone_t* shm_zone, void* data);

struct ngx_http_pairguard_local_verdict_t {
    pairguard::Verdict verdict = pairguard::Verdict::allow;
    size_t policy = 0;
    int64_t retry_ms = 0;
};

// Refuses from the verdict cache: a key this node knows to be locked.
bool ngx_http_pairguard_cached_lock(ngx_shm_zone_t* zone, const std::vector<ngx_http_pairguard_key_t>& keys,
                                    ngx_http_pairguard_local_verdict_t& out);
void ngx_http_pairguard_cache_lock(ngx_shm_zone_t* zone, const ngx_http_pairguard_key_t& key, int64_t lock_ms);
// Forgets this node's cached lock of the key whose tag starts with `prefix`
// (pairguardctl unlock): Redis no longer has it.
void ngx_http_pairguard_forget_lock(ngx_shm_zone_t* zone, const std::string& prefix);
// Store-down "local": the whole reserve/settle on this node's memory.
void ngx_http_pairguard_local_reserve(ngx_shm_zone_t* zone, ngx_log_t* log,
                                      const std::vector<ngx_http_pairguard_key_t>& keys, bool reserve,
                                      ngx_http_pairguard_local_verdict_t& out, int64_t& reservation);
void ngx_http_pairguard_local_settle(ngx_shm_zone_t* zone, ngx_log_t* log,
                                     const std::vector<ngx_http_pairguard_key_t>& keys, pairguard::Outcome outcome,
                                     int64_t reservation);

void ngx_http_pairguard_log_lock_start(ngx_log_t* log, const ngx_http_pairguard_key_t& key, int64_t lock_ms);
void ngx_http_pairguard_log_lock_end(ngx_log_t* log, const ngx_http_pairguard_key_t& key);
