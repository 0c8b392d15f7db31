#include "keys.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

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
    MacCtxPtr keyed;  // keyed once; each use works on a copy
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

std::array<uint8_t, 32> KeyDeriver::mac(std::string_view data) const {
    std::array<uint8_t, 32> out{};
    MacCtxPtr ctx(EVP_MAC_CTX_dup(impl_->keyed.get()));
    size_t len = 0;
    if (!ctx || EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1
        || EVP_MAC_final(ctx.get(), out.data(), &len, out.size()) != 1 || len != out.size()) {
        throw std::runtime_error("HMAC computation failed");
    }
    return out;
}

KeyTag KeyDeriver::tag(std::string_view ns, std::string_view name, std::string_view value) const {
    std::string buf;
    buf.reserve(ns.size() + name.size() + value.size() + 2);
    buf.append(ns).push_back('\0');
    buf.append(name).push_back('\0');
    buf.append(value);
    auto full = mac(buf);
    OPENSSL_cleanse(buf.data(), buf.size());
    KeyTag t;
    std::copy(full.begin(), full.begin() + t.size(), t.begin());
    return t;
}

std::string base64url(const uint8_t* data, size_t len) {
    std::string out(4 * ((len + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(len));
    out.resize(static_cast<size_t>(n));
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

std::string guard_store_key(std::string_view prefix, const KeyTag& tag) {
    std::string key;
    key.reserve(prefix.size() + 26);
    key.append(prefix).append("{g:").append(base64url(tag.data(), tag.size())).push_back('}');
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
