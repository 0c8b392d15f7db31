// Password hashes (SPEC section 4, `password`; seed 003): Argon2id through
// libargon2, stored as the PHC string "$argon2id$v=19$m=M,t=T,p=P$SALT$HASH".
//
// Every function here is thread-safe (no shared mutable state; libargon2
// and RAND_bytes are reentrant): the module runs them in an nginx thread
// pool, never on the event loop, because each call costs tens of
// milliseconds and M KiB of memory.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pairguard {

// OWASP's minimum for Argon2id: 19 MiB, 2 passes, 1 lane.
struct Argon2Params {
    uint32_t m_kib = 19456;
    uint32_t t = 2;
    uint32_t p = 1;
};

// What a stored hash may ask for. A hash above any of these is refused
// without hashing, so a tampered store cannot make a worker thread burn
// seconds of CPU or gigabytes of memory.
struct Argon2Limits {
    uint32_t max_m_kib = 256 * 1024;
    uint32_t max_t = 10;
    uint32_t max_p = 4;
};

constexpr size_t kArgon2SaltBytes = 16;
constexpr size_t kArgon2HashBytes = 32;

// A new hash with a kArgon2SaltBytes salt from RAND_bytes. Throws
// std::invalid_argument for parameters outside Argon2Limits{} (or below
// Argon2's own minimums: t >= 1, p >= 1, m >= 8p), std::runtime_error when
// RAND_bytes or libargon2 fails.
std::string hash_password(std::string_view password, const Argon2Params& params = {});

struct PasswordHashInfo {
    Argon2Params params;
    size_t salt_bytes = 0;
    size_t hash_bytes = 0;
};

// The parameters of a stored hash. nullopt unless it is an Argon2id v=19
// PHC string (m, t, p in that order, unpadded base64 salt of 8-64 bytes and
// hash of 16-64 bytes) within `limits`.
std::optional<PasswordHashInfo> parse_password_hash(std::string_view encoded, const Argon2Limits& limits = {});

enum class PasswordCheck { ok, mismatch, invalid_hash };

// Argon2id verification (libargon2 compares in constant time). invalid_hash:
// parse_password_hash refused the stored string; nothing was hashed. Throws
// std::runtime_error when libargon2 fails otherwise (memory).
PasswordCheck verify_password(std::string_view encoded, std::string_view password, const Argon2Limits& limits = {});

// For a user without a hash (unknown, or key-only): hashes `password` with
// `params` (the current policy, which is what a real user's hash has) and a
// fixed salt, and answers `mismatch`, so that the time taken does not tell
// the two cases apart.
PasswordCheck verify_password_dummy(std::string_view password, const Argon2Params& params = {});

// True when the stored hash is weaker than `policy` (m, t or p lower, or a
// shorter salt or hash than this code makes) or cannot be parsed: after a
// successful login the module stores hash_password(password, policy).
bool needs_rehash(std::string_view encoded, const Argon2Params& policy = {});

}  // namespace pairguard
