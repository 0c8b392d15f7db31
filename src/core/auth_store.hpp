// The auth store of SPEC section 4 (DESIGN.md "Auth store"): users, keys,
// sessions, challenges, Haystack handshakes and failure counters in Redis,
// as script calls (make_*) and reply decoders (decode_*) shared by the
// nginx module and pairguardctl. The rules run atomically in Redis
// (src/lua/auth_*.lua).
//
// Redis never holds a password, a session or handshake token, or a
// challenge nonce: passwords are Argon2id / SCRAM verifiers, tokens are
// token_hash() HMACs, and a challenge is stored as a random seed from which
// only the secret's holder can compute the nonce (challenge_nonce()).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "keys.hpp"
#include "pairing.hpp"  // StoreCall, Reply, events_channel
#include "password.hpp"
#include "store_scripts.hpp"

namespace pairguard {

// ---- policy (`pairguard_auth_policy`) ----

enum class Plaintext { tls_only, on, off };

struct AuthPolicy {
    int64_t session_ttl_ms = 24 * 3600 * 1000LL;
    int64_t challenge_ttl_ms = 5 * 60 * 1000LL;
    int64_t max_failures = 5;
    int64_t lockout_ms = 15 * 60 * 1000LL;
    // unauthenticated steps that store state (challenge, Haystack
    // client-first) an address may take without a successful login, within
    // `lockout` of each other (max_pending=N; an extension of SPEC's list)
    int64_t max_pending = 20;
    Plaintext plaintext = Plaintext::tls_only;
    // what new and upgraded password hashes get (argon2_m=KiB argon2_t=N
    // argon2_p=N; an extension of SPEC's list)
    Argon2Params argon2;
};

// "session_ttl=24h challenge_ttl=5m max_failures=5 lockout=15m
// plaintext=tls_only|on|off" (all optional). Empty string on success, else
// an nginx-style message.
std::string parse_auth_policy_args(const std::vector<std::string_view>& args, AuthPolicy& out);

// ---- Redis layout ----
//
//   PREFIX{a:UTAG}:user        hash   name, created_ms, argon2, scram, key, key_fp,
//                                     revoked (JSON {reason,revoked_ms}), protected
//   PREFIX{a:UTAG}:sessions    zset   THASH -> expiry ms
//   PREFIX{a:UTAG}:s:THASH     string JSON {user,created_ms,expires_ms,method}, PX ttl
//   PREFIX{a:UTAG}:ch          hash   challenge seed -> expiry ms (at most 4)
//   PREFIX{a:UTAG}:hs:THASH    string handshake state (client-first), then '' once
//                                     client-final took it; PX until the token expires
//   PREFIX{a:UTAG}:fail        string failures, PX lockout after the last one
//   PREFIX{a:UTAG}:lock        string lock end ms, PX lockout
//   PREFIX{aa:ATAG}:fail/:lock the same per client address
//   PREFIX{aa:ATAG}:starts     string state-making steps since the last login,
//                                     PX lockout after the last one
//   PREFIXauth:users           set    user names (own slot, separate call)
//
// UTAG = auth_user_tag(keys, USER) (session.hpp); ATAG = base64url of the
// first 12 bytes of HMAC(secret, "a\0addr\0" ADDRESS). THASH =
// token_hash(keys, "session" | "handshake", TOKEN).
//
// Events on events_channel(prefix) (nothing in clear but the kind):
//   revoked_session|UTAG|THASH   one session ended (logout, refresh, DELETE)
//   revoked_user|UTAG            every session of the user ended (logout-all,
//                                key set/revoke, passwd, user del)

struct AuthUserKeys {
    std::string tag;   // UTAG, 16 characters
    std::string base;  // PREFIX{a:UTAG}
    std::string user, sessions, challenges, fail, lock;
    std::string session(std::string_view thash) const { return base + ":s:" + std::string(thash); }
    std::string handshake(std::string_view thash) const { return base + ":hs:" + std::string(thash); }
};

AuthUserKeys auth_user_keys(std::string_view prefix, std::string_view user_tag);
AuthUserKeys auth_user_keys(const KeyDeriver& keys, std::string_view prefix, std::string_view user);

struct AuthFailKeys {
    std::string fail, lock, starts;
};

AuthFailKeys auth_address_keys(const KeyDeriver& keys, std::string_view prefix, std::string_view address);
std::string auth_users_key(std::string_view prefix);

// The auth scripts (src/lua/auth_*.lua).
enum class AuthOp {
    user_add,
    user_del,
    user_update,  // passwd, protect
    user_get,
    user_list,
    user_register,  // SADD/SREM on PREFIXauth:users
    key_set,
    key_revoke,
    session_create,
    session_get,
    session_refresh,
    session_revoke,
    sessions_list,
    logout,
    challenge_create,
    challenge_list,
    handshake_put,
    handshake_take,
    failure,
    lock_status,
    address_start,
    address_reset,
    count_,  // not an op
};

const StoreScript& auth_script(AuthOp op);
const std::vector<const StoreScript*>& auth_scripts();

// ---- users (CLI) ----

struct NewUser {
    std::string argon2;   // PHC string, may be empty (key-only user)
    std::string scram;    // RFC 5803, may be empty (no Haystack login)
    std::string key_pem;  // canonical SPKI PEM, may be empty
    std::string key_fp;   // PublicKey::fingerprint(), with key_pem
    bool protect = false;
};

StoreCall make_user_add(const KeyDeriver& keys, std::string_view prefix, std::string_view user, const NewUser& u);
// After user_add / user_del: keep PREFIXauth:users in step (reply ignorable).
StoreCall make_user_register(std::string_view prefix, std::string_view user, bool present);
StoreCall make_user_list(std::string_view prefix);
std::optional<std::vector<std::string>> decode_user_list(const Reply& reply);

enum class UserOpStatus { ok, exists, not_found, protected_user, no_key, invalid };
// user_add: ok / exists. user_del: ok / not_found / protected_user.
// user_update, key_set: ok / not_found. key_revoke: ok / not_found / no_key.
UserOpStatus decode_user_op(const Reply& reply);

// Refuses protected users; publishes revoked_user.
StoreCall make_user_del(const KeyDeriver& keys, std::string_view prefix, std::string_view user);

// Sets the given fields (nullopt: unchanged; "" for scram: removed).
// `revoke_sessions` ends the user's sessions (passwd does).
struct UserUpdate {
    std::optional<std::string> argon2, scram;
    std::optional<bool> protect;
    bool revoke_sessions = false;
};
StoreCall make_user_update(const KeyDeriver& keys, std::string_view prefix, std::string_view user,
                           const UserUpdate& u);

struct UserInfo {
    bool valid = false;  // false: malformed reply
    bool exists = false;
    std::string name;
    int64_t created_ms = 0;
    std::string argon2, scram, key_pem, key_fp;
    bool revoked = false;
    std::string revoked_reason;
    int64_t revoked_ms = 0;
    bool protect = false;
    int64_t lock_ms = 0;  // user's login lock, ms left (0: none)
    int64_t failures = 0;
    int64_t sessions = 0;  // live sessions
};

// Everything the store knows of a user, and the user's lock: what every
// login method reads first.
StoreCall make_user_get(const KeyDeriver& keys, std::string_view prefix, std::string_view user);
UserInfo decode_user_get(const Reply& reply);

// ---- keys ----

// Rotation: stores the key, clears a revocation, drops pending challenges
// and every session (publishes revoked_user). ok / not_found.
StoreCall make_key_set(const KeyDeriver& keys, std::string_view prefix, std::string_view user,
                       std::string_view key_pem, std::string_view key_fp);
// Marks the user revoked (every login method refuses), drops challenges and
// sessions (publishes revoked_user). ok / not_found / no_key.
StoreCall make_key_revoke(const KeyDeriver& keys, std::string_view prefix, std::string_view user,
                          std::string_view reason);

// ---- sessions ----

enum class AuthMethod { password, challenge, haystack, cli, refresh };
const char* auth_method_name(AuthMethod m);

struct SessionCreate {
    std::string token;  // generate_token(UTAG)
    AuthMethod method = AuthMethod::password;
    int64_t ttl_ms = 0;
    // challenge: the seed whose nonce the signature matched (consumed, single
    // use) and the key fingerprint it was checked with (must still be the
    // user's key).
    std::string challenge_seed, key_fp;
    // password: replace the stored hash (needs_rehash) if it is still
    // `rehash_from`.
    std::string rehash_from, rehash_to;
};

// Refused (nil reply) when the user does not exist or is revoked, or the
// challenge seed is gone, or the key changed. Resets the user's failures.
StoreCall make_session_create(const KeyDeriver& keys, std::string_view prefix, std::string_view user,
                              const SessionCreate& s);

struct SessionCreated {
    bool valid = false;
    bool ok = false;
    int64_t expires_ms = 0;  // Unix ms
};
SessionCreated decode_session_create(const Reply& reply);

// `token` must pass token_user_tag() (else these return a call with no
// script: check `script != nullptr`).
StoreCall make_session_get(const KeyDeriver& keys, std::string_view prefix, std::string_view token);

struct SessionInfo {
    bool valid = false;
    bool found = false;
    std::string user, method;
    int64_t created_ms = 0, expires_ms = 0;
    int64_t now_ms = 0;  // Redis time of the answer
};
SessionInfo decode_session_get(const Reply& reply);

// Ends `old_token` and creates `new_token` with the same user and method,
// expiring after ttl (publishes revoked_session for the old one).
StoreCall make_session_refresh(const KeyDeriver& keys, std::string_view prefix, std::string_view old_token,
                               std::string_view new_token, int64_t ttl_ms);
SessionCreated decode_session_refresh(const Reply& reply);

// 1 revoked, 0 unknown (publishes revoked_session).
StoreCall make_session_revoke(const KeyDeriver& keys, std::string_view prefix, std::string_view token);
std::optional<bool> decode_session_revoke(const Reply& reply);

struct SessionEntry {
    std::string id;  // 8 hex digits of the token hash (for listings)
    std::string method;
    int64_t created_ms = 0, expires_ms = 0;
};
StoreCall make_sessions_list(const KeyDeriver& keys, std::string_view prefix, std::string_view user);
std::optional<std::vector<SessionEntry>> decode_sessions_list(const Reply& reply);

// Ends every session of the user (publishes revoked_user): count ended.
StoreCall make_logout(const KeyDeriver& keys, std::string_view prefix, std::string_view user);
std::optional<int64_t> decode_logout(const Reply& reply);

// ---- challenges ----

// 16 random bytes, base64url: what the store keeps for a challenge.
std::string generate_challenge_seed();
// The nonce the client signs: standard base64 of HMAC(secret, "ch\0" UTAG
// "\0" SEED) (32 bytes, 44 characters, like generate_challenge_nonce()).
std::string challenge_nonce(const KeyDeriver& keys, std::string_view user_tag, std::string_view seed);

// Adds a challenge (at most 4 pending; the oldest goes). Unknown users get
// one too (so the answer does not tell), under their tag. Reply: ttl ms.
StoreCall make_challenge_create(const KeyDeriver& keys, std::string_view prefix, std::string_view user,
                                std::string_view seed, int64_t ttl_ms);
std::optional<int64_t> decode_challenge_create(const Reply& reply);

// What `verify` needs in one round trip: the user's key, revocation, lock,
// and live challenge seeds.
struct ChallengeState {
    bool valid = false;
    bool exists = false, revoked = false;
    std::string key_pem, key_fp;
    int64_t lock_ms = 0;
    std::vector<std::string> seeds;
};
StoreCall make_challenge_list(const KeyDeriver& keys, std::string_view prefix, std::string_view user);
ChallengeState decode_challenge_list(const Reply& reply);

// ---- Haystack handshakes ----

// Each step of an exchange works once per handshake token (the HELLO
// token, see generate_handshake_token): client-first stores the state (SET
// NX), client-final takes it and leaves a used mark until the token expires.

// `ttl_ms`: what is left of the token's life.
StoreCall make_handshake_put(const KeyDeriver& keys, std::string_view prefix, std::string_view token,
                             std::string_view value, int64_t ttl_ms);
// true: stored; false: this token's client-first was already taken.
std::optional<bool> decode_handshake_put(const Reply& reply);
// nil: unknown, used or expired.
StoreCall make_handshake_take(const KeyDeriver& keys, std::string_view prefix, std::string_view token);
// nullopt for nil (or a malformed reply).
std::optional<std::string> decode_handshake_take(const Reply& reply);

// ---- failures and locks (per user, per address) ----

// One failed proof: counts a failure (forgotten `lockout` after the last
// one); at max_failures locks for `lockout`. Reply: lock started (ms), 0, or
// -1 when the user or address was locked already (nothing counted).
StoreCall make_user_failure(const KeyDeriver& keys, std::string_view prefix, std::string_view user,
                            const AuthPolicy& policy);
StoreCall make_address_failure(const KeyDeriver& keys, std::string_view prefix, std::string_view address,
                               const AuthPolicy& policy);
std::optional<int64_t> decode_failure(const Reply& reply);

// ms left of the address's lock (0: none).
StoreCall make_address_lock_status(const KeyDeriver& keys, std::string_view prefix, std::string_view address);
std::optional<int64_t> decode_lock_ms(const Reply& reply);

// ---- what unauthenticated clients may make (per address) ----

// A state-making step (challenge, Haystack client-first) spends one of the
// address's policy.max_pending starts; the reply also carries the
// address's lock.
StoreCall make_address_start(const KeyDeriver& keys, std::string_view prefix, std::string_view address,
                             const AuthPolicy& policy);
struct AddressStart {
    bool valid = false;
    int64_t lock_ms = 0;  // the address's login lock, ms left
    bool allowed = false; // the step may store its state
};
AddressStart decode_address_start(const Reply& reply);
// A successful login gives the address its starts back.
StoreCall make_address_reset(const KeyDeriver& keys, std::string_view prefix, std::string_view address);

// ---- events ----

enum class AuthEventKind { revoked_session, revoked_user };

struct AuthEvent {
    AuthEventKind kind;
    std::string user_tag;
    std::string token_hash;  // revoked_session only
};

std::optional<AuthEvent> parse_auth_event(std::string_view message);

// ---- HTTP bodies ----

struct AuthInput {
    std::string user, password, signature;
};
// {"user","password"?,"signature"?} with a valid user; empty on success,
// else what is wrong.
std::string parse_auth_body(std::string_view body, AuthInput& out);

std::string render_token(std::string_view token, int64_t expires_at_s);
std::string render_session(std::string_view user, int64_t expires_at_s);
std::string render_challenge(std::string_view nonce, int64_t expires_in_s);

}  // namespace pairguard
