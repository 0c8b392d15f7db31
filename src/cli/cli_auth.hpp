// What pairguardctl's user, key, session and challenge commands (SPEC
// section 4) need besides the store: reading a password without echoing or
// keeping it, reading a public key file, the air-gapped challenge and
// response files, and JSON text for --json. No Redis here: the store calls
// are built by src/core/auth_store.hpp.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "signature.hpp"

namespace pairguard::cli {

// Bad input from the operator (a file, stdin): the CLI reports it and exits
// with status 2 (usage). Its message never contains a password.
struct InputError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// A string that is wiped (OPENSSL_cleanse) when it goes away. Move-only.
class SecretString {
public:
    SecretString() = default;
    explicit SecretString(std::string s) : s_(std::move(s)) {}
    SecretString(SecretString&& o) noexcept : s_(std::move(o.s_)) { o.wipe(); }
    SecretString& operator=(SecretString&& o) noexcept;
    SecretString(const SecretString&) = delete;
    SecretString& operator=(const SecretString&) = delete;
    ~SecretString() { wipe(); }

    std::string_view view() const { return s_; }
    bool empty() const { return s_.empty(); }
    size_t size() const { return s_.size(); }
    void wipe();

private:
    std::string s_;
};

constexpr size_t kPasswordMaxBytes = 1024;

// The password on `fd` (the CLI's --password-stdin: fd 0). From a terminal:
// a prompt on stderr, echo off while the line is typed (restored afterwards,
// also on SIGINT/SIGTERM/SIGHUP), and a second prompt to confirm when
// `confirm` is true. From a pipe or file: everything up to end of file. One
// trailing "\n" (or "\r\n") is stripped; what remains must be 1 to
// kPasswordMaxBytes bytes of well-formed UTF-8 without NUL or line breaks.
// Throws InputError (never quoting the password).
SecretString read_password(int fd, bool confirm = false);

// The same checks on a password that is already in memory (for tests and
// for read_password). Empty string when acceptable, else what is wrong.
std::string password_problem(std::string_view password);

constexpr size_t kKeyFileMaxBytes = 64 * 1024;

// A file of at most `max` bytes. Throws InputError.
std::string read_small_file(const std::string& path, size_t max);

// The first SPKI "PUBLIC KEY" block of a PEM file: Ed25519 or ECDSA P-256.
// Throws InputError with the reason (file unreadable, RSA, private key, ...).
PublicKey read_public_key_file(const std::string& path);

// ---- air-gapped challenge-response ----

// `pairguardctl challenge USER --out FILE` writes this as a JSON object:
//
//   {"version":"pairguard-auth-v1","user":U,"host":H,"nonce":N,
//    "expires_at":UNIX_S,"message":"pairguard-auth-v1\nH\nU\nN"}
//
// `message` is exactly what the key signs (auth_signed_message), so that an
// offline signer can do `jq -j .message FILE | openssl pkeyutl -sign ...`.
struct ChallengeFile {
    std::string user;
    std::string host;
    std::string nonce;
    int64_t expires_at = 0;  // unix seconds
};

// The host CLI challenges are signed for when --host is not given. Not a
// name nginx serves, so a signature made for the CLI cannot be replayed on
// a `verify` endpoint (whose message carries the request's $host).
constexpr std::string_view kCliChallengeHost = "pairguardctl";

std::string render_challenge_file(const ChallengeFile& c);
// nullopt unless it is such an object (message, if present, must match).
std::optional<ChallengeFile> parse_challenge_file(std::string_view text);

// What `pairguardctl verify USER --in FILE` accepts in FILE:
//  - the signature in base64 (either alphabet, padding optional), with
//    surrounding whitespace (e.g. `openssl ... | base64 -w0`);
//  - the raw signature bytes (`openssl pkeyutl -sign -out FILE`): 64 bytes
//    for Ed25519, DER for ECDSA;
//  - a JSON object with "signature" (base64), and optionally "nonce",
//    "host" and "user" (e.g. the challenge file with a "signature" field
//    added).
struct SignatureResponse {
    std::string signature;  // raw bytes
    std::optional<std::string> nonce;
    std::optional<std::string> host;
    std::optional<std::string> user;
};

// Throws InputError.
SignatureResponse parse_response_file(std::string_view content);

// ---- output ----

// A JSON string literal (quotes included); invalid UTF-8 becomes U+FFFD.
std::string json_string(std::string_view s);

// "2026-11-22 06:13:44Z" for unix milliseconds.
std::string utc_time_ms(int64_t unix_ms);

}  // namespace pairguard::cli
