#include "session.hpp"

#include <openssl/rand.h>

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

}  // namespace pairguard
