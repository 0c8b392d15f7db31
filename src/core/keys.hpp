// Store keys built from request data: an HMAC-SHA256 under the operator's
// secret, so that Redis never holds a raw code, address or account name.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>

namespace pairguard {

constexpr size_t kSecretMinBytes = 32;
constexpr size_t kTagBytes = 16;

using KeyTag = std::array<uint8_t, kTagBytes>;

class KeyDeriver {
public:
    // Throws std::runtime_error when OpenSSL cannot set up SHA-256.
    explicit KeyDeriver(std::string_view secret);
    ~KeyDeriver();
    KeyDeriver(const KeyDeriver&) = delete;
    KeyDeriver& operator=(const KeyDeriver&) = delete;

    // HMAC(secret, ns "\0" name "\0" value), truncated to 128 bits.
    KeyTag tag(std::string_view ns, std::string_view name, std::string_view value) const;

    // The full 32-byte HMAC of `data`.
    std::array<uint8_t, 32> mac(std::string_view data) const;

private:
    std::array<uint8_t, 32> hmac(std::initializer_list<std::string_view> parts) const;

    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// base64url without padding (RFC 4648 section 5).
std::string base64url(const uint8_t* data, size_t len);

// Inverse of base64url (no padding); false on any other character or length.
bool base64url_decode(std::string_view in, std::string& out);

// "PREFIX{BASE64URL}", the first 96 bits of the tag in 16 characters: one
// hash-tagged Redis key per (policy, key). Kept short on purpose: with the
// default prefix the name fits Redis' 32-byte allocation class.
constexpr size_t kStoreKeyTagBytes = 12;
std::string guard_store_key(std::string_view prefix, const KeyTag& tag);
// The same key appended to `args` as one RESP bulk string.
struct RespArgs;
void add_guard_store_key(RespArgs& args, std::string_view prefix, const KeyTag& tag);

// First 8 hex digits of a tag: what logs show instead of the key.
std::string tag_label(const KeyTag& tag);

// Constant-time equality for secrets.
bool equal_ct(std::string_view a, std::string_view b);

}  // namespace pairguard
