#include "session.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <stdexcept>

#include "encoding.hpp"

namespace pairguard {

namespace {

bool base64url_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

}  // namespace

bool valid_auth_user(std::string_view user) {
    return !user.empty() && user.size() <= kAuthUserMaxBytes && utf8_text(user);
}

std::string auth_user_tag(const KeyDeriver& keys, std::string_view user) {
    KeyTag t = keys.tag("a", "user", user);
    return base64url(t.data(), 12);
}

std::string generate_token(std::string_view user_tag) {
    if (user_tag.size() != kUserTagChars) {
        throw std::invalid_argument("generate_token: not a user tag");
    }
    uint8_t r[kTokenRandomBytes];
    if (RAND_bytes(r, sizeof r) != 1) {
        throw std::runtime_error("RAND_bytes() failed");
    }
    std::string token(user_tag);
    token.push_back('.');
    token += base64url(r, sizeof r);
    return token;
}

std::optional<std::string_view> token_user_tag(std::string_view token) {
    if (token.size() != kTokenChars || token[kUserTagChars] != '.') {
        return std::nullopt;
    }
    for (size_t i = 0; i < token.size(); i++) {
        if (i != kUserTagChars && !base64url_char(token[i])) {
            return std::nullopt;
        }
    }
    return token.substr(0, kUserTagChars);
}

std::string token_hash(const KeyDeriver& keys, std::string_view kind, std::string_view token) {
    KeyTag t = keys.tag("t", kind, token);
    return base64url(t.data(), t.size());
}

namespace {

constexpr size_t kHandshakeMacBytes = 12;
constexpr size_t kHandshakeSignedBytes = kTokenRandomBytes - kHandshakeMacBytes;  // expiry + random

std::array<uint8_t, 32> handshake_mac(const KeyDeriver& keys, std::string_view user_tag, const uint8_t* signed_part) {
    std::string data = "hs";
    data.push_back('\0');
    data.append(user_tag);
    data.push_back('\0');
    data.append(reinterpret_cast<const char*>(signed_part), kHandshakeSignedBytes);
    return keys.mac(data);
}

}  // namespace

std::string generate_handshake_token(const KeyDeriver& keys, std::string_view user_tag, int64_t expires_ms) {
    if (user_tag.size() != kUserTagChars) {
        throw std::invalid_argument("generate_handshake_token: not a user tag");
    }
    uint8_t r[kTokenRandomBytes];
    auto e = static_cast<uint64_t>(expires_ms);
    for (size_t i = 0; i < 8; i++) {
        r[i] = static_cast<uint8_t>(e >> (56 - 8 * i));
    }
    if (RAND_bytes(r + 8, static_cast<int>(kHandshakeSignedBytes - 8)) != 1) {
        throw std::runtime_error("RAND_bytes() failed");
    }
    auto mac = handshake_mac(keys, user_tag, r);
    std::copy(mac.begin(), mac.begin() + kHandshakeMacBytes, r + kHandshakeSignedBytes);
    std::string token(user_tag);
    token.push_back('.');
    token += base64url(r, sizeof r);
    return token;
}

std::optional<HandshakeToken> check_handshake_token(const KeyDeriver& keys, std::string_view token, int64_t now_ms) {
    auto tag = token_user_tag(token);
    std::string raw;
    if (!tag || !base64url_decode(token.substr(kUserTagChars + 1), raw) || raw.size() != kTokenRandomBytes) {
        return std::nullopt;
    }
    const auto* r = reinterpret_cast<const uint8_t*>(raw.data());
    auto mac = handshake_mac(keys, *tag, r);
    if (CRYPTO_memcmp(mac.data(), r + kHandshakeSignedBytes, kHandshakeMacBytes) != 0) {
        return std::nullopt;
    }
    uint64_t e = 0;
    for (size_t i = 0; i < 8; i++) {
        e = (e << 8) | r[i];
    }
    auto expires_ms = static_cast<int64_t>(e);
    if (expires_ms <= now_ms) {
        return std::nullopt;
    }
    return HandshakeToken{std::string(*tag), expires_ms};
}

}  // namespace pairguard
