#include "password.hpp"

#include <argon2.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <charconv>
#include <stdexcept>
#include <vector>

#include "encoding.hpp"

namespace pairguard {

namespace {

constexpr std::string_view kPrefix = "$argon2id$v=19$";

bool within(const Argon2Params& p, const Argon2Limits& l) {
    return p.t >= 1 && p.p >= 1 && p.m_kib >= 8 * p.p && p.m_kib <= l.max_m_kib && p.t <= l.max_t &&
           p.p <= l.max_p;
}

// "NAME=DECIMAL" with no sign and no leading zero.
bool field(std::string_view s, std::string_view name, uint32_t& out) {
    if (s.size() <= name.size() + 1 || s.substr(0, name.size()) != name || s[name.size()] != '=') {
        return false;
    }
    s.remove_prefix(name.size() + 1);
    if (s.size() > 10 || (s[0] == '0' && s.size() > 1)) {
        return false;
    }
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size();
}

// Unpadded standard base64, as libargon2 writes (and reads) it.
bool b64_field(std::string_view s, size_t min, size_t max, size_t& len) {
    for (char c : s) {
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
        if (!ok) {
            return false;
        }
    }
    std::string raw;
    if (!base64_decode_lenient(s, raw)) {
        return false;
    }
    len = raw.size();
    return len >= min && len <= max;
}

}  // namespace

std::string hash_password(std::string_view password, const Argon2Params& params) {
    if (!within(params, Argon2Limits{})) {
        throw std::invalid_argument("Argon2 parameters out of range");
    }
    uint8_t salt[kArgon2SaltBytes];
    if (RAND_bytes(salt, sizeof salt) != 1) {
        throw std::runtime_error("RAND_bytes() failed");
    }
    size_t len = argon2_encodedlen(params.t, params.m_kib, params.p, sizeof salt, kArgon2HashBytes, Argon2_id);
    std::vector<char> encoded(len);
    int rc = argon2id_hash_encoded(params.t, params.m_kib, params.p, password.data(), password.size(), salt,
                                   sizeof salt, kArgon2HashBytes, encoded.data(), encoded.size());
    OPENSSL_cleanse(salt, sizeof salt);
    if (rc != ARGON2_OK) {
        throw std::runtime_error(std::string("argon2id_hash_encoded(): ") + argon2_error_message(rc));
    }
    return std::string(encoded.data());
}

std::optional<PasswordHashInfo> parse_password_hash(std::string_view encoded, const Argon2Limits& limits) {
    if (encoded.size() > 512 || encoded.substr(0, kPrefix.size()) != kPrefix) {
        return std::nullopt;
    }
    std::string_view rest = encoded.substr(kPrefix.size());
    size_t d1 = rest.find('$');
    size_t d2 = d1 == std::string_view::npos ? d1 : rest.find('$', d1 + 1);
    if (d2 == std::string_view::npos || rest.find('$', d2 + 1) != std::string_view::npos) {
        return std::nullopt;
    }
    std::string_view params = rest.substr(0, d1);
    size_t c1 = params.find(',');
    size_t c2 = c1 == std::string_view::npos ? c1 : params.find(',', c1 + 1);
    if (c2 == std::string_view::npos) {
        return std::nullopt;
    }
    PasswordHashInfo info;
    if (!field(params.substr(0, c1), "m", info.params.m_kib) ||
        !field(params.substr(c1 + 1, c2 - c1 - 1), "t", info.params.t) ||
        !field(params.substr(c2 + 1), "p", info.params.p) || !within(info.params, limits) ||
        !b64_field(rest.substr(d1 + 1, d2 - d1 - 1), 8, 64, info.salt_bytes) ||
        !b64_field(rest.substr(d2 + 1), 16, 64, info.hash_bytes)) {
        return std::nullopt;
    }
    return info;
}

PasswordCheck verify_password(std::string_view encoded, std::string_view password, const Argon2Limits& limits) {
    if (!parse_password_hash(encoded, limits)) {
        return PasswordCheck::invalid_hash;
    }
    std::string z(encoded);  // libargon2 wants a C string
    int rc = argon2id_verify(z.c_str(), password.data(), password.size());
    if (rc == ARGON2_OK) {
        return PasswordCheck::ok;
    }
    if (rc == ARGON2_VERIFY_MISMATCH) {
        return PasswordCheck::mismatch;
    }
    if (rc == ARGON2_MEMORY_ALLOCATION_ERROR || rc == ARGON2_THREAD_FAIL) {
        throw std::runtime_error(std::string("argon2id_verify(): ") + argon2_error_message(rc));
    }
    return PasswordCheck::invalid_hash;
}

PasswordCheck verify_password_dummy(std::string_view password, const Argon2Params& params) {
    if (!within(params, Argon2Limits{})) {
        throw std::invalid_argument("Argon2 parameters out of range");
    }
    static const uint8_t salt[kArgon2SaltBytes] = {'p', 'a', 'i', 'r', 'g', 'u', 'a', 'r',
                                                   'd', '-', 'd', 'u', 'm', 'm', 'y', '!'};
    uint8_t out[kArgon2HashBytes];
    int rc = argon2id_hash_raw(params.t, params.m_kib, params.p, password.data(), password.size(), salt, sizeof salt,
                               out, sizeof out);
    if (rc != ARGON2_OK) {
        throw std::runtime_error(std::string("argon2id_hash_raw(): ") + argon2_error_message(rc));
    }
    return PasswordCheck::mismatch;
}

bool needs_rehash(std::string_view encoded, const Argon2Params& policy) {
    std::optional<PasswordHashInfo> info = parse_password_hash(encoded);
    return !info || info->params.m_kib < policy.m_kib || info->params.t < policy.t || info->params.p < policy.p ||
           info->salt_bytes < kArgon2SaltBytes || info->hash_bytes < kArgon2HashBytes;
}

}  // namespace pairguard
