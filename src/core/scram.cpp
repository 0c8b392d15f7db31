#include "scram.hpp"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <memory>
#include <stdexcept>

#include "encoding.hpp"
#include "session.hpp"

namespace pairguard {

namespace {

bool tchar(char c) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
        return true;
    }
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*':
    case '+': case '-': case '.': case '^': case '_': case '`': case '|': case '~':
        return true;
    default:
        return false;
    }
}

bool token68_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~' || c == '+' || c == '/';
}

bool ws(char c) {
    return c == ' ' || c == '\t';
}

char lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
        return false;
    }
    for (size_t i = 0; i < a.size(); i++) {
        if (lower(a[i]) != lower(b[i])) {
            return false;
        }
    }
    return true;
}

std::string_view trim_ws(std::string_view s) {
    while (!s.empty() && ws(s.front())) {
        s.remove_prefix(1);
    }
    while (!s.empty() && ws(s.back())) {
        s.remove_suffix(1);
    }
    return s;
}

bool is_token68(std::string_view s) {
    size_t i = 0;
    while (i < s.size() && token68_char(s[i])) {
        i++;
    }
    if (i == 0) {
        return false;
    }
    while (i < s.size() && s[i] == '=') {
        i++;
    }
    return i == s.size();
}

// #auth-param into `out`; false on bad syntax or a repeated name.
bool parse_params(std::string_view s, AuthHeader& out) {
    size_t i = 0;
    auto skip_ws = [&] {
        while (i < s.size() && ws(s[i])) {
            i++;
        }
    };
    for (;;) {
        while (i < s.size() && (ws(s[i]) || s[i] == ',')) {
            i++;
        }
        if (i == s.size()) {
            return true;
        }
        size_t n0 = i;
        while (i < s.size() && tchar(s[i])) {
            i++;
        }
        if (i == n0) {
            return false;
        }
        std::string name(s.substr(n0, i - n0));
        skip_ws();
        if (i == s.size() || s[i] != '=') {
            return false;
        }
        i++;
        skip_ws();
        std::string value;
        if (i < s.size() && s[i] == '"') {
            i++;
            bool closed = false;
            while (i < s.size()) {
                char c = s[i++];
                if (c == '"') {
                    closed = true;
                    break;
                }
                if (c == '\\') {
                    if (i == s.size()) {
                        return false;
                    }
                    c = s[i++];
                }
                value.push_back(c);
            }
            if (!closed) {
                return false;
            }
        } else {
            size_t v0 = i;
            while (i < s.size() && s[i] != ',' && !ws(s[i]) && s[i] != '"') {
                i++;
            }
            if (i == v0) {
                return false;
            }
            value.assign(s.substr(v0, i - v0));
        }
        for (const auto& p : out.params) {
            if (iequals(p.first, name)) {
                return false;
            }
        }
        out.params.emplace_back(std::move(name), std::move(value));
        skip_ws();
        if (i < s.size() && s[i] != ',') {
            return false;
        }
    }
}

}  // namespace

bool AuthHeader::is(std::string_view name) const {
    return iequals(scheme, name);
}

const std::string* AuthHeader::param(std::string_view name) const {
    for (const auto& p : params) {
        if (iequals(p.first, name)) {
            return &p.second;
        }
    }
    return nullptr;
}

std::optional<AuthHeader> parse_auth_header(std::string_view value) {
    if (value.size() > kAuthHeaderMaxBytes) {
        return std::nullopt;
    }
    std::string_view s = trim_ws(value);
    size_t i = 0;
    while (i < s.size() && tchar(s[i])) {
        i++;
    }
    if (i == 0 || (i < s.size() && !ws(s[i]))) {
        return std::nullopt;
    }
    AuthHeader h;
    h.scheme.assign(s.substr(0, i));
    std::string_view rest = trim_ws(s.substr(i));
    if (is_token68(rest)) {
        h.token68.assign(rest);
        return h;
    }
    if (!parse_params(rest, h)) {
        return std::nullopt;
    }
    return h;
}

std::optional<AuthHeader> parse_auth_params(std::string_view value) {
    if (value.size() > kAuthHeaderMaxBytes) {
        return std::nullopt;
    }
    AuthHeader h;
    if (!parse_params(trim_ws(value), h)) {
        return std::nullopt;
    }
    return h;
}

namespace scram {

namespace {

constexpr std::string_view kClientKey = "Client Key";
constexpr std::string_view kServerKey = "Server Key";

Key hmac(const uint8_t* key, size_t key_len, std::string_view data) {
    Key out{};
    unsigned int len = 0;
    if (HMAC(EVP_sha256(), key, static_cast<int>(key_len), reinterpret_cast<const unsigned char*>(data.data()),
             data.size(), out.data(), &len) == nullptr ||
        len != out.size()) {
        throw std::runtime_error("HMAC-SHA256 failed");
    }
    return out;
}

Key hmac(const Key& key, std::string_view data) {
    return hmac(key.data(), key.size(), data);
}

Key sha256(const Key& data) {
    Key out{};
    SHA256(data.data(), data.size(), out.data());
    return out;
}

std::string_view view(const Key& k) {
    return {reinterpret_cast<const char*>(k.data()), k.size()};
}

bool key_from(std::string_view raw, Key& out) {
    if (raw.size() != out.size()) {
        return false;
    }
    std::copy(raw.begin(), raw.end(), out.begin());
    return true;
}

// saslname: value-safe-char (UTF-8 except NUL, ',' and '=') or =2C / =3D.
bool unescape_saslname(std::string_view in, std::string& out) {
    out.clear();
    for (size_t i = 0; i < in.size(); i++) {
        char c = in[i];
        if (c == '=') {
            std::string_view esc = in.substr(i + 1, 2);
            if (esc == "2C") {
                out.push_back(',');
            } else if (esc == "3D") {
                out.push_back('=');
            } else {
                return false;
            }
            i += 2;
        } else if (c == '\0' || c == ',') {
            return false;
        } else {
            out.push_back(c);
        }
    }
    return !out.empty();
}

// printable = %x21-2B / %x2D-7E
bool printable_nonce(std::string_view s) {
    if (s.empty()) {
        return false;
    }
    for (char c : s) {
        if (c < 0x21 || c > 0x7e || c == ',') {
            return false;
        }
    }
    return true;
}

// RFC 5802 attr-val: ALPHA "=" 1*value-char, value-char being any UTF-8
// character but NUL (and ','). An extension is kept in client-first-bare,
// which the handshake stores as JSON: a non-UTF-8 value must be refused here,
// not fail the store write.
bool attr_val(std::string_view s) {
    return s.size() >= 3 && ((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')) && s[1] == '=' &&
           s.find('\0') == std::string_view::npos && utf8_valid(s.substr(2), false);
}

std::vector<std::string_view> split_commas(std::string_view s) {
    std::vector<std::string_view> parts;
    size_t start = 0;
    for (;;) {
        size_t comma = s.find(',', start);
        if (comma == std::string_view::npos) {
            parts.push_back(s.substr(start));
            return parts;
        }
        parts.push_back(s.substr(start, comma - start));
        start = comma + 1;
    }
}

bool parse_u32(std::string_view s, uint32_t& out) {
    if (s.empty() || s.size() > 10 || s[0] == '0') {
        return false;
    }
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size();
}

struct JsonDeleter {
    void operator()(json_t* j) const { json_decref(j); }
};
using JsonPtr = std::unique_ptr<json_t, JsonDeleter>;

}  // namespace

const char* error_name(Error e) {
    switch (e) {
    case Error::none:
        return "none";
    case Error::invalid_encoding:
        return "invalid-encoding";
    case Error::extensions_not_supported:
        return "extensions-not-supported";
    case Error::channel_binding_not_supported:
        return "channel-binding-not-supported";
    case Error::channel_bindings_dont_match:
        return "channel-bindings-dont-match";
    case Error::invalid_username_encoding:
        return "invalid-username-encoding";
    case Error::authzid_not_supported:
        return "authzid-not-supported";
    case Error::nonce_mismatch:
        return "nonce-mismatch";
    case Error::invalid_proof:
        return "invalid-proof";
    case Error::expired:
        return "expired";
    }
    return "other-error";
}

Error parse_client_first(std::string_view msg, ClientFirst& out) {
    out = ClientFirst{};
    if (msg.size() > kMessageMaxBytes) {
        return Error::invalid_encoding;
    }
    // gs2-header = gs2-cbind-flag "," [ authzid ] ","
    if (msg.substr(0, 2) == "p=") {
        return Error::channel_binding_not_supported;
    }
    if (msg.size() < 3 || (msg[0] != 'n' && msg[0] != 'y') || msg[1] != ',') {
        return Error::invalid_encoding;
    }
    size_t end = msg.find(',', 2);
    if (end == std::string_view::npos) {
        return Error::invalid_encoding;
    }
    std::string_view authzid = msg.substr(2, end - 2);
    std::string authz_user;
    if (!authzid.empty()) {
        if (authzid.substr(0, 2) != "a=") {
            return Error::invalid_encoding;
        }
        if (!unescape_saslname(authzid.substr(2), authz_user)) {
            return Error::invalid_username_encoding;
        }
    }
    out.gs2_header.assign(msg.substr(0, end + 1));
    std::string_view bare = msg.substr(end + 1);
    out.bare.assign(bare);

    // client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
    std::vector<std::string_view> attrs = split_commas(bare);
    if (!attrs.empty() && attrs[0].substr(0, 2) == "m=") {
        return Error::extensions_not_supported;
    }
    if (attrs.size() < 2 || attrs[0].substr(0, 2) != "n=" || attrs[1].substr(0, 2) != "r=") {
        return Error::invalid_encoding;
    }
    if (!unescape_saslname(attrs[0].substr(2), out.user) || !valid_auth_user(out.user)) {
        return Error::invalid_username_encoding;
    }
    std::string_view nonce = attrs[1].substr(2);
    if (!printable_nonce(nonce) || nonce.size() > kClientNonceMaxChars) {
        return Error::invalid_encoding;
    }
    out.nonce.assign(nonce);
    for (size_t i = 2; i < attrs.size(); i++) {
        if (!attr_val(attrs[i])) {
            return Error::invalid_encoding;
        }
    }
    if (!authzid.empty() && authz_user != out.user) {
        return Error::authzid_not_supported;
    }
    return Error::none;
}

Credentials derive_credentials(std::string_view password, std::string_view salt, uint32_t iterations) {
    if (iterations == 0 || iterations > kMaxIterations) {
        throw std::invalid_argument("SCRAM iteration count out of range");
    }
    Key salted{};
    if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                          reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()),
                          static_cast<int>(iterations), EVP_sha256(), static_cast<int>(salted.size()),
                          salted.data()) != 1) {
        throw std::runtime_error("PKCS5_PBKDF2_HMAC() failed");
    }
    Credentials c;
    c.salt.assign(salt);
    c.iterations = iterations;
    c.stored_key = sha256(hmac(salted, kClientKey));
    c.server_key = hmac(salted, kServerKey);
    OPENSSL_cleanse(salted.data(), salted.size());
    return c;
}

Credentials new_credentials(std::string_view password, uint32_t iterations) {
    if (iterations < kMinIterations || iterations > kMaxIterations) {
        throw std::invalid_argument("SCRAM iteration count out of range");
    }
    uint8_t salt[kSaltBytes];
    if (RAND_bytes(salt, sizeof salt) != 1) {
        throw std::runtime_error("RAND_bytes() failed");
    }
    return derive_credentials(password, std::string_view(reinterpret_cast<const char*>(salt), sizeof salt),
                              iterations);
}

Credentials fake_credentials(const KeyDeriver& keys, std::string_view user, uint32_t iterations) {
    auto derived = [&](std::string_view label) {
        std::string msg(label);
        msg.push_back('\0');
        msg.append(user);
        auto m = keys.mac(msg);
        Key k{};
        std::copy(m.begin(), m.end(), k.begin());
        return k;
    };
    Credentials c;
    Key salt = derived("scram-salt");
    c.salt.assign(reinterpret_cast<const char*>(salt.data()), kSaltBytes);
    c.iterations = iterations;
    c.stored_key = derived("scram-stored-key");
    c.server_key = derived("scram-server-key");
    return c;
}

std::string format_credentials(const Credentials& c) {
    std::string out = "SCRAM-SHA-256$";
    out += std::to_string(c.iterations);
    out += ':';
    out += base64(c.salt);
    out += '$';
    out += base64(view(c.stored_key));
    out += ':';
    out += base64(view(c.server_key));
    return out;
}

std::optional<Credentials> parse_credentials(std::string_view text) {
    constexpr std::string_view kPrefix = "SCRAM-SHA-256$";
    if (text.substr(0, kPrefix.size()) != kPrefix) {
        return std::nullopt;
    }
    text.remove_prefix(kPrefix.size());
    size_t colon1 = text.find(':');
    size_t dollar = text.find('$');
    if (colon1 == std::string_view::npos || dollar == std::string_view::npos || dollar < colon1) {
        return std::nullopt;
    }
    size_t colon2 = text.find(':', dollar);
    if (colon2 == std::string_view::npos) {
        return std::nullopt;
    }
    Credentials c;
    std::string stored, server;
    if (!parse_u32(text.substr(0, colon1), c.iterations) || c.iterations > kMaxIterations ||
        !base64_decode_lenient(text.substr(colon1 + 1, dollar - colon1 - 1), c.salt) || c.salt.size() < 8 ||
        !base64_decode_lenient(text.substr(dollar + 1, colon2 - dollar - 1), stored) ||
        !base64_decode_lenient(text.substr(colon2 + 1), server) || !key_from(stored, c.stored_key) ||
        !key_from(server, c.server_key)) {
        return std::nullopt;
    }
    return c;
}

std::string generate_server_nonce() {
    uint8_t r[24];
    if (RAND_bytes(r, sizeof r) != 1) {
        throw std::runtime_error("RAND_bytes() failed");
    }
    return base64url(r, sizeof r);
}

Handshake start(const ClientFirst& first, const Credentials& creds, bool known, std::string_view server_nonce,
                int64_t expires_ms) {
    Handshake h;
    h.user = first.user;
    h.gs2_header = first.gs2_header;
    h.client_first_bare = first.bare;
    h.nonce = first.nonce + std::string(server_nonce);
    h.server_first = "r=" + h.nonce + ",s=" + base64(creds.salt) + ",i=" + std::to_string(creds.iterations);
    h.stored_key = creds.stored_key;
    h.server_key = creds.server_key;
    h.known = known;
    h.expires_ms = expires_ms;
    return h;
}

std::string serialize(const Handshake& h) {
    JsonPtr j(json_object());
    auto set = [&](const char* k, json_t* v) {
        if (v == nullptr || json_object_set_new(j.get(), k, v) != 0) {
            throw std::runtime_error("jansson allocation failed");
        }
    };
    auto str = [](std::string_view s) { return json_stringn(s.data(), s.size()); };
    // The user name is the only field that could fail jansson's UTF-8 check;
    // valid_auth_user has already made sure it cannot.
    set("user", str(h.user));
    set("gs2", str(h.gs2_header));
    set("cfb", str(h.client_first_bare));
    set("sf", str(h.server_first));
    set("nonce", str(h.nonce));
    set("stored_key", str(base64(view(h.stored_key))));
    set("server_key", str(base64(view(h.server_key))));
    set("known", json_boolean(h.known));
    set("expires_ms", json_integer(h.expires_ms));
    std::unique_ptr<char, decltype(&free)> text(json_dumps(j.get(), JSON_COMPACT), &free);
    if (!text) {
        throw std::runtime_error("json_dumps() failed");
    }
    return text.get();
}

std::optional<Handshake> parse_handshake(std::string_view text) {
    json_error_t err;
    JsonPtr j(json_loadb(text.data(), text.size(), JSON_REJECT_DUPLICATES, &err));
    if (!j || !json_is_object(j.get())) {
        return std::nullopt;
    }
    auto get = [&](const char* k, std::string& out) {
        json_t* v = json_object_get(j.get(), k);
        if (!json_is_string(v)) {
            return false;
        }
        out.assign(json_string_value(v), json_string_length(v));
        return true;
    };
    Handshake h;
    std::string stored, server, raw;
    json_t* known = json_object_get(j.get(), "known");
    json_t* expires = json_object_get(j.get(), "expires_ms");
    if (!get("user", h.user) || !get("gs2", h.gs2_header) || !get("cfb", h.client_first_bare) ||
        !get("sf", h.server_first) || !get("nonce", h.nonce) || !get("stored_key", stored) ||
        !get("server_key", server) || !json_is_boolean(known) || !json_is_integer(expires) ||
        !base64_decode_lenient(stored, raw) || !key_from(raw, h.stored_key) ||
        !base64_decode_lenient(server, raw) || !key_from(raw, h.server_key)) {
        return std::nullopt;
    }
    h.known = json_is_true(known);
    h.expires_ms = json_integer_value(expires);
    return h;
}

Error parse_client_final(std::string_view msg, ClientFinal& out) {
    out = ClientFinal{};
    if (msg.size() > kMessageMaxBytes) {
        return Error::invalid_encoding;
    }
    size_t last = msg.rfind(',');
    if (last == std::string_view::npos) {
        return Error::invalid_encoding;
    }
    std::string_view proof = msg.substr(last + 1);
    std::string_view without = msg.substr(0, last);
    std::vector<std::string_view> attrs = split_commas(without);
    if (proof.substr(0, 2) != "p=" || attrs.size() < 2 || attrs[0].substr(0, 2) != "c=" ||
        attrs[1].substr(0, 2) != "r=") {
        return Error::invalid_encoding;
    }
    for (size_t i = 2; i < attrs.size(); i++) {
        if (!attr_val(attrs[i])) {
            return Error::invalid_encoding;
        }
    }
    std::string_view nonce = attrs[1].substr(2);
    if (!printable_nonce(nonce) || !base64_decode_lenient(attrs[0].substr(2), out.channel_binding) ||
        !base64_decode_lenient(proof.substr(2), out.proof)) {
        return Error::invalid_encoding;
    }
    out.nonce.assign(nonce);
    out.without_proof.assign(without);
    return Error::none;
}

Error finish(const Handshake& h, std::string_view client_final, int64_t now_ms, std::string& server_final) {
    server_final.clear();
    if (now_ms >= h.expires_ms) {
        return Error::expired;
    }
    ClientFinal f;
    Error e = parse_client_final(client_final, f);
    if (e != Error::none) {
        return e;
    }
    if (f.channel_binding != h.gs2_header) {
        return Error::channel_bindings_dont_match;
    }
    if (f.nonce != h.nonce) {
        return Error::nonce_mismatch;
    }
    if (f.proof.size() != kKeyBytes) {
        return Error::invalid_proof;
    }
    std::string auth_message = h.client_first_bare + "," + h.server_first + "," + f.without_proof;
    Key signature = hmac(h.stored_key, auth_message);
    Key client_key{};
    for (size_t i = 0; i < client_key.size(); i++) {
        client_key[i] = static_cast<uint8_t>(static_cast<uint8_t>(f.proof[i]) ^ signature[i]);
    }
    Key computed = sha256(client_key);
    // a handshake that may not succeed (fake credentials, or a locked or
    // revoked user on real ones) does all the same work and fails here
    if ((CRYPTO_memcmp(computed.data(), h.stored_key.data(), computed.size()) != 0) | !h.known) {
        return Error::invalid_proof;
    }
    server_final = "v=" + base64(view(hmac(h.server_key, auth_message)));
    return Error::none;
}

}  // namespace scram

namespace haystack {

namespace {

bool decode_param(const AuthHeader& h, std::string_view name, std::string& out) {
    const std::string* v = h.param(name);
    return v != nullptr && !v->empty() && base64_decode_lenient(*v, out);
}

}  // namespace

std::optional<Authorization> parse_authorization(std::string_view header) {
    std::optional<AuthHeader> h = parse_auth_header(header);
    if (!h) {
        return std::nullopt;
    }
    Authorization a;
    if (h->is("hello")) {
        a.kind = Kind::hello;
        if (!decode_param(*h, "username", a.user) || !valid_auth_user(a.user)) {
            return std::nullopt;
        }
    } else if (h->is("scram")) {
        a.kind = Kind::scram;
        const std::string* token = h->param("handshakeToken");
        if (token == nullptr || token->empty() || !decode_param(*h, "data", a.data)) {
            return std::nullopt;
        }
        a.handshake_token = *token;
    } else if (h->is("bearer")) {
        a.kind = Kind::bearer;
        const std::string* token = h->param("authToken");
        if (token != nullptr && !token->empty()) {
            a.auth_token = *token;
        } else if (!h->token68.empty()) {
            a.auth_token = h->token68;
        } else {
            return std::nullopt;
        }
    } else if (h->is("plaintext")) {
        a.kind = Kind::plaintext;
        if (!decode_param(*h, "username", a.user) || !valid_auth_user(a.user) ||
            !decode_param(*h, "password", a.password)) {
            return std::nullopt;
        }
    }
    return a;
}

std::string hello_challenge(std::string_view handshake_token) {
    return "SCRAM hash=SHA-256, handshakeToken=" + std::string(handshake_token);
}

std::string server_first_challenge(std::string_view handshake_token, std::string_view server_first) {
    return "SCRAM handshakeToken=" + std::string(handshake_token) + ", hash=SHA-256, data=" +
           base64url(reinterpret_cast<const uint8_t*>(server_first.data()), server_first.size());
}

std::string authentication_info(std::string_view auth_token, std::string_view server_final) {
    return "authToken=" + std::string(auth_token) + ", data=" +
           base64url(reinterpret_cast<const uint8_t*>(server_final.data()), server_final.size());
}

}  // namespace haystack

}  // namespace pairguard
