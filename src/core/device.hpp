// Trusted devices (SPEC section 2, after OWASP's "device cookies"): a success
// for an account key K hands the client a token bound to (policy, K) under
// the secret; a request that carries a valid one is decided on the device's
// own store key, with its own budget, instead of K's. The token is checked
// by HMAC alone (no store lookup): random device id, expiry and a MAC over
// both with the policy and K's tag. Redis only ever sees the device's tag, an
// HMAC of the id; no token is stored or logged.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "keys.hpp"

namespace pairguard {

constexpr size_t kDeviceIdBytes = 16;
constexpr size_t kDeviceMacBytes = 16;
// At most this many cookies of the device cookie's name, of a token's length,
// are checked per request (duplicates from other paths or subdomains): each
// costs an HMAC. Values of another length do not count (planted junk cannot
// hide the real one).
constexpr size_t kDeviceCookiesChecked = 16;
constexpr size_t kDeviceTokenChars = 55;

using DeviceId = std::array<uint8_t, kDeviceIdBytes>;

// A new random device id (OpenSSL's CSPRNG); throws std::runtime_error when
// the generator fails.
DeviceId new_device_id();

// The cookie value: base64url(version | id | expiry (unix seconds, 8 bytes
// big-endian) | MAC), 55 characters.
std::string device_token(const KeyDeriver& keys, std::string_view policy, const KeyTag& account, const DeviceId& id,
                         int64_t expires_s);

struct DeviceToken {
    DeviceId id;
    int64_t expires_s;
};

// The device of a token that is well formed, carries the right MAC for
// (policy, account) (compared in constant time) and has not expired; nullopt
// for anything else, which counts as no cookie.
// `max_ttl_s` > 0: a token expiring later than now + max_ttl_s (+ 5 minutes
// of clock skew between nodes) is refused too (device_ttl was shortened).
std::optional<DeviceToken> device_token_check(const KeyDeriver& keys, std::string_view policy, const KeyTag& account,
                                           std::string_view token, int64_t now_s, int64_t max_ttl_s = 0);

// A trusted device's success renews its cookie only once at most half of
// `ttl_s` is left: most successes send no Set-Cookie and cost no HMAC.
bool device_token_renew(int64_t expires_s, int64_t ttl_s, int64_t now_s);

// The device's guard tag: its own store key (device_store_key), bound to
// the policy and the account as well.
KeyTag device_tag(const KeyDeriver& keys, std::string_view policy, const KeyTag& account, const DeviceId& id);

// "PREFIX{d:BASE64URL}": an ordinary guard key with its own hash tag, told
// apart from account keys by the "d:" scope (events say scope "device").
std::string device_store_key(std::string_view prefix, const KeyTag& tag);

// RFC 6265 cookie-name token: visible ASCII except separators.
bool valid_cookie_name(std::string_view name);

// Appends the values of cookie `name` in one Cookie header ("a=1; b=2",
// any blanks around names, values and semicolons; a quoted value loses its
// quotes), in order, up to `max` in total in `out`; `only_len` > 0 keeps
// only values of that length (device tokens: planted junk of another length
// cannot use up `max`).
void cookie_values(std::string_view header, std::string_view name, std::vector<std::string_view>& out,
                   size_t max = kDeviceCookiesChecked, size_t only_len = 0);

// Whether a request header named `header` is what nginx's $http_NAME reads
// (ASCII case ignored, '-' read as '_'): `name` is NAME, in lower case.
bool header_is_variable(std::string_view header, std::string_view name);

// The Set-Cookie value: NAME=TOKEN; Max-Age=N; Path=/; HttpOnly;
// SameSite=Strict[; Secure].
std::string device_set_cookie(std::string_view name, std::string_view token, int64_t max_age_s, bool secure);

}  // namespace pairguard
