#include "signature.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <stdexcept>

#include "encoding.hpp"

namespace pairguard {

namespace {

struct BioDeleter {
    void operator()(BIO* b) const { BIO_free(b); }
};
struct MdCtxDeleter {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct PkeyCtxDeleter {
    void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter>;

std::shared_ptr<EVP_PKEY> own(EVP_PKEY* k) {
    return std::shared_ptr<EVP_PKEY>(k, EVP_PKEY_free);
}

// A failed OpenSSL call leaves errors on the thread's queue; nginx would
// print them with the next unrelated SSL error, so drop them here.
template <typename T>
T quiet(T result) {
    ERR_clear_error();
    return result;
}

bool fail(std::string* error, const char* why) {
    if (error != nullptr) {
        *error = why;
    }
    ERR_clear_error();
    return false;
}

}  // namespace

std::optional<PublicKey> PublicKey::from_pem(std::string_view pem, std::string* error) {
    if (pem.size() > 64 * 1024) {
        fail(error, "key file too large");
        return std::nullopt;
    }
    BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!bio) {
        throw std::runtime_error("BIO_new_mem_buf() failed");
    }
    std::shared_ptr<EVP_PKEY> key = own(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
    if (!key) {
        fail(error, "no PEM public key (\"BEGIN PUBLIC KEY\")");
        return std::nullopt;
    }
    if (EVP_PKEY_is_a(key.get(), "ED25519")) {
        return quiet(PublicKey(std::move(key), KeyType::ed25519));
    }
    if (!EVP_PKEY_is_a(key.get(), "EC")) {
        fail(error, "unsupported key type (Ed25519 or ECDSA P-256 only)");
        return std::nullopt;
    }
    char group[64];
    size_t len = 0;
    if (EVP_PKEY_get_group_name(key.get(), group, sizeof group, &len) != 1 ||
        std::string_view(group, len) != "prime256v1") {
        fail(error, "unsupported curve (ECDSA keys must be on P-256)");
        return std::nullopt;
    }
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
    if (!ctx || EVP_PKEY_public_check(ctx.get()) != 1) {
        fail(error, "invalid EC public key");
        return std::nullopt;
    }
    return quiet(PublicKey(std::move(key), KeyType::ecdsa_p256));
}

std::optional<PublicKey> PublicKey::from_raw_ed25519(std::string_view raw) {
    if (raw.size() != 32) {
        return std::nullopt;
    }
    std::shared_ptr<EVP_PKEY> key = own(EVP_PKEY_new_raw_public_key(
        EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(raw.data()), raw.size()));
    if (!key) {
        fail(nullptr, "");
        return std::nullopt;
    }
    return PublicKey(std::move(key), KeyType::ed25519);
}

const char* PublicKey::type_name() const {
    return type_ == KeyType::ed25519 ? "ed25519" : "ecdsa-p256";
}

bool PublicKey::verify(std::string_view message, std::string_view signature) const {
    if (type_ == KeyType::ed25519 ? signature.size() != 64 : (signature.size() < 8 || signature.size() > 72)) {
        return false;
    }
    MdCtxPtr ctx(EVP_MD_CTX_new());
    if (!ctx) {
        throw std::runtime_error("EVP_MD_CTX_new() failed");
    }
    // Ed25519 hashes internally (no digest); ECDSA signs SHA-256 of the message.
    const EVP_MD* md = type_ == KeyType::ed25519 ? nullptr : EVP_sha256();
    if (EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, key_.get()) != 1) {
        return fail(nullptr, "");
    }
    int rc = EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                              reinterpret_cast<const unsigned char*>(message.data()), message.size());
    return quiet(rc == 1);
}

std::string PublicKey::to_pem() const {
    BioPtr bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_PUBKEY(bio.get(), key_.get()) != 1) {
        throw std::runtime_error("PEM_write_bio_PUBKEY() failed");
    }
    char* data = nullptr;
    long len = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(len));
}

std::string PublicKey::fingerprint() const {
    unsigned char* der = nullptr;
    int len = i2d_PUBKEY(key_.get(), &der);
    if (len <= 0) {
        throw std::runtime_error("i2d_PUBKEY() failed");
    }
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(der, static_cast<size_t>(len), md);
    OPENSSL_free(der);
    std::string b64 = base64(md, sizeof md);
    while (!b64.empty() && b64.back() == '=') {
        b64.pop_back();
    }
    return "SHA256:" + b64;
}

std::string generate_challenge_nonce() {
    uint8_t r[kChallengeNonceBytes];
    if (RAND_bytes(r, sizeof r) != 1) {
        throw std::runtime_error("RAND_bytes() failed");
    }
    return base64(r, sizeof r);
}

std::string auth_signed_message(std::string_view host, std::string_view user, std::string_view nonce) {
    std::string m;
    m.reserve(kAuthMessageTag.size() + host.size() + user.size() + nonce.size() + 3);
    m.append(kAuthMessageTag).append("\n").append(host).append("\n").append(user).append("\n").append(nonce);
    return m;
}

bool verify_auth_signature(const PublicKey& key, std::string_view host, std::string_view user,
                           std::string_view nonce, std::string_view signature_b64) {
    std::string sig;
    // A newline in host or user would let one message stand for another.
    if (host.find('\n') != std::string_view::npos || user.find('\n') != std::string_view::npos ||
        signature_b64.empty() || signature_b64.size() > kSignatureMaxChars ||
        !base64_decode_lenient(signature_b64, sig)) {
        return false;
    }
    return key.verify(auth_signed_message(host, user, nonce), sig);
}

}  // namespace pairguard
