#include "keys.hpp"

#include "encoding.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <initializer_list>
#include <stdexcept>

namespace pairguard {

namespace {

struct MacDeleter {
    void operator()(EVP_MAC* m) const { EVP_MAC_free(m); }
};
struct MacCtxDeleter {
    void operator()(EVP_MAC_CTX* c) const { EVP_MAC_CTX_free(c); }
};

using MacPtr = std::unique_ptr<EVP_MAC, MacDeleter>;
using MacCtxPtr = std::unique_ptr<EVP_MAC_CTX, MacCtxDeleter>;

}  // namespace

struct KeyDeriver::Impl {
    MacPtr mac;
    MacCtxPtr keyed;  // keyed once, re-initialised with that key for each use
};

KeyDeriver::KeyDeriver(std::string_view secret) : impl_(std::make_unique<Impl>()) {
    impl_->mac.reset(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
    if (!impl_->mac) {
        throw std::runtime_error("HMAC is not available");
    }
    impl_->keyed.reset(EVP_MAC_CTX_new(impl_->mac.get()));
    if (!impl_->keyed) {
        throw std::runtime_error("EVP_MAC_CTX_new() failed");
    }
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_MAC_init(impl_->keyed.get(), reinterpret_cast<const unsigned char*>(secret.data()),
                     secret.size(), params) != 1) {
        throw std::runtime_error("EVP_MAC_init() failed");
    }
}

KeyDeriver::~KeyDeriver() = default;

namespace {

// One keyed context serves every call: a NULL key re-initialises it with the
// key it has, so no allocation happens per HMAC. Not for use from several
// threads at once (one KeyDeriver per worker process).
std::array<uint8_t, 32> hmac_parts(EVP_MAC_CTX* ctx, std::initializer_list<std::string_view> parts) {
    std::array<uint8_t, 32> out{};
    size_t len = 0;
    bool ok = EVP_MAC_init(ctx, nullptr, 0, nullptr) == 1;
    for (std::string_view p : parts) {
        ok = ok && EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(p.data()), p.size()) == 1;
    }
    if (!ok || EVP_MAC_final(ctx, out.data(), &len, out.size()) != 1 || len != out.size()) {
        throw std::runtime_error("HMAC computation failed");
    }
    return out;
}

}  // namespace

std::array<uint8_t, 32> KeyDeriver::mac(std::string_view data) const {
    return hmac_parts(impl_->keyed.get(), {data});
}

KeyTag KeyDeriver::tag(std::string_view ns, std::string_view name, std::string_view value) const {
    static const char zero = '\0';
    auto full = hmac_parts(impl_->keyed.get(), {ns, std::string_view(&zero, 1), name, std::string_view(&zero, 1), value});
    KeyTag t;
    std::copy(full.begin(), full.begin() + t.size(), t.begin());
    return t;
}

std::string base64url(const uint8_t* data, size_t len) {
    std::string out = base64(data, len);
    while (!out.empty() && out.back() == '=') {
        out.pop_back();
    }
    for (char& c : out) {
        if (c == '+') {
            c = '-';
        } else if (c == '/') {
            c = '_';
        }
    }
    return out;
}

bool base64url_decode(std::string_view in, std::string& out) {
    // the URL-safe alphabet only and no padding; the decoding itself is shared
    for (char c : in) {
        if (c == '+' || c == '/' || c == '=') {
            out.clear();
            return false;
        }
    }
    return base64_decode_lenient(in, out);
}

std::string guard_store_key(std::string_view prefix, const KeyTag& tag) {
    // 12 bytes are 16 base64 characters, no padding: encoded in place (the
    // hot path builds one of these per guarded request)
    static_assert(kStoreKeyTagBytes % 3 == 0, "a store key's tag encodes without padding");
    char enc[4 * kStoreKeyTagBytes / 3 + 1];
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(enc), tag.data(), static_cast<int>(kStoreKeyTagBytes));
    std::string key;
    key.reserve(prefix.size() + static_cast<size_t>(n) + 2);
    key.append(prefix).push_back('{');
    for (int i = 0; i < n; i++) {
        key.push_back(enc[i] == '+' ? '-' : enc[i] == '/' ? '_' : enc[i]);
    }
    key.push_back('}');
    return key;
}

std::string tag_label(const KeyTag& tag) {
    static const char hex[] = "0123456789abcdef";
    std::string out;
    for (size_t i = 0; i < 4; i++) {
        out.push_back(hex[tag[i] >> 4]);
        out.push_back(hex[tag[i] & 0xf]);
    }
    return out;
}

bool equal_ct(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
        return false;
    }
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace pairguard
