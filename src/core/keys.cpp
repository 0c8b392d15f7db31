#include "keys.hpp"

#include "encoding.hpp"
#include "resp.hpp"

// SHA256_Init/Update/Final/Transform: see KeyDeriver::Impl
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <cstring>
#include <stdexcept>

namespace pairguard {

// HMAC-SHA256 (RFC 2104) over SHA-256 states that have already absorbed the
// key's inner and outer pad: each tag costs the two compressions of its own
// data and no allocation. The result is byte for byte OpenSSL's HMAC (a unit
// test holds it to HMAC() for short, 64-byte and long secrets); the EVP_MAC
// route copied a digest context and allocated twice per call (2.3 k
// instructions of each guarded request). SHA256_Init and friends are
// deprecated in OpenSSL 3 in favour of EVP, which cannot copy a state
// without allocating; they remain OpenSSL's own code (with SHA-NI). The
// states are only read here, so one deriver serves several threads.
struct KeyDeriver::Impl {
    SHA256_CTX inner;  // SHA-256 after (key ^ ipad)
    SHA256_CTX outer;  // SHA-256 after (key ^ opad)
};

KeyDeriver::KeyDeriver(std::string_view secret) : impl_(std::make_unique<Impl>()) {
    unsigned char block[SHA256_CBLOCK] = {0};
    if (secret.size() > sizeof(block)) {
        SHA256(reinterpret_cast<const unsigned char*>(secret.data()), secret.size(), block);
    } else {
        std::memcpy(block, secret.data(), secret.size());
    }
    unsigned char pad[SHA256_CBLOCK];
    for (size_t i = 0; i < sizeof(block); i++) {
        pad[i] = block[i] ^ 0x36;
    }
    bool ok = SHA256_Init(&impl_->inner) == 1 && SHA256_Update(&impl_->inner, pad, sizeof(pad)) == 1;
    for (size_t i = 0; i < sizeof(block); i++) {
        pad[i] = block[i] ^ 0x5c;
    }
    ok = ok && SHA256_Init(&impl_->outer) == 1 && SHA256_Update(&impl_->outer, pad, sizeof(pad)) == 1;
    OPENSSL_cleanse(block, sizeof(block));
    OPENSSL_cleanse(pad, sizeof(pad));
    if (!ok) {
        throw std::runtime_error("SHA-256 is not available");
    }
}

KeyDeriver::~KeyDeriver() {
    OPENSSL_cleanse(impl_.get(), sizeof(Impl));
}

namespace {

// A SHA-256 state's digest, big-endian.
void digest_of(const SHA256_CTX& c, uint8_t* out) {
    for (size_t i = 0; i < 8; i++) {
        auto h = static_cast<uint32_t>(c.h[i]);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        uint32_t be = __builtin_bswap32(h);
#else
        uint32_t be = h;
#endif
        std::memcpy(out + 4 * i, &be, 4);
    }
}

// The last block of a message of `total` bytes whose final `n` bytes are
// already at the start of `block`: the 0x80, the zeros and the bit length
// (FIPS 180-4 5.1.1).
void pad_final_block(uint8_t (&block)[SHA256_CBLOCK], size_t n, uint64_t total) {
    block[n] = 0x80;
    std::memset(block + n + 1, 0, SHA256_CBLOCK - 8 - n - 1);
    uint64_t bits = total * 8;
    for (size_t i = 0; i < 8; i++) {
        block[SHA256_CBLOCK - 1 - i] = static_cast<uint8_t>(bits >> (8 * i));
    }
}

}  // namespace

std::array<uint8_t, 32> KeyDeriver::hmac(std::initializer_list<std::string_view> parts) const {
    std::array<uint8_t, 32> out{};
    size_t len = 0;
    for (std::string_view p : parts) {
        len += p.size();
    }
    SHA256_CTX c = impl_->inner;
    uint8_t block[SHA256_CBLOCK];
    if (len <= SHA256_CBLOCK - 9) {
        // the whole message and its padding in one block, compressed at once
        // (a store key's data: the hot path); the general route below takes
        // SHA256_Update and SHA256_Final's buffering and wiping
        size_t n = 0;
        for (std::string_view p : parts) {
            std::memcpy(block + n, p.data(), p.size());
            n += p.size();
        }
        pad_final_block(block, n, SHA256_CBLOCK + len);
        SHA256_Transform(&c, block);
        digest_of(c, out.data());
    } else {
        for (std::string_view p : parts) {
            SHA256_Update(&c, p.data(), p.size());
        }
        SHA256_Final(out.data(), &c);
    }
    // the outer hash of the inner digest: always one block
    c = impl_->outer;
    std::memcpy(block, out.data(), out.size());
    pad_final_block(block, out.size(), SHA256_CBLOCK + out.size());
    SHA256_Transform(&c, block);
    digest_of(c, out.data());
    OPENSSL_cleanse(block, sizeof(block));
    OPENSSL_cleanse(c.h, sizeof(c.h));
    return out;
}

std::array<uint8_t, 32> KeyDeriver::mac(std::string_view data) const {
    return hmac({data});
}

KeyTag KeyDeriver::tag(std::string_view ns, std::string_view name, std::string_view value) const {
    static const char zero = '\0';
    auto full = hmac({ns, std::string_view(&zero, 1), name, std::string_view(&zero, 1), value});
    KeyTag t;
    std::copy(full.begin(), full.begin() + t.size(), t.begin());
    return t;
}

namespace {

// Standard base64 text turned into the URL-safe alphabet, in place.
void to_url_alphabet(char* p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        p[i] = p[i] == '+' ? '-' : p[i] == '/' ? '_' : p[i];
    }
}

}  // namespace

std::string base64url(const uint8_t* data, size_t len) {
    std::string out = base64_unpadded(data, len);
    to_url_alphabet(out.data(), out.size());
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

namespace {

// The tag's first 96 bits in 16 base64url characters (no padding), written
// in place: the hot path builds one store key per guarded request.
constexpr size_t kStoreKeyTagChars = 4 * kStoreKeyTagBytes / 3;

void encode_store_tag(const KeyTag& tag, char (&out)[kStoreKeyTagChars + 1]) {
    // base64url of 12 bytes: four groups of three, no padding (the same text
    // as base64url(), which a unit test holds it to)
    static_assert(kStoreKeyTagBytes % 3 == 0, "a store key's tag encodes without padding");
    static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (size_t i = 0, o = 0; i < kStoreKeyTagBytes; i += 3, o += 4) {
        uint32_t v = (uint32_t{tag[i]} << 16) | (uint32_t{tag[i + 1]} << 8) | tag[i + 2];
        out[o] = kAlphabet[v >> 18];
        out[o + 1] = kAlphabet[(v >> 12) & 63];
        out[o + 2] = kAlphabet[(v >> 6) & 63];
        out[o + 3] = kAlphabet[v & 63];
    }
    out[kStoreKeyTagChars] = '\0';
}

}  // namespace

std::string guard_store_key(std::string_view prefix, const KeyTag& tag) {
    char enc[kStoreKeyTagChars + 1];
    encode_store_tag(tag, enc);
    std::string key;
    key.reserve(prefix.size() + kStoreKeyTagChars + 2);
    key.append(prefix).push_back('{');
    key.append(enc, kStoreKeyTagChars).push_back('}');
    return key;
}

void add_guard_store_key(RespArgs& args, std::string_view prefix, const KeyTag& tag) {
    char enc[kStoreKeyTagChars + 1];
    encode_store_tag(tag, enc);
    args.add_joined({prefix, "{", std::string_view(enc, kStoreKeyTagChars), "}"});
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
