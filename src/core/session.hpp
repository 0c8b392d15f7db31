// What every login method of SPEC section 4 shares: the user names it
// accepts, and the opaque tokens it hands out (sessions, Haystack handshake
// tokens), which Redis only ever sees as HMACs.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "keys.hpp"

namespace pairguard {

constexpr size_t kAuthUserMaxBytes = 256;

// 1-256 bytes of UTF-8 without control characters, taken as given (no case
// folding, no SASLprep): the same name is the same bytes everywhere.
bool valid_auth_user(std::string_view user);

// The hash tag of everything stored for a user: base64url of the first 12
// bytes of HMAC(secret, "a\0user\0" USER), 16 characters. See DESIGN.md
// "Auth store".
constexpr size_t kUserTagChars = 16;
std::string auth_user_tag(const KeyDeriver& keys, std::string_view user);

// A token is "UTAG.R": the user's tag, a dot, and R = base64url of 32 bytes
// from RAND_bytes (256 bits; 43 characters), 60 characters in all. The tag
// lets the store find the token's record in the user's own slot; all the
// secrecy is in R. Throws std::runtime_error when RAND_bytes fails.
constexpr size_t kTokenRandomBytes = 32;
constexpr size_t kTokenChars = kUserTagChars + 1 + 43;
std::string generate_token(std::string_view user_tag);

// The user tag of a well-formed token (exactly the shape generate_token
// makes); nullopt for anything else, which the caller can refuse without a
// store call.
std::optional<std::string_view> token_user_tag(std::string_view token);

// What the store holds for a token: base64url of the first 16 bytes of
// HMAC(secret, "t\0" KIND "\0" TOKEN), 22 characters. KIND keeps a session
// token from being usable as a handshake token and the other way round
// ("session", "handshake").
std::string token_hash(const KeyDeriver& keys, std::string_view kind, std::string_view token);

// A Haystack handshake token (the HELLO answer's handshakeToken, the token
// of the whole exchange): shaped like any token, "UTAG.R", but R is not all
// random: 8 bytes of expiry (Unix ms, big-endian), 12 random bytes, and the
// first 12 bytes of HMAC(secret, "hs\0" UTAG "\0" expiry random). HELLO
// therefore stores nothing: the token itself says whose exchange it is and
// until when (the store only records each step's use, see login.hpp).
// Throws std::runtime_error when RAND_bytes fails.
std::string generate_handshake_token(const KeyDeriver& keys, std::string_view user_tag, int64_t expires_ms);

struct HandshakeToken {
    std::string user_tag;
    int64_t expires_ms = 0;
};

// nullopt unless `token` is a handshake token this secret made that has not
// expired at `now_ms` (the MAC compared in constant time).
std::optional<HandshakeToken> check_handshake_token(const KeyDeriver& keys, std::string_view token, int64_t now_ms);

}  // namespace pairguard
