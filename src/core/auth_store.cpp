#include "auth_store.hpp"

#include <jansson.h>
#include <openssl/rand.h>

#include <algorithm>
#include <charconv>
#include <memory>
#include <stdexcept>

#include "json.hpp"
#include "duration.hpp"
#include "encoding.hpp"
#include "pairguard_lua.h"
#include "session.hpp"

namespace pairguard {

namespace {

json_t* jstr(std::string_view s) {
    return json_stringn(s.data(), s.size());
}

int64_t get_number(json_t* obj, const char* key) {
    json_t* v = json_object_get(obj, key);
    if (json_is_integer(v)) {
        return json_integer_value(v);
    }
    if (json_is_real(v)) {
        return static_cast<int64_t>(json_real_value(v));
    }
    return 0;
}

// An integer element, or the decimal text of one (Lua numbers in tables).
bool as_int(const Reply& r, int64_t& out) {
    if (r.type == Reply::Type::integer) {
        out = r.integer;
        return true;
    }
    if (r.type == Reply::Type::string) {
        auto res = std::from_chars(r.str.data(), r.str.data() + r.str.size(), out);
        return res.ec == std::errc() && res.ptr == r.str.data() + r.str.size();
    }
    return false;
}

StoreCall call(AuthOp op, std::vector<std::string> keys, std::vector<std::string> args) {
    return StoreCall{&auth_script(op), std::move(keys), std::move(args)};
}

std::string revoked_user_event(const AuthUserKeys& k) {
    return "revoked_user|" + k.tag;
}

bool is_b64url(std::string_view s, size_t len) {
    std::string raw;
    return s.size() == len && base64url_decode(s, raw);
}

}  // namespace

// ---- policy ----

std::string parse_auth_policy_args(const std::vector<std::string_view>& args, AuthPolicy& out) {
    std::vector<std::string_view> seen;
    for (std::string_view arg : args) {
        size_t eq = arg.find('=');
        if (eq == std::string_view::npos) {
            return invalid_parameter(arg);
        }
        std::string_view name = arg.substr(0, eq);
        std::string_view value = arg.substr(eq + 1);
        if (std::find(seen.begin(), seen.end(), name) != seen.end()) {
            return "duplicate parameter \"" + std::string(arg) + "\"";
        }
        seen.push_back(name);
        if (name == "session_ttl" || name == "challenge_ttl" || name == "lockout") {
            auto ms = parse_duration_ms(value);
            if (!ms || *ms <= 0) {
                return invalid_parameter(arg);
            }
            (name == "session_ttl" ? out.session_ttl_ms : name == "lockout" ? out.lockout_ms : out.challenge_ttl_ms) =
                *ms;
        } else if (name == "max_failures" || name == "max_pending") {
            int64_t n = 0;
            auto res = std::from_chars(value.data(), value.data() + value.size(), n);
            if (value.empty() || res.ec != std::errc() || res.ptr != value.data() + value.size() || n < 1
                || n > 1000) {
                return invalid_parameter(arg);
            }
            (name == "max_failures" ? out.max_failures : out.max_pending) = n;
        } else if (name == "argon2_m" || name == "argon2_t" || name == "argon2_p") {
            uint32_t n = 0;
            auto res = std::from_chars(value.data(), value.data() + value.size(), n);
            if (value.empty() || res.ec != std::errc() || res.ptr != value.data() + value.size() || n < 1) {
                return invalid_parameter(arg);
            }
            (name == "argon2_m" ? out.argon2.m_kib : name == "argon2_t" ? out.argon2.t : out.argon2.p) = n;
            Argon2Limits lim;
            if (out.argon2.m_kib > lim.max_m_kib || out.argon2.t > lim.max_t || out.argon2.p > lim.max_p
                || out.argon2.m_kib < 8 * out.argon2.p) {
                return invalid_parameter(arg);
            }
        } else if (name == "plaintext") {
            if (value == "tls_only") {
                out.plaintext = Plaintext::tls_only;
            } else if (value == "on") {
                out.plaintext = Plaintext::on;
            } else if (value == "off") {
                out.plaintext = Plaintext::off;
            } else {
                return invalid_parameter(arg);
            }
        } else {
            return invalid_parameter(arg);
        }
    }
    return {};
}

// ---- layout ----

AuthUserKeys auth_user_keys(std::string_view prefix, std::string_view user_tag) {
    AuthUserKeys k;
    k.tag = std::string(user_tag);
    k.base = std::string(prefix) + "{a:" + k.tag + "}";
    k.user = k.base + ":user";
    k.sessions = k.base + ":sessions";
    k.challenges = k.base + ":ch";
    k.fail = k.base + ":fail";
    k.lock = k.base + ":lock";
    return k;
}

AuthUserKeys auth_user_keys(const KeyDeriver& keys, std::string_view prefix, std::string_view user) {
    return auth_user_keys(prefix, auth_user_tag(keys, user));
}

AuthFailKeys auth_address_keys(const KeyDeriver& keys, std::string_view prefix, std::string_view address) {
    KeyTag t = keys.tag("a", "addr", address);
    std::string base = std::string(prefix) + "{aa:" + base64url(t.data(), 12) + "}";
    return {base + ":fail", base + ":lock", base + ":starts"};
}

std::string auth_users_key(std::string_view prefix) {
    return std::string(prefix) + "auth:users";
}

const StoreScript& auth_script(AuthOp op) {
    static const StoreScript scripts[] = {
        make_store_script("auth_user_add", pairguard_lua_auth_user_add),
        make_store_script("auth_user_del", pairguard_lua_auth_user_del),
        make_store_script("auth_user_update", pairguard_lua_auth_user_update),
        make_store_script("auth_user_get", pairguard_lua_auth_user_get),
        make_store_script("auth_user_list", pairguard_lua_auth_user_list),
        make_store_script("auth_user_register", pairguard_lua_auth_user_register),
        make_store_script("auth_key_set", pairguard_lua_auth_key_set),
        make_store_script("auth_key_revoke", pairguard_lua_auth_key_revoke),
        make_store_script("auth_session_create", pairguard_lua_auth_session_create),
        make_store_script("auth_session_get", pairguard_lua_auth_session_get),
        make_store_script("auth_session_refresh", pairguard_lua_auth_session_refresh),
        make_store_script("auth_session_revoke", pairguard_lua_auth_session_revoke),
        make_store_script("auth_sessions_list", pairguard_lua_auth_sessions_list),
        make_store_script("auth_logout", pairguard_lua_auth_logout),
        make_store_script("auth_challenge_create", pairguard_lua_auth_challenge_create),
        make_store_script("auth_challenge_list", pairguard_lua_auth_challenge_list),
        make_store_script("auth_handshake_put", pairguard_lua_auth_handshake_put),
        make_store_script("auth_handshake_take", pairguard_lua_auth_handshake_take),
        make_store_script("auth_failure", pairguard_lua_auth_failure),
        make_store_script("auth_lock_status", pairguard_lua_auth_lock_status),
        make_store_script("auth_address_start", pairguard_lua_auth_address_start),
        make_store_script("auth_address_reset", pairguard_lua_auth_address_reset),
    };
    static_assert(sizeof(scripts) / sizeof(scripts[0]) == static_cast<size_t>(AuthOp::count_),
                  "one script per AuthOp");
    return scripts[static_cast<size_t>(op)];
}

const std::vector<const StoreScript*>& auth_scripts() {
    static const std::vector<const StoreScript*> all = [] {
        std::vector<const StoreScript*> v;
        for (size_t i = 0; i < static_cast<size_t>(AuthOp::count_); i++) {
            v.push_back(&auth_script(static_cast<AuthOp>(i)));
        }
        return v;
    }();
    return all;
}

// ---- users ----

StoreCall make_user_add(const KeyDeriver& keys, std::string_view prefix, std::string_view user, const NewUser& u) {
    AuthUserKeys k = auth_user_keys(keys, prefix, user);
    return call(AuthOp::user_add, {k.user},
                {std::string(user), u.argon2, u.scram, u.key_pem, u.key_pem.empty() ? std::string() : u.key_fp,
                 u.protect ? "1" : "0"});
}

StoreCall make_user_register(std::string_view prefix, std::string_view user, bool present) {
    return call(AuthOp::user_register, {auth_users_key(prefix)}, {std::string(user), present ? "1" : "0"});
}

StoreCall make_user_list(std::string_view prefix) {
    return call(AuthOp::user_list, {auth_users_key(prefix)}, {});
}

std::optional<std::vector<std::string>> decode_user_list(const Reply& reply) {
    if (reply.type != Reply::Type::array) {
        return std::nullopt;
    }
    std::vector<std::string> out;
    for (const Reply& e : reply.elements) {
        if (e.type != Reply::Type::string) {
            return std::nullopt;
        }
        out.push_back(e.str);
    }
    std::sort(out.begin(), out.end());
    return out;
}

UserOpStatus decode_user_op(const Reply& reply) {
    if (reply.type != Reply::Type::string && reply.type != Reply::Type::status) {
        return UserOpStatus::invalid;
    }
    const std::string& s = reply.str;
    if (s == "ok") {
        return UserOpStatus::ok;
    }
    if (s == "exists") {
        return UserOpStatus::exists;
    }
    if (s == "not_found") {
        return UserOpStatus::not_found;
    }
    if (s == "protected") {
        return UserOpStatus::protected_user;
    }
    if (s == "no_key") {
        return UserOpStatus::no_key;
    }
    return UserOpStatus::invalid;
}

StoreCall make_user_del(const KeyDeriver& keys, std::string_view prefix, std::string_view user) {
    AuthUserKeys k = auth_user_keys(keys, prefix, user);
    return call(AuthOp::user_del, {k.user, k.sessions, k.challenges, k.fail, k.lock},
                {k.base, events_channel(prefix), revoked_user_event(k)});
}

StoreCall make_user_update(const KeyDeriver& keys, std::string_view prefix, std::string_view user,
                           const UserUpdate& u) {
    AuthUserKeys k = auth_user_keys(keys, prefix, user);
    std::vector<std::string> args{k.base, events_channel(prefix), revoked_user_event(k),
                                  u.revoke_sessions ? "1" : "0"};
    if (u.argon2) {
        args.push_back("argon2");
        args.push_back(*u.argon2);
    }
    if (u.scram) {
        args.push_back("scram");
        args.push_back(*u.scram);
    }
    if (u.protect) {
        args.push_back("protected");
        args.push_back(*u.protect ? "1" : "");
    }
    return call(AuthOp::user_update, {k.user, k.sessions}, std::move(args));
}

StoreCall make_user_get(const KeyDeriver& keys, std::string_view prefix, std::string_view user) {
    AuthUserKeys k = auth_user_keys(keys, prefix, user);
    return call(AuthOp::user_get, {k.user, k.sessions, k.lock, k.fail}, {});
}

UserInfo decode_user_get(const Reply& reply) {
    UserInfo u;
    if (reply.type != Reply::Type::array || reply.elements.size() < 4 || reply.elements.size() % 2 != 0) {
        return u;
    }
    const auto& e = reply.elements;
    int64_t now = 0;
    if (!as_int(e[0], now) || !as_int(e[1], u.lock_ms) || !as_int(e[2], u.failures) || !as_int(e[3], u.sessions)) {
        return u;
    }
    for (size_t i = 4; i + 1 < e.size(); i += 2) {
        if (e[i].type != Reply::Type::string || e[i + 1].type != Reply::Type::string) {
            return u;
        }
        const std::string& f = e[i].str;
        const std::string& v = e[i + 1].str;
        if (f == "name") {
            u.exists = true;
            u.name = v;
        } else if (f == "created_ms") {
            as_int(e[i + 1], u.created_ms);
        } else if (f == "argon2") {
            u.argon2 = v;
        } else if (f == "scram") {
            u.scram = v;
        } else if (f == "key") {
            u.key_pem = v;
        } else if (f == "key_fp") {
            u.key_fp = v;
        } else if (f == "protected") {
            u.protect = v == "1";
        } else if (f == "revoked") {
            u.revoked = true;
            if (JsonPtr j = json_load_object(v)) {
                u.revoked_reason = json_get_string(j.get(), "reason");
                u.revoked_ms = get_number(j.get(), "revoked_ms");
            }
        }
    }
    u.valid = true;
    return u;
}

// ---- keys ----

StoreCall make_key_set(const KeyDeriver& keys, std::string_view prefix, std::string_view user,
                       std::string_view key_pem, std::string_view key_fp) {
    AuthUserKeys k = auth_user_keys(keys, prefix, user);
    return call(AuthOp::key_set, {k.user, k.sessions, k.challenges},
                {k.base, events_channel(prefix), revoked_user_event(k), std::string(key_pem), std::string(key_fp)});
}

StoreCall make_key_revoke(const KeyDeriver& keys, std::string_view prefix, std::string_view user,
                          std::string_view reason) {
    AuthUserKeys k = auth_user_keys(keys, prefix, user);
    return call(AuthOp::key_revoke, {k.user, k.sessions, k.challenges},
                {k.base, events_channel(prefix), revoked_user_event(k), std::string(reason)});
}

// ---- sessions ----

const char* auth_method_name(AuthMethod m) {
    switch (m) {
    case AuthMethod::password:
        return "password";
    case AuthMethod::challenge:
        return "challenge";
    case AuthMethod::haystack:
        return "haystack";
    case AuthMethod::cli:
        return "cli";
    case AuthMethod::refresh:
        return "refresh";
    }
    return "unknown";
}

StoreCall make_session_create(const KeyDeriver& keys, std::string_view prefix, std::string_view user,
                              const SessionCreate& s) {
    AuthUserKeys k = auth_user_keys(keys, prefix, user);
    std::string thash = token_hash(keys, "session", s.token);
    return call(AuthOp::session_create, {k.user, k.sessions, k.session(thash), k.fail, k.lock, k.challenges},
                {thash, std::to_string(s.ttl_ms), auth_method_name(s.method), std::string(user), s.challenge_seed,
                 s.key_fp, s.rehash_from, s.rehash_to});
}

SessionCreated decode_session_create(const Reply& reply) {
    SessionCreated c;
    if (reply.type == Reply::Type::nil) {
        c.valid = true;
        return c;
    }
    if (reply.type != Reply::Type::array || reply.elements.size() != 2) {
        return c;
    }
    int64_t one = 0;
    if (!as_int(reply.elements[0], one) || one != 1 || !as_int(reply.elements[1], c.expires_ms)) {
        return c;
    }
    c.valid = c.ok = true;
    return c;
}

StoreCall make_session_get(const KeyDeriver& keys, std::string_view prefix, std::string_view token) {
    auto tag = token_user_tag(token);
    if (!tag) {
        return {};
    }
    AuthUserKeys k = auth_user_keys(prefix, *tag);
    return call(AuthOp::session_get, {k.session(token_hash(keys, "session", token))}, {});
}

SessionInfo decode_session_get(const Reply& reply) {
    SessionInfo s;
    if (reply.type != Reply::Type::array || reply.elements.empty() || reply.elements.size() > 2
        || !as_int(reply.elements[0], s.now_ms)) {
        return s;
    }
    if (reply.elements.size() == 1) {
        s.valid = true;
        return s;
    }
    if (reply.elements[1].type != Reply::Type::string) {
        return s;
    }
    JsonPtr j = json_load_object(reply.elements[1].str);
    if (!j) {
        return s;
    }
    s.user = json_get_string(j.get(), "user");
    s.method = json_get_string(j.get(), "method");
    s.created_ms = get_number(j.get(), "created_ms");
    s.expires_ms = get_number(j.get(), "expires_ms");
    s.valid = true;
    s.found = !s.user.empty() && s.expires_ms > s.now_ms;
    return s;
}

StoreCall make_session_refresh(const KeyDeriver& keys, std::string_view prefix, std::string_view old_token,
                               std::string_view new_token, int64_t ttl_ms) {
    auto tag = token_user_tag(old_token);
    auto new_tag = token_user_tag(new_token);
    if (!tag || !new_tag || *tag != *new_tag) {
        return {};
    }
    AuthUserKeys k = auth_user_keys(prefix, *tag);
    std::string old_hash = token_hash(keys, "session", old_token);
    std::string new_hash = token_hash(keys, "session", new_token);
    return call(AuthOp::session_refresh, {k.session(old_hash), k.sessions, k.session(new_hash), k.user},
                {old_hash, new_hash, std::to_string(ttl_ms), events_channel(prefix),
                 "revoked_session|" + k.tag + "|" + old_hash});
}

SessionCreated decode_session_refresh(const Reply& reply) {
    return decode_session_create(reply);
}

StoreCall make_session_revoke(const KeyDeriver& keys, std::string_view prefix, std::string_view token) {
    auto tag = token_user_tag(token);
    if (!tag) {
        return {};
    }
    AuthUserKeys k = auth_user_keys(prefix, *tag);
    std::string thash = token_hash(keys, "session", token);
    return call(AuthOp::session_revoke, {k.session(thash), k.sessions},
                {thash, events_channel(prefix), "revoked_session|" + k.tag + "|" + thash});
}

std::optional<bool> decode_session_revoke(const Reply& reply) {
    if (reply.type != Reply::Type::integer || (reply.integer != 0 && reply.integer != 1)) {
        return std::nullopt;
    }
    return reply.integer == 1;
}

StoreCall make_sessions_list(const KeyDeriver& keys, std::string_view prefix, std::string_view user) {
    AuthUserKeys k = auth_user_keys(keys, prefix, user);
    return call(AuthOp::sessions_list, {k.sessions}, {k.base});
}

std::optional<std::vector<SessionEntry>> decode_sessions_list(const Reply& reply) {
    if (reply.type != Reply::Type::array || reply.elements.size() % 2 != 0) {
        return std::nullopt;
    }
    std::vector<SessionEntry> out;
    for (size_t i = 0; i < reply.elements.size(); i += 2) {
        const Reply& h = reply.elements[i];
        const Reply& v = reply.elements[i + 1];
        std::string raw;
        if (h.type != Reply::Type::string || v.type != Reply::Type::string || !base64url_decode(h.str, raw)
            || raw.size() < 4) {
            return std::nullopt;
        }
        JsonPtr j = json_load_object(v.str);
        if (!j) {
            return std::nullopt;
        }
        static const char hex[] = "0123456789abcdef";
        SessionEntry e;
        for (size_t b = 0; b < 4; b++) {
            auto c = static_cast<unsigned char>(raw[b]);
            e.id.push_back(hex[c >> 4]);
            e.id.push_back(hex[c & 0xf]);
        }
        e.method = json_get_string(j.get(), "method");
        e.created_ms = get_number(j.get(), "created_ms");
        e.expires_ms = get_number(j.get(), "expires_ms");
        out.push_back(std::move(e));
    }
    std::sort(out.begin(), out.end(),
              [](const SessionEntry& a, const SessionEntry& b) { return a.created_ms < b.created_ms; });
    return out;
}

StoreCall make_logout(const KeyDeriver& keys, std::string_view prefix, std::string_view user) {
    AuthUserKeys k = auth_user_keys(keys, prefix, user);
    return call(AuthOp::logout, {k.sessions}, {k.base, events_channel(prefix), revoked_user_event(k)});
}

std::optional<int64_t> decode_logout(const Reply& reply) {
    if (reply.type != Reply::Type::integer || reply.integer < 0) {
        return std::nullopt;
    }
    return reply.integer;
}

// ---- challenges ----

std::string generate_challenge_seed() {
    uint8_t r[16];
    if (RAND_bytes(r, sizeof r) != 1) {
        throw std::runtime_error("RAND_bytes() failed");
    }
    return base64url(r, sizeof r);
}

std::string challenge_nonce(const KeyDeriver& keys, std::string_view user_tag, std::string_view seed) {
    std::string data = "ch";
    data.push_back('\0');
    data.append(user_tag);
    data.push_back('\0');
    data.append(seed);
    auto mac = keys.mac(data);
    return base64(mac.data(), mac.size());
}

StoreCall make_challenge_create(const KeyDeriver& keys, std::string_view prefix, std::string_view user,
                                std::string_view seed, int64_t ttl_ms) {
    AuthUserKeys k = auth_user_keys(keys, prefix, user);
    return call(AuthOp::challenge_create, {k.challenges}, {std::string(seed), std::to_string(ttl_ms)});
}

std::optional<int64_t> decode_challenge_create(const Reply& reply) {
    int64_t v = 0;
    if (!as_int(reply, v) || v <= 0) {
        return std::nullopt;
    }
    return v;
}

StoreCall make_challenge_list(const KeyDeriver& keys, std::string_view prefix, std::string_view user) {
    AuthUserKeys k = auth_user_keys(keys, prefix, user);
    return call(AuthOp::challenge_list, {k.user, k.challenges, k.lock}, {});
}

ChallengeState decode_challenge_list(const Reply& reply) {
    ChallengeState s;
    if (reply.type != Reply::Type::array || reply.elements.size() < 6) {
        return s;
    }
    const auto& e = reply.elements;
    int64_t now = 0, exists = 0, revoked = 0;
    if (!as_int(e[0], now) || !as_int(e[1], exists) || !as_int(e[2], revoked) || e[3].type != Reply::Type::string
        || e[4].type != Reply::Type::string || !as_int(e[5], s.lock_ms)) {
        return s;
    }
    s.exists = exists == 1;
    s.revoked = revoked == 1;
    s.key_pem = e[3].str;
    s.key_fp = e[4].str;
    for (size_t i = 6; i < e.size(); i++) {
        if (e[i].type != Reply::Type::string) {
            return s;
        }
        s.seeds.push_back(e[i].str);
    }
    s.valid = true;
    return s;
}

// ---- handshakes ----

StoreCall make_handshake_put(const KeyDeriver& keys, std::string_view prefix, std::string_view token,
                             std::string_view value, int64_t ttl_ms) {
    auto tag = token_user_tag(token);
    if (!tag) {
        return {};
    }
    AuthUserKeys k = auth_user_keys(prefix, *tag);
    return call(AuthOp::handshake_put, {k.handshake(token_hash(keys, "handshake", token))},
                {std::string(value), std::to_string(ttl_ms)});
}

StoreCall make_handshake_take(const KeyDeriver& keys, std::string_view prefix, std::string_view token) {
    auto tag = token_user_tag(token);
    if (!tag) {
        return {};
    }
    AuthUserKeys k = auth_user_keys(prefix, *tag);
    return call(AuthOp::handshake_take, {k.handshake(token_hash(keys, "handshake", token))}, {});
}

std::optional<bool> decode_handshake_put(const Reply& reply) {
    int64_t v = 0;
    if (!as_int(reply, v) || (v != 0 && v != 1)) {
        return std::nullopt;
    }
    return v == 1;
}

std::optional<std::string> decode_handshake_take(const Reply& reply) {
    if (reply.type != Reply::Type::string || reply.str.empty()) {
        return std::nullopt;
    }
    return reply.str;
}

// ---- failures ----

StoreCall make_user_failure(const KeyDeriver& keys, std::string_view prefix, std::string_view user,
                            const AuthPolicy& policy) {
    AuthUserKeys k = auth_user_keys(keys, prefix, user);
    return call(AuthOp::failure, {k.fail, k.lock},
                {std::to_string(policy.max_failures), std::to_string(policy.lockout_ms)});
}

StoreCall make_address_failure(const KeyDeriver& keys, std::string_view prefix, std::string_view address,
                               const AuthPolicy& policy) {
    AuthFailKeys k = auth_address_keys(keys, prefix, address);
    return call(AuthOp::failure, {k.fail, k.lock},
                {std::to_string(policy.max_failures), std::to_string(policy.lockout_ms)});
}

std::optional<int64_t> decode_failure(const Reply& reply) {
    int64_t v = 0;
    if (!as_int(reply, v) || v < -1) {
        return std::nullopt;
    }
    return v;
}

StoreCall make_address_lock_status(const KeyDeriver& keys, std::string_view prefix, std::string_view address) {
    return call(AuthOp::lock_status, {auth_address_keys(keys, prefix, address).lock}, {});
}

std::optional<int64_t> decode_lock_ms(const Reply& reply) {
    int64_t v = 0;
    if (!as_int(reply, v) || v < 0) {
        return std::nullopt;
    }
    return v;
}

StoreCall make_address_start(const KeyDeriver& keys, std::string_view prefix, std::string_view address,
                             const AuthPolicy& policy) {
    AuthFailKeys k = auth_address_keys(keys, prefix, address);
    return call(AuthOp::address_start, {k.lock, k.starts},
                {std::to_string(policy.max_pending), std::to_string(policy.lockout_ms)});
}

AddressStart decode_address_start(const Reply& reply) {
    AddressStart a;
    int64_t allowed = 0;
    if (reply.type != Reply::Type::array || reply.elements.size() != 2 || !as_int(reply.elements[0], a.lock_ms)
        || !as_int(reply.elements[1], allowed) || a.lock_ms < 0) {
        return a;
    }
    a.allowed = allowed == 1;
    a.valid = true;
    return a;
}

StoreCall make_address_reset(const KeyDeriver& keys, std::string_view prefix, std::string_view address) {
    return call(AuthOp::address_reset, {auth_address_keys(keys, prefix, address).starts}, {});
}

// ---- events ----

std::optional<AuthEvent> parse_auth_event(std::string_view message) {
    size_t a = message.find('|');
    if (a == std::string_view::npos) {
        return std::nullopt;
    }
    std::string_view kind = message.substr(0, a);
    std::string_view rest = message.substr(a + 1);
    if (kind == "revoked_user") {
        if (!is_b64url(rest, kUserTagChars)) {
            return std::nullopt;
        }
        return AuthEvent{AuthEventKind::revoked_user, std::string(rest), {}};
    }
    if (kind == "revoked_session") {
        size_t b = rest.find('|');
        if (b == std::string_view::npos || !is_b64url(rest.substr(0, b), kUserTagChars)
            || !is_b64url(rest.substr(b + 1), 22)) {
            return std::nullopt;
        }
        return AuthEvent{AuthEventKind::revoked_session, std::string(rest.substr(0, b)),
                         std::string(rest.substr(b + 1))};
    }
    return std::nullopt;
}

// ---- HTTP bodies ----

std::string parse_auth_body(std::string_view body, AuthInput& out) {
    JsonPtr j = json_load_object(body, JSON_REJECT_DUPLICATES);
    if (!j) {
        return "the body is not a JSON object";
    }
    json_t* u = json_object_get(j.get(), "user");
    if (!json_is_string(u)) {
        return "\"user\" is missing";
    }
    out.user.assign(json_string_value(u), json_string_length(u));
    if (!valid_auth_user(out.user)) {
        return "invalid \"user\"";
    }
    for (auto [name, field] : {std::pair<const char*, std::string*>{"password", &out.password},
                               std::pair<const char*, std::string*>{"signature", &out.signature}}) {
        json_t* v = json_object_get(j.get(), name);
        if (v != nullptr && !json_is_null(v)) {
            if (!json_is_string(v)) {
                return "\"" + std::string(name) + "\" is not a string";
            }
            field->assign(json_string_value(v), json_string_length(v));
        }
    }
    return {};
}

std::string render_token(std::string_view token, int64_t expires_at_s) {
    JsonPtr j(json_object());
    json_set(j.get(), "token", jstr(token));
    json_set(j.get(), "expires_at", json_integer(expires_at_s));
    return json_dump(j);
}

std::string render_session(std::string_view user, int64_t expires_at_s) {
    JsonPtr j(json_object());
    json_set(j.get(), "user", jstr(user));
    json_set(j.get(), "expires_at", json_integer(expires_at_s));
    return json_dump(j);
}

std::string render_challenge(std::string_view nonce, int64_t expires_in_s) {
    JsonPtr j(json_object());
    json_set(j.get(), "nonce", jstr(nonce));
    json_set(j.get(), "expires_in", json_integer(expires_in_s));
    return json_dump(j);
}

}  // namespace pairguard
