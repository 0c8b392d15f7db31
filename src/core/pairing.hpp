// The pairing flow (seeds 000 and 001) as plain C++, shared by the nginx
// module and pairguardctl so that they can never disagree: policy
// parameters, codes, identity normalisation, the Redis key layout, the
// KEYS/ARGV of every pairing script, reply decoding, and the JSON bodies of
// the HTTP endpoints. The rules themselves run atomically in Redis
// (src/lua/pair_*.lua).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "keys.hpp"
#include "store_scripts.hpp"

namespace pairguard {

// ---- policy (`pairguard_pairing_policy`) ----

constexpr int64_t kPairingCountLimit = 1000;
// The most names `platforms=` takes: a listing without ?platform= runs one
// script per configured platform.
constexpr size_t kMaxPlatforms = 32;

struct PairingLimits {
    int64_t code_ttl_ms = 3600 * 1000;
    int64_t max_pending = 3;
    int64_t request_interval_ms = 600 * 1000;
    int64_t max_failures = 5;
    int64_t lockout_ms = 3600 * 1000;
    int64_t code_max_failures = 5;
    // Normalised, distinct, at most kMaxPlatforms. Empty: any platform (the
    // CLI without --policy); the nginx endpoints require a list, so that
    // what strangers can make Redis hold is bounded by configuration.
    std::vector<std::string> platforms;
};

// Parses "code_ttl=1h max_pending=3 ... platforms=telegram,whatsapp" (all
// optional). Returns an empty string on success, else an nginx-style message.
std::string parse_pairing_policy_args(const std::vector<std::string_view>& args, PairingLimits& out);

// `platform` normalised. True when the policy lists no platforms or this one.
bool platform_allowed(const PairingLimits& limits, std::string_view platform);

// ---- codes ----

constexpr std::string_view kCodeAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
constexpr size_t kCodeLength = 8;

// 8 symbols from OpenSSL's CSPRNG. Throws std::runtime_error when RAND_bytes fails.
std::string generate_code();

// The mapping generate_code applies to its random bytes (exposed for tests).
std::string code_from_bytes(const uint8_t (&bytes)[kCodeLength]);

// What an approver typed: any case, spaces and dashes ignored. nullopt unless
// exactly 8 alphabet symbols remain.
std::optional<std::string> normalize_code(std::string_view input);

// ---- identities ----

constexpr size_t kPlatformMaxBytes = 64;
constexpr size_t kUserIdMaxBytes = 256;
constexpr size_t kUserNameMaxBytes = 256;

// Lowercased; 1-64 characters of [a-z0-9_.-].
std::optional<std::string> normalize_platform(std::string_view raw);

// Trimmed; 1-256 bytes of UTF-8 without control characters. On `whatsapp`,
// "+15551234567", "15551234567", "15551234567@s.whatsapp.net",
// "15551234567@c.us" (and a ":DEVICE" before the "@") are all "15551234567".
// `platform` must be normalised.
std::optional<std::string> normalize_user_id(std::string_view platform, std::string_view raw);

// Trimmed; 0-256 bytes of UTF-8 without control characters.
std::optional<std::string> normalize_user_name(std::string_view raw);

// ---- Redis layout ----
//
//   PREFIX{p:TAG}:pending      hash  code HMAC -> {user_id,user_name,uh,created_ms,expires_ms,attempts}
//   PREFIX{p:TAG}:approved     hash  user id -> {user_name,approved_ms}
//   PREFIX{p:TAG}:rate:UHASH   string, PX request_interval
//   PREFIX{p:TAG}:fail         wrong approvals, PX code_ttl after the last one
//   PREFIX{p:TAG}:lock         lock end (ms), PX lockout
//   PREFIXpairing:platforms    set of platform names (no hash tag: other slot);
//                              only names of a `platforms=` list are added
//   channel PREFIXevents       approved|TAG|UHASH, revoked|TAG|UHASH,
//                              unlocked|p|TAG, unlocked|g|GUARD_TAG (what the
//                              guard key holds between its braces),
//                              unlocked|d|DEVICE_TAG (a device key's, after "d:")
//
// TAG = base64url(HMAC(secret, "p\0" P "\0")[:16]); UHASH = base64url(HMAC(secret,
// "u\0" P "\0" USER)[:16]); code HMAC = base64url(HMAC(secret, "c\0" P "\0" CODE)).

struct PlatformKeys {
    std::string tag;   // 22 base64url characters
    std::string base;  // PREFIX{p:TAG}
    std::string pending, approved, fail, lock;
    std::string rate(std::string_view user_hash) const { return base + ":rate:" + std::string(user_hash); }
};

PlatformKeys platform_keys(const KeyDeriver& keys, std::string_view prefix, std::string_view platform);

// 22 base64url characters; what events and node caches use for a user.
std::string user_hash(const KeyDeriver& keys, std::string_view platform, std::string_view user_id);
std::string platform_tag(const KeyDeriver& keys, std::string_view platform);

// The full HMAC of a normalised code, base64url (43 characters).
std::string code_hash(const KeyDeriver& keys, std::string_view platform, std::string_view code);

// `id` in listings: 8 hex digits of the code HMAC. Empty when `hash` is not base64url.
std::string code_id(std::string_view hash);

std::string platforms_key(std::string_view prefix);
std::string events_channel(std::string_view prefix);

// ---- events (published on events_channel) ----

enum class EventKind { approved, revoked, unlocked_platform, unlocked_guard };

struct PairingEvent {
    EventKind kind;
    std::string tag;        // platform tag (22 chars), or for unlocked_guard the guard key's hash tag
    std::string user_hash;  // approved and revoked only
};

std::optional<PairingEvent> parse_event(std::string_view message);

// ---- store calls and replies ----

// StoreCall and Reply: store.hpp

struct PairingRequest {
    std::string platform;   // normalised
    std::string user_id;    // normalised
    std::string user_name;  // normalised, may be empty
};

// Sent before (pipelined with) every request of an allowed platform: lists
// the platform for pairguardctl's listings without a platform (nginx lists
// its configured platforms). Its reply can be ignored.
StoreCall make_register(std::string_view prefix, std::string_view platform);
StoreCall make_platforms(std::string_view prefix);
// Valid platform names, sorted; nullopt for a malformed reply.
std::optional<std::vector<std::string>> decode_platforms(const Reply& reply);

// `code` comes from generate_code().
StoreCall make_request(const KeyDeriver& keys, std::string_view prefix, const PairingLimits& limits,
                       const PairingRequest& req, std::string_view code);

enum class RequestStatus { ok, rate_limited, too_many_pending, locked, collision, invalid };

struct RequestResult {
    RequestStatus status = RequestStatus::invalid;
    int64_t expires_in_ms = 0;  // ok
    int64_t retry_ms = 0;       // refusals
};

// `collision`: the code's HMAC is already pending (about 1 in 10^12): draw a
// new code and send again (give up after a few tries).
RequestResult decode_request(const Reply& reply);

// `code` normalised by normalize_code.
StoreCall make_approve(const KeyDeriver& keys, std::string_view prefix, const PairingLimits& limits,
                       std::string_view platform, std::string_view code);

enum class ApproveStatus { ok, invalid_code, locked, invalid };

struct ApproveResult {
    ApproveStatus status = ApproveStatus::invalid;
    std::string user_id, user_name;  // ok
    int64_t retry_ms = 0;            // locked
    int64_t burned = 0;              // invalid_code: codes burned by this failure
    int64_t lock_started_ms = 0;     // invalid_code: this failure locked the platform for this long
};

ApproveResult decode_approve(const Reply& reply);

struct PendingEntry {
    std::string platform, id, user_id, user_name;
    int64_t created_ms = 0;
    int64_t age_seconds = 0;
    int64_t expires_in = 0;  // seconds, rounded up
};

StoreCall make_pending(const KeyDeriver& keys, std::string_view prefix, std::string_view platform);
// Oldest first; nullopt for a malformed reply.
std::optional<std::vector<PendingEntry>> decode_pending(const Reply& reply, std::string_view platform);

StoreCall make_clear(const KeyDeriver& keys, std::string_view prefix, std::string_view platform);
std::optional<int64_t> decode_clear(const Reply& reply);

struct ApprovedEntry {
    std::string platform, user_id, user_name;
    int64_t approved_at = 0;  // Unix seconds
};

StoreCall make_approved(const KeyDeriver& keys, std::string_view prefix, std::string_view platform);
// Sorted by approval time; nullopt for a malformed reply.
std::optional<std::vector<ApprovedEntry>> decode_approved(const Reply& reply, std::string_view platform);

// `user_id` normalised.
StoreCall make_revoke(const KeyDeriver& keys, std::string_view prefix, std::string_view platform,
                      std::string_view user_id);
// true: revoked, false: was not approved; nullopt: malformed reply.
std::optional<bool> decode_revoke(const Reply& reply);

// `pairguard_require_paired`. `user_id` normalised.
StoreCall make_check(const KeyDeriver& keys, std::string_view prefix, std::string_view platform,
                     std::string_view user_id);

struct PairedCheck {
    bool valid = false;
    bool approved = false;
    std::string user_name;
};

PairedCheck decode_check(const Reply& reply);

// A platform's approval lock (CLI `locks`).
StoreCall make_lock_status(const KeyDeriver& keys, std::string_view prefix, std::string_view platform);

struct LockStatus {
    bool valid = false;
    int64_t retry_ms = 0;  // 0: not locked
    int64_t failures = 0;
};

LockStatus decode_lock_status(const Reply& reply);

// Lift a platform's approval lock (and forget its failures).
StoreCall make_unlock_platform(const KeyDeriver& keys, std::string_view prefix, std::string_view platform);
// Delete the guard key of (policy, key), lock and failures included.
StoreCall make_unlock_guard(const KeyDeriver& keys, std::string_view prefix, std::string_view policy,
                            std::string_view key);
// Delete a trusted device's key (device_store_key, as SCAN found it).
StoreCall make_unlock_device(std::string_view prefix, std::string_view device_key);
// What a key carries between its braces (its Redis hash tag); empty if none.
std::string hash_tag(std::string_view key);
// Number of keys deleted (0: nothing was there); nullopt: malformed reply.
std::optional<int64_t> decode_unlock(const Reply& reply);

// ---- HTTP bodies ----

// The body of a request or approve call, validated and normalised. An empty
// string on success, else what is wrong, for {"error":"invalid_request"}.
std::string parse_request_body(std::string_view body, PairingRequest& out);

struct ApproveInput {
    std::string platform;
    std::string code;  // as sent; normalise_code decides whether it can be one
};

std::string parse_approve_body(std::string_view body, ApproveInput& out);

std::string render_code(std::string_view code, int64_t expires_in_s);
std::string render_user(std::string_view platform, std::string_view user_id, std::string_view user_name);
std::string render_pending(const std::vector<PendingEntry>& entries);
std::string render_cleared(int64_t n);
std::string render_approved(const std::vector<ApprovedEntry>& entries);
std::string render_revoked();
std::string render_error(std::string_view code);
std::string render_error(std::string_view code, int64_t retry_after_s);
std::string render_invalid_request(std::string_view message);

// An endpoint's answer: status, JSON body, and Retry-After (0: none).
struct HttpAnswer {
    int status = 500;
    std::string body;
    int64_t retry_after = 0;
};

// 201 {"code","expires_in"}; 429 rate_limited / too_many_pending / locked.
// Call only for a status other than `collision`; `invalid` gives 500
// {"error":"store_error"}.
HttpAnswer answer_request(const RequestResult& r, std::string_view code);
// 200 {"platform","user_id","user_name"}; 404 invalid_code; 429 locked.
HttpAnswer answer_approve(const ApproveResult& r, std::string_view platform);
// 200 {"revoked":true}; 404 not_found.
HttpAnswer answer_revoke(std::optional<bool> r);
// 403 {"error":"not_paired"}.
HttpAnswer answer_not_paired();

}  // namespace pairguard
