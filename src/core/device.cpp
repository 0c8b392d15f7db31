#include "device.hpp"

#include <algorithm>
#include <openssl/rand.h>

#include <stdexcept>

namespace pairguard {

namespace {

constexpr uint8_t kTokenVersion = 1;
constexpr size_t kTokenBytes = 1 + kDeviceIdBytes + 8 + kDeviceMacBytes;

// The MAC's input after the policy: the account's tag, then the token's
// version, id and expiry. Fixed lengths, so no two inputs run together.
std::string mac_input(const KeyTag& account, const uint8_t* body) {
    std::string in(reinterpret_cast<const char*>(account.data()), account.size());
    in.append(reinterpret_cast<const char*>(body), 1 + kDeviceIdBytes + 8);
    return in;
}

bool is_blank(char c) {
    return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_blank(s.front())) {
        s.remove_prefix(1);
    }
    while (!s.empty() && is_blank(s.back())) {
        s.remove_suffix(1);
    }
    return s;
}

}  // namespace

DeviceId new_device_id() {
    DeviceId id;
    if (RAND_bytes(id.data(), static_cast<int>(id.size())) != 1) {
        throw std::runtime_error("RAND_bytes() failed");
    }
    return id;
}

std::string device_token(const KeyDeriver& keys, std::string_view policy, const KeyTag& account, const DeviceId& id,
                         int64_t expires_s) {
    uint8_t raw[kTokenBytes];
    raw[0] = kTokenVersion;
    std::copy(id.begin(), id.end(), raw + 1);
    auto e = static_cast<uint64_t>(expires_s);
    for (size_t i = 0; i < 8; i++) {
        raw[1 + kDeviceIdBytes + i] = static_cast<uint8_t>(e >> (56 - 8 * i));
    }
    KeyTag mac = keys.tag("dc", policy, mac_input(account, raw));
    std::copy(mac.begin(), mac.begin() + kDeviceMacBytes, raw + 1 + kDeviceIdBytes + 8);
    return base64url(raw, sizeof(raw));
}

std::optional<DeviceToken> device_token_check(const KeyDeriver& keys, std::string_view policy, const KeyTag& account,
                                           std::string_view token, int64_t now_s, int64_t max_ttl_s) {
    // the length first: anything else is not worth an HMAC
    if (token.size() != (kTokenBytes * 8 + 5) / 6) {
        return std::nullopt;
    }
    std::string raw;
    // one spelling per token: the unused low bits of the last character are zero
    if (!base64url_decode(token, raw) || raw.size() != kTokenBytes || raw[0] != static_cast<char>(kTokenVersion)
        || base64url(reinterpret_cast<const uint8_t*>(raw.data()), raw.size()) != token) {
        return std::nullopt;
    }
    const auto* body = reinterpret_cast<const uint8_t*>(raw.data());
    KeyTag mac = keys.tag("dc", policy, mac_input(account, body));
    bool mac_ok = equal_ct(std::string_view(reinterpret_cast<const char*>(mac.data()), kDeviceMacBytes),
                           std::string_view(raw.data() + 1 + kDeviceIdBytes + 8, kDeviceMacBytes));
    uint64_t e = 0;
    for (size_t i = 0; i < 8; i++) {
        e = e << 8 | body[1 + kDeviceIdBytes + i];
    }
    if (!mac_ok || static_cast<int64_t>(e) <= now_s || (max_ttl_s > 0 && static_cast<int64_t>(e) > now_s + max_ttl_s + 300)) {
        return std::nullopt;
    }
    DeviceToken t;
    std::copy(body + 1, body + 1 + kDeviceIdBytes, t.id.begin());
    t.expires_s = static_cast<int64_t>(e);
    return t;
}

bool device_token_renew(int64_t expires_s, int64_t ttl_s, int64_t now_s) {
    return 2 * (expires_s - now_s) <= ttl_s;
}

KeyTag device_tag(const KeyDeriver& keys, std::string_view policy, const KeyTag& account, const DeviceId& id) {
    std::string in(reinterpret_cast<const char*>(account.data()), account.size());
    in.append(reinterpret_cast<const char*>(id.data()), id.size());
    return keys.tag("d", policy, in);
}

std::string device_store_key(std::string_view prefix, const KeyTag& tag) {
    std::string key;
    key.reserve(prefix.size() + 20);
    key.append(prefix).append("{d:").append(base64url(tag.data(), kStoreKeyTagBytes)).push_back('}');
    return key;
}

bool valid_cookie_name(std::string_view name) {
    static const std::string_view separators = "()<>@,;:\\\"/[]?={} \t";
    if (name.empty() || name.size() > 64) {
        return false;
    }
    for (char c : name) {
        auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7f || separators.find(c) != std::string_view::npos) {
            return false;
        }
    }
    return true;
}

void cookie_values(std::string_view header, std::string_view name, std::vector<std::string_view>& out, size_t max,
                   size_t only_len) {
    while (!header.empty() && out.size() < max) {
        size_t semi = header.find(';');
        std::string_view pair = header.substr(0, semi);
        header = semi == std::string_view::npos ? std::string_view() : header.substr(semi + 1);
        size_t eq = pair.find('=');
        if (eq == std::string_view::npos || trim(pair.substr(0, eq)) != name) {
            continue;
        }
        std::string_view v = trim(pair.substr(eq + 1));
        if (v.size() >= 2 && v.front() == '"' && v.back() == '"') {
            v = v.substr(1, v.size() - 2);
        }
        if (only_len == 0 || v.size() == only_len) {
            out.push_back(v);
        }
    }
}

namespace {
char ascii_lower(char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}
}  // namespace

bool header_is_variable(std::string_view header, std::string_view name) {
    if (header.size() != name.size()) {
        return false;
    }
    for (size_t i = 0; i < header.size(); i++) {
        char c = header[i] == '-' ? '_' : ascii_lower(header[i]);
        if (c != name[i]) {
            return false;
        }
    }
    return true;
}

std::string device_set_cookie(std::string_view name, std::string_view token, int64_t max_age_s, bool secure) {
    std::string c;
    c.reserve(name.size() + token.size() + 80);
    c.append(name).append("=").append(token);
    c.append("; Max-Age=").append(std::to_string(max_age_s));
    c.append("; Path=/; HttpOnly; SameSite=Strict");
    if (secure) {
        c.append("; Secure");
    }
    return c;
}

}  // namespace pairguard
