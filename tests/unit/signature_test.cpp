#include <gtest/gtest.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <memory>

#include "encoding.hpp"
#include "keys.hpp"
#include "signature.hpp"

using namespace pairguard;

namespace {

std::string unhex(std::string_view hex) {
    std::string out;
    for (size_t i = 0; i + 1 < hex.size(); i += 2) {
        out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
    }
    return out;
}

struct PkeyDeleter {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

PkeyPtr generate(const char* type, const char* param = nullptr) {
    EVP_PKEY* k = nullptr;
    if (param == nullptr) {
        k = EVP_PKEY_Q_keygen(nullptr, nullptr, type);
    } else if (std::string(type) == "RSA") {
        k = EVP_PKEY_Q_keygen(nullptr, nullptr, type, static_cast<size_t>(std::stoul(param)));
    } else {
        k = EVP_PKEY_Q_keygen(nullptr, nullptr, type, param);
    }
    EXPECT_NE(k, nullptr) << type;
    return PkeyPtr(k);
}

std::string public_pem(EVP_PKEY* k) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
    EXPECT_EQ(PEM_write_bio_PUBKEY(bio.get(), k), 1);
    char* data = nullptr;
    long len = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(len));
}

std::string private_pem(EVP_PKEY* k) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
    EXPECT_EQ(PEM_write_bio_PrivateKey(bio.get(), k, nullptr, nullptr, 0, nullptr, nullptr), 1);
    char* data = nullptr;
    long len = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(len));
}

// What a client does: sign the auth message (Ed25519: no digest; ECDSA: SHA-256, DER).
std::string sign(EVP_PKEY* k, std::string_view message, bool ed25519) {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    EXPECT_EQ(EVP_DigestSignInit(ctx.get(), nullptr, ed25519 ? nullptr : EVP_sha256(), nullptr, k), 1);
    size_t len = 0;
    auto msg = reinterpret_cast<const unsigned char*>(message.data());
    EXPECT_EQ(EVP_DigestSign(ctx.get(), nullptr, &len, msg, message.size()), 1);
    std::string sig(len, '\0');
    EXPECT_EQ(EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, msg, message.size()), 1);
    sig.resize(len);
    return sig;
}

// RFC 8032 section 7.1, TEST 1-3.
struct Vector {
    const char* public_key;
    const char* message;
    const char* signature;
};
const Vector kRfc8032[] = {
    {"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24"
     "655141438e7a100b"},
    {"3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aee"
     "b00d291612bb0c00"},
    {"fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28d"
     "c027beceea1ec40a"},
};

const std::string kHost = "edge.example.com";
const std::string kUser = "alice";

}  // namespace

TEST(Signature, Rfc8032Ed25519VectorsVerify) {
    for (const Vector& v : kRfc8032) {
        auto key = PublicKey::from_raw_ed25519(unhex(v.public_key));
        ASSERT_TRUE(key);
        EXPECT_EQ(key->type(), KeyType::ed25519);
        std::string sig = unhex(v.signature);
        EXPECT_TRUE(key->verify(unhex(v.message), sig)) << v.public_key;
        sig[10] ^= 1;
        EXPECT_FALSE(key->verify(unhex(v.message), sig)) << "a flipped bit fails";
        EXPECT_FALSE(key->verify(unhex(v.message) + "x", unhex(v.signature))) << "another message fails";
    }
    // TEST 1's signature does not verify under TEST 2's key
    auto key2 = PublicKey::from_raw_ed25519(unhex(kRfc8032[1].public_key));
    EXPECT_FALSE(key2->verify("", unhex(kRfc8032[0].signature)));
    EXPECT_FALSE(PublicKey::from_raw_ed25519("short"));
}

TEST(Signature, Ed25519PemMatchesTheRawKey) {
    // SubjectPublicKeyInfo of RFC 8032 TEST 1: the Ed25519 prefix, then the key.
    std::string der = unhex("302a300506032b6570032100") + unhex(kRfc8032[0].public_key);
    std::string pem = "-----BEGIN PUBLIC KEY-----\n" + base64(der) + "\n-----END PUBLIC KEY-----\n";
    std::string error;
    auto from_pem = PublicKey::from_pem(pem, &error);
    ASSERT_TRUE(from_pem) << error;
    auto raw = PublicKey::from_raw_ed25519(unhex(kRfc8032[0].public_key));
    EXPECT_EQ(from_pem->fingerprint(), raw->fingerprint());
    EXPECT_EQ(from_pem->fingerprint().rfind("SHA256:", 0), 0u);
    EXPECT_EQ(from_pem->fingerprint().size(), 7u + 43u);
    EXPECT_EQ(from_pem->to_pem(), pem);
    EXPECT_STREQ(from_pem->type_name(), "ed25519");
    EXPECT_TRUE(from_pem->verify("", unhex(kRfc8032[0].signature)));
}

TEST(Signature, SignedMessageLayout) {
    EXPECT_EQ(auth_signed_message("edge.example.com", "alice", "bm9uY2U="),
              "pairguard-auth-v1\nedge.example.com\nalice\nbm9uY2U=");
}

TEST(Signature, ChallengeNonceIs32RandomBytesInBase64) {
    std::string a = generate_challenge_nonce();
    std::string b = generate_challenge_nonce();
    EXPECT_EQ(a.size(), kChallengeNonceChars);
    EXPECT_NE(a, b);
    std::string raw;
    ASSERT_TRUE(base64_decode_lenient(a, raw));
    EXPECT_EQ(raw.size(), kChallengeNonceBytes);
    EXPECT_EQ(base64(raw), a) << "standard alphabet, padded";
}

TEST(Signature, EcdsaP256RoundTrip) {
    PkeyPtr k = generate("EC", "P-256");
    std::string error;
    auto key = PublicKey::from_pem(public_pem(k.get()), &error);
    ASSERT_TRUE(key) << error;
    EXPECT_EQ(key->type(), KeyType::ecdsa_p256);
    EXPECT_STREQ(key->type_name(), "ecdsa-p256");
    std::string nonce = generate_challenge_nonce();
    std::string sig = sign(k.get(), auth_signed_message(kHost, kUser, nonce), false);
    EXPECT_TRUE(verify_auth_signature(*key, kHost, kUser, nonce, base64(sig)));
    // url-safe and unpadded base64 are accepted too
    std::string url = base64url(reinterpret_cast<const uint8_t*>(sig.data()), sig.size());
    EXPECT_TRUE(verify_auth_signature(*key, kHost, kUser, nonce, url));
    // the stored PEM loads back to the same key
    auto again = PublicKey::from_pem(key->to_pem());
    ASSERT_TRUE(again);
    EXPECT_EQ(again->fingerprint(), key->fingerprint());
    EXPECT_TRUE(verify_auth_signature(*again, kHost, kUser, nonce, base64(sig)));
}

TEST(Signature, Ed25519RoundTrip) {
    PkeyPtr k = generate("ED25519");
    auto key = PublicKey::from_pem(public_pem(k.get()));
    ASSERT_TRUE(key);
    std::string nonce = generate_challenge_nonce();
    std::string sig = sign(k.get(), auth_signed_message(kHost, kUser, nonce), true);
    EXPECT_EQ(sig.size(), 64u);
    EXPECT_TRUE(verify_auth_signature(*key, kHost, kUser, nonce, base64(sig)));
}

TEST(Signature, WrongHostUserOrNonceFails) {
    for (bool ed : {true, false}) {
        PkeyPtr k = ed ? generate("ED25519") : generate("EC", "P-256");
        auto key = PublicKey::from_pem(public_pem(k.get()));
        ASSERT_TRUE(key);
        std::string nonce = generate_challenge_nonce();
        std::string sig = base64(sign(k.get(), auth_signed_message(kHost, kUser, nonce), ed));
        EXPECT_TRUE(verify_auth_signature(*key, kHost, kUser, nonce, sig));
        EXPECT_FALSE(verify_auth_signature(*key, "other.example.com", kUser, nonce, sig));
        EXPECT_FALSE(verify_auth_signature(*key, kHost, "bob", nonce, sig));
        EXPECT_FALSE(verify_auth_signature(*key, kHost, kUser, generate_challenge_nonce(), sig));
        // the nonce is signed as its base64 text, not as its bytes
        std::string raw;
        ASSERT_TRUE(base64_decode_lenient(nonce, raw));
        EXPECT_FALSE(verify_auth_signature(*key, kHost, kUser, raw, sig));
        // another key of the same type
        PkeyPtr other = ed ? generate("ED25519") : generate("EC", "P-256");
        EXPECT_FALSE(verify_auth_signature(*PublicKey::from_pem(public_pem(other.get())), kHost, kUser, nonce, sig));
    }
}

TEST(Signature, NewlinesCannotShiftFieldsAcrossHostAndUser) {
    PkeyPtr k = generate("ED25519");
    auto key = PublicKey::from_pem(public_pem(k.get()));
    ASSERT_TRUE(key);
    std::string nonce = generate_challenge_nonce();
    // signed for host "a\nb", user "c" is the same byte string as host "a", user "b\nc"
    std::string sig = base64(sign(k.get(), auth_signed_message("a\nb", "c", nonce), true));
    EXPECT_FALSE(verify_auth_signature(*key, "a", "b\nc", nonce, sig));
    EXPECT_FALSE(verify_auth_signature(*key, "a\nb", "c", nonce, sig));
}

TEST(Signature, MalformedSignaturesFail) {
    PkeyPtr k = generate("EC", "P-256");
    auto key = PublicKey::from_pem(public_pem(k.get()));
    ASSERT_TRUE(key);
    std::string nonce = generate_challenge_nonce();
    std::string sig = sign(k.get(), auth_signed_message(kHost, kUser, nonce), false);
    for (const std::string& bad :
         {std::string(), std::string("!!!!"), base64(sig.substr(0, sig.size() - 1)), base64(sig + "x"),
          base64(std::string(64, 'x')), base64(std::string(8, '\0')), std::string(kSignatureMaxChars + 4, 'A'),
          base64(sig) + " ", base64(sig) + "==="}) {
        EXPECT_FALSE(verify_auth_signature(*key, kHost, kUser, nonce, bad)) << bad;
    }
    PkeyPtr ed = generate("ED25519");
    auto edkey = PublicKey::from_pem(public_pem(ed.get()));
    std::string edsig = sign(ed.get(), auth_signed_message(kHost, kUser, nonce), true);
    EXPECT_FALSE(verify_auth_signature(*edkey, kHost, kUser, nonce, base64(edsig.substr(0, 63))));
    EXPECT_FALSE(verify_auth_signature(*edkey, kHost, kUser, nonce, base64(edsig + "x")));
    // an ECDSA signature is no Ed25519 signature
    EXPECT_FALSE(verify_auth_signature(*edkey, kHost, kUser, nonce, base64(sig)));
    EXPECT_EQ(ERR_peek_error(), 0u) << "no OpenSSL errors left behind";
}

TEST(Signature, OtherKeyTypesAreRefused) {
    struct Case {
        PkeyPtr key;
        const char* why;
    };
    Case cases[] = {
        {generate("RSA", "1024"), "unsupported key type"},
        {generate("EC", "P-384"), "unsupported curve"},
        {generate("EC", "secp256k1"), "unsupported curve"},
        {generate("ED448"), "unsupported key type"},
        {generate("X25519"), "unsupported key type"},
    };
    for (const Case& c : cases) {
        std::string error;
        EXPECT_FALSE(PublicKey::from_pem(public_pem(c.key.get()), &error));
        EXPECT_NE(error.find(c.why), std::string::npos) << error;
    }
    std::string error;
    PkeyPtr ed = generate("ED25519");
    EXPECT_FALSE(PublicKey::from_pem(private_pem(ed.get()), &error)) << "a private key is not a public key";
    EXPECT_FALSE(error.empty());
    EXPECT_FALSE(PublicKey::from_pem("not a key"));
    EXPECT_FALSE(PublicKey::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"));
    EXPECT_EQ(ERR_peek_error(), 0u) << "no OpenSSL errors left behind";
}
