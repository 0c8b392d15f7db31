// Public-key challenge-response login (SPEC section 4, `challenge` /
// `verify`; seed 003 without PGP): the server hands out a random nonce, the
// client signs a message that binds it to the host and the user, the server
// checks the signature with the key the operator registered.
//
// The signed message is the UTF-8 bytes of
//
//     "pairguard-auth-v1\n" HOST "\n" USER "\n" NONCE
//
// with no trailing newline, where NONCE is the nonce exactly as the
// challenge answer gave it (its base64 text, 44 characters, not the 32 bytes
// it encodes) and HOST is the host name the request was sent to, as nginx's
// $host has it (lowercase, no port). Keys are Ed25519 (signature: 64 bytes)
// or ECDSA on P-256 (signature: DER, over SHA-256 of the message). The
// signature travels base64 (either alphabet, padding optional).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

struct evp_pkey_st;  // OpenSSL's EVP_PKEY

namespace pairguard {

enum class KeyType { ed25519, ecdsa_p256 };

// An immutable public key. Copies share the OpenSSL object; verifying from
// several threads at once is safe.
class PublicKey {
public:
    // The first "PUBLIC KEY" (SubjectPublicKeyInfo) block of `pem`. nullopt,
    // with a reason in *error, for anything but Ed25519 and EC keys on
    // P-256 (RSA, Ed448, other curves, private keys, garbage).
    static std::optional<PublicKey> from_pem(std::string_view pem, std::string* error = nullptr);

    // 32 raw bytes (RFC 8032's encoding).
    static std::optional<PublicKey> from_raw_ed25519(std::string_view raw);

    KeyType type() const { return type_; }
    // "ed25519" / "ecdsa-p256"
    const char* type_name() const;

    // `signature` is the raw signature (already base64-decoded): 64 bytes
    // for Ed25519, DER for ECDSA. False for any failure, malformed input
    // included.
    bool verify(std::string_view message, std::string_view signature) const;

    // Canonical SPKI PEM, for the store.
    std::string to_pem() const;

    // "SHA256:" + unpadded base64 of SHA-256 over the DER SubjectPublicKeyInfo
    // (the same for every PEM spelling of the key), for listings and logs.
    std::string fingerprint() const;

private:
    PublicKey(std::shared_ptr<evp_pkey_st> key, KeyType type) : key_(std::move(key)), type_(type) {}

    std::shared_ptr<evp_pkey_st> key_;
    KeyType type_;
};

constexpr std::string_view kAuthMessageTag = "pairguard-auth-v1";
constexpr size_t kChallengeNonceBytes = 32;
constexpr size_t kChallengeNonceChars = 44;  // standard base64 with padding

// 32 bytes from RAND_bytes, standard base64. Throws std::runtime_error when
// RAND_bytes fails.
std::string generate_challenge_nonce();

// The message a client signs (see the top of this file).
std::string auth_signed_message(std::string_view host, std::string_view user, std::string_view nonce);

constexpr size_t kSignatureMaxChars = 256;

// base64-decodes `signature_b64` and verifies it over
// auth_signed_message(host, user, nonce). False for a wrong or malformed
// signature.
bool verify_auth_signature(const PublicKey& key, std::string_view host, std::string_view user,
                           std::string_view nonce, std::string_view signature_b64);

}  // namespace pairguard
