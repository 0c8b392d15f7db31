// SCRAM-SHA-256, server side (RFC 5802, RFC 7677), as Project Haystack
// carries it over HTTP (docHaystack/Auth): HELLO, then two SCRAM round
// trips in Authorization / WWW-Authenticate headers, then a bearer token in
// Authentication-Info. Pure functions; the nginx glue keeps the handshake in
// Redis between the round trips (DESIGN.md "Auth core").
//
// Not supported, by design: channel binding (SCRAM-SHA-256-PLUS; a client
// that requires it is refused), SASLprep (names and passwords are their UTF-8
// bytes, as seed 004's client sends them), mandatory extensions (m=).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "keys.hpp"

namespace pairguard {

// ---- HTTP authentication headers (RFC 7235) ----

// `scheme [token68 | #auth-param]`, as in Authorization, WWW-Authenticate and
// (without a scheme) Authentication-Info.
struct AuthHeader {
    std::string scheme;  // as sent; compare with is()
    std::string token68;  // `Bearer TOKEN`; empty when there are parameters
    std::vector<std::pair<std::string, std::string>> params;  // names as sent, values unquoted

    bool is(std::string_view name) const;                 // scheme, case-insensitive
    const std::string* param(std::string_view name) const;  // name case-insensitive; nullptr if absent
};

constexpr size_t kAuthHeaderMaxBytes = 8192;

// Whitespace around tokens, `=` and commas is tolerated, empty list elements
// are skipped, values may be tokens (including base64 with `=` padding) or
// quoted strings with backslash escapes. nullopt: no scheme, bad syntax, a
// parameter given twice, or longer than kAuthHeaderMaxBytes.
std::optional<AuthHeader> parse_auth_header(std::string_view value);

// The same list without a scheme (Authentication-Info).
std::optional<AuthHeader> parse_auth_params(std::string_view value);

namespace scram {

constexpr size_t kKeyBytes = 32;  // SHA-256
using Key = std::array<uint8_t, kKeyBytes>;

constexpr size_t kSaltBytes = 16;
constexpr uint32_t kDefaultIterations = 10000;
// Seed 004's client refuses a server that asks for fewer (weak) or more (a
// CPU burden on the client) iterations, or a salt under 16 bytes.
constexpr uint32_t kMinIterations = 4096;
constexpr uint32_t kMaxIterations = 1000000;

constexpr size_t kMessageMaxBytes = 2048;
constexpr size_t kClientNonceMaxChars = 256;

// Why an exchange failed. Every failure is a 403 for the client; the names
// (RFC 5802 `server-error-value` where it has one) are for logs.
enum class Error {
    none,
    invalid_encoding,               // malformed message
    extensions_not_supported,       // m=
    channel_binding_not_supported,  // client requires channel binding (p=)
    channel_bindings_dont_match,    // c= is not this exchange's gs2 header
    invalid_username_encoding,      // bad =XX escape, not UTF-8 text, too long
    authzid_not_supported,          // a= names someone other than the user
    nonce_mismatch,                 // r= is not the nonce the server issued
    invalid_proof,                  // wrong password (or unknown user)
    expired,                        // handshake older than its expiry
};

const char* error_name(Error e);

// client-first-message = gs2-header client-first-message-bare.
struct ClientFirst {
    std::string gs2_header;  // "n,," / "y,," / "n,a=NAME,": as sent, what c= must carry
    std::string user;        // unescaped (=2C -> ',', =3D -> '=')
    std::string nonce;       // the client's nonce
    std::string bare;        // client-first-message-bare as sent (the AuthMessage needs it)
};

// gs2 flag `n` (client has no channel binding) and `y` (client has it but
// thinks the server has not: right, we have not) are accepted, `p=` refused.
// An authzid is accepted only when it names the user. Unknown extensions
// after r= are ignored (they stay in `bare`).
Error parse_client_first(std::string_view msg, ClientFirst& out);

// What the store keeps for a user instead of a password.
struct Credentials {
    std::string salt;  // raw bytes
    uint32_t iterations = kDefaultIterations;
    Key stored_key{};  // H(ClientKey)
    Key server_key{};  // HMAC(SaltedPassword, "Server Key")
};

// SaltedPassword = PBKDF2-HMAC-SHA256(password, salt, iterations);
// ClientKey = HMAC(SaltedPassword, "Client Key"); StoredKey = H(ClientKey);
// ServerKey = HMAC(SaltedPassword, "Server Key"). The password's UTF-8
// bytes are used as they are. Throws std::runtime_error if OpenSSL fails.
Credentials derive_credentials(std::string_view password, std::string_view salt, uint32_t iterations);

// With a fresh kSaltBytes salt from RAND_bytes. Throws std::invalid_argument
// for an iteration count outside [kMinIterations, kMaxIterations].
Credentials new_credentials(std::string_view password, uint32_t iterations = kDefaultIterations);

// For a user the store does not know: the salt is the first kSaltBytes of
// HMAC(secret, "scram-salt\0" USER) (so it is the same on every attempt and
// on every node, as a real user's is), `iterations` should be the count new
// credentials get, and StoredKey/ServerKey are HMACs of the secret that no
// password matches. The exchange runs to the proof and fails there, like a
// wrong password.
Credentials fake_credentials(const KeyDeriver& keys, std::string_view user,
                             uint32_t iterations = kDefaultIterations);

// RFC 5803: "SCRAM-SHA-256$ITERATIONS:SALT$STOREDKEY:SERVERKEY" (base64).
std::string format_credentials(const Credentials& c);
// nullopt for another format, a salt under 8 bytes, keys of the wrong size,
// or an iteration count outside [1, kMaxIterations].
std::optional<Credentials> parse_credentials(std::string_view text);

// base64url of 24 bytes from RAND_bytes (32 characters). Throws
// std::runtime_error when RAND_bytes fails.
std::string generate_server_nonce();

// The state between server-first and client-final. The glue stores it
// (serialize) under the hash of a single-use handshake token.
struct Handshake {
    std::string user;
    std::string gs2_header;
    std::string client_first_bare;
    std::string server_first;
    std::string nonce;  // client nonce + server nonce: the only one client-final may carry
    Key stored_key{};
    Key server_key{};
    bool known = true;  // false: may not succeed (fake credentials, locked or revoked user): fails at the proof
    int64_t expires_ms = 0;
};

// server-first-message "r=CNONCE SNONCE,s=SALT,i=ITERATIONS" (SALT in
// standard base64 with padding, as seed 004's client decodes it), and the
// handshake that goes with it.
Handshake start(const ClientFirst& first, const Credentials& creds, bool known, std::string_view server_nonce,
                int64_t expires_ms);

// JSON; binary fields in base64.
std::string serialize(const Handshake& h);
std::optional<Handshake> parse_handshake(std::string_view json);

// client-final-message = "c=" B64(gs2 header) ",r=" NONCE [ext] ",p=" B64(proof).
struct ClientFinal {
    std::string channel_binding;  // c=, decoded
    std::string nonce;            // r=
    std::string proof;            // p=, decoded
    std::string without_proof;    // client-final-message-without-proof as sent
};

Error parse_client_final(std::string_view msg, ClientFinal& out);

// Checks client-final against the handshake: not expired (now_ms <
// expires_ms), c= decodes to exactly the gs2 header of client-first, r= is
// exactly the issued nonce, and H(ClientProof XOR ClientSignature) equals
// StoredKey (constant-time) and the handshake is `known`, where ClientSignature = HMAC(StoredKey,
// AuthMessage) and AuthMessage = client-first-bare "," server-first ","
// client-final-without-proof. On success `server_final` is
// "v=" base64(HMAC(ServerKey, AuthMessage)).
Error finish(const Handshake& h, std::string_view client_final, int64_t now_ms, std::string& server_final);

}  // namespace scram

// ---- Project Haystack over HTTP (docHaystack/Auth) ----

namespace haystack {

enum class Kind { hello, scram, bearer, plaintext, other };

// What a request's Authorization header asks for.
struct Authorization {
    Kind kind = Kind::other;
    std::string user;             // hello, plaintext: decoded username
    std::string handshake_token;  // scram
    std::string data;             // scram: the decoded SCRAM message
    std::string auth_token;       // bearer: `BEARER authToken=T` or `Bearer T`
    std::string password;         // plaintext: decoded
};

// Scheme names in any case; base64url values with or without padding (the
// standard alphabet is accepted too). `other`: a scheme this exchange does
// not know (the caller answers with HELLO's challenge or 401). nullopt: a
// known scheme with missing or malformed parameters, or a user name that
// valid_auth_user refuses.
std::optional<Authorization> parse_authorization(std::string_view header);

// 401 to HELLO: "SCRAM hash=SHA-256, handshakeToken=T".
std::string hello_challenge(std::string_view handshake_token);
// 401 to client-first: "SCRAM handshakeToken=T, hash=SHA-256, data=B64URL(server-first)".
std::string server_first_challenge(std::string_view handshake_token, std::string_view server_first);
// 200 Authentication-Info: "authToken=T, data=B64URL(server-final)".
std::string authentication_info(std::string_view auth_token, std::string_view server_final);

}  // namespace haystack

}  // namespace pairguard
