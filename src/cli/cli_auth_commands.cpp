// pairguardctl's auth commands (SPEC section 4): user, key, sessions,
// logout, challenge, verify. Passwords, key files and the air-gapped files
// are handled by cli_auth.cpp; the store calls are built by the core
// (auth_store.hpp).

#include <fcntl.h>
#include <openssl/crypto.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "auth_store.hpp"
#include "cli_auth.hpp"
#include "cli_command.hpp"
#include "encoding.hpp"
#include "password.hpp"
#include "scram.hpp"
#include "session.hpp"
#include "signature.hpp"

namespace pairguard::cli {

void allow_flags(const Context& c, const std::string& cmd, unsigned allowed) {
    const Options& o = c.opt;
    std::pair<bool, std::pair<unsigned, const char*>> given[] = {
        {o.password_stdin, {kFlagPasswordStdin, "--password-stdin"}},
        {o.pubkey.has_value(), {kFlagPubkey, "--pubkey"}},
        {o.protect, {kFlagProtected, "--protected"}},
        {o.reason.has_value(), {kFlagReason, "--reason"}},
        {o.out.has_value(), {kFlagOut, "--out"}},
        {o.in.has_value(), {kFlagIn, "--in"}},
        {o.host.has_value(), {kFlagHost, "--host"}},
    };
    for (const auto& g : given) {
        if (g.first && (allowed & g.second.first) == 0) {
            throw UsageError(std::string(g.second.second) + " does not go with \"" + cmd + "\"");
        }
    }
}

namespace {

// args[first] as a user name, checked as every login method checks it.
std::string need_user(const Context& c, size_t index) {
    const std::string& user = c.opt.args[index];
    if (!valid_auth_user(user)) {
        throw UsageError("invalid user name: 1-256 bytes of UTF-8 text without control characters");
    }
    return user;
}

void expect_sub_args(const Context& c, size_t n_after_sub) {
    if (c.opt.args.size() != 2 + n_after_sub) {
        throw UsageError("wrong number of arguments for \"" + c.opt.args[0] + " " + c.opt.args[1] + "\"");
    }
}

// Prints the refusal (stderr, or the JSON error on stdout) and answers kRefused.
int refuse(const Context& c, const std::string& code, const std::string& message) {
    if (c.opt.json) {
        std::cout << render_error(code) << "\n";
    } else {
        std::cerr << "pairguardctl: " << message << "\n";
    }
    return kRefused;
}

// A password read from stdin, after the store has been reached (so that a
// down store does not cost the operator a typed password), hashed both ways.
struct PasswordHashes {
    std::string argon2, scram;
};

// Argon2id with the --auth-policy's parameters (the module's policy): a user
// hashed more cheaply than the policy's dummy hash would answer a wrong
// password faster than an unknown user does.
PasswordHashes read_and_hash_password(const Context& c, bool confirm) {
    SecretString pw = read_password(STDIN_FILENO, confirm);
    PasswordHashes h;
    h.argon2 = hash_password(pw.view(), c.auth.argon2);
    h.scram = scram::format_credentials(scram::new_credentials(pw.view()));
    return h;
}

int report_user_op(const Context& c, UserOpStatus st, const StoreCall& call, const std::string& user) {
    switch (st) {
        case UserOpStatus::ok:
            return kDone;
        case UserOpStatus::exists:
            return refuse(c, "exists", "user " + printable(user) + " already exists");
        case UserOpStatus::not_found:
            return refuse(c, "not_found", "no user " + printable(user));
        case UserOpStatus::protected_user:
            return refuse(c, "protected_user", "user " + printable(user) + " is protected (user unprotect first)");
        case UserOpStatus::no_key:
            return refuse(c, "no_key", "user " + printable(user) + " has no key");
        case UserOpStatus::invalid:
            break;
    }
    bad_reply(call);
}

std::string key_json(const std::optional<PublicKey>& key) {
    if (!key) {
        return "null";
    }
    return "{\"type\":" + json_string(key->type_name()) + ",\"fingerprint\":" + json_string(key->fingerprint()) + "}";
}

int cmd_user_add(Context& c) {
    allow_flags(c, "user add", kFlagPasswordStdin | kFlagPubkey | kFlagProtected);
    expect_sub_args(c, 1);
    std::string user = need_user(c, 2);
    if (!c.opt.password_stdin && !c.opt.pubkey) {
        throw UsageError("user add needs --password-stdin, --pubkey FILE.pem or both (a user must be able to log in)");
    }
    std::optional<PublicKey> key;
    if (c.opt.pubkey) {
        key = read_public_key_file(*c.opt.pubkey);
    }
    // refuse an existing user before asking for a password
    StoreCall get = make_user_get(*c.keys, c.prefix(), user);
    UserInfo info = decode_user_get(run(c, get));
    if (!info.valid) {
        bad_reply(get);
    }
    if (info.exists) {
        return report_user_op(c, UserOpStatus::exists, get, user);
    }
    NewUser u;
    if (c.opt.password_stdin) {
        PasswordHashes h = read_and_hash_password(c, true);
        u.argon2 = std::move(h.argon2);
        u.scram = std::move(h.scram);
    }
    if (key) {
        u.key_pem = key->to_pem();
        u.key_fp = key->fingerprint();
    }
    u.protect = c.opt.protect;
    StoreCall call = make_user_add(*c.keys, c.prefix(), user, u);
    UserOpStatus st = decode_user_op(run(c, call));
    if (st != UserOpStatus::ok) {
        return report_user_op(c, st, call, user);
    }
    run(c, make_user_register(c.prefix(), user, true));
    if (c.opt.json) {
        std::cout << "{\"user\":" << json_string(user) << ",\"added\":true,\"password\":"
                  << (c.opt.password_stdin ? "true" : "false") << ",\"key\":" << key_json(key)
                  << ",\"protected\":" << (c.opt.protect ? "true" : "false") << "}\n";
    } else {
        std::string what;
        if (c.opt.password_stdin) {
            what = "password";
        }
        if (key) {
            what += std::string(what.empty() ? "" : ", ") + key->type_name() + " key " + key->fingerprint();
        }
        std::cout << "added user " << printable(user) << " (" << what << (c.opt.protect ? "; protected" : "")
                  << ")\n";
    }
    return kDone;
}

int cmd_user_del(Context& c) {
    allow_flags(c, "user del", 0);
    expect_sub_args(c, 1);
    std::string user = need_user(c, 2);
    StoreCall call = make_user_del(*c.keys, c.prefix(), user);
    UserOpStatus st = decode_user_op(run(c, call));
    if (st != UserOpStatus::ok) {
        return report_user_op(c, st, call, user);
    }
    run(c, make_user_register(c.prefix(), user, false));
    if (c.opt.json) {
        std::cout << "{\"user\":" << json_string(user) << ",\"deleted\":true}\n";
    } else {
        std::cout << "deleted user " << printable(user) << " (and ended its sessions)\n";
    }
    return kDone;
}

int cmd_user_passwd(Context& c) {
    allow_flags(c, "user passwd", kFlagPasswordStdin);
    expect_sub_args(c, 1);
    std::string user = need_user(c, 2);
    if (!c.opt.password_stdin) {
        throw UsageError("user passwd needs --password-stdin");
    }
    StoreCall get = make_user_get(*c.keys, c.prefix(), user);
    UserInfo info = decode_user_get(run(c, get));
    if (!info.valid) {
        bad_reply(get);
    }
    if (!info.exists) {
        return report_user_op(c, UserOpStatus::not_found, get, user);
    }
    PasswordHashes h = read_and_hash_password(c, true);
    UserUpdate u;
    u.argon2 = std::move(h.argon2);
    u.scram = std::move(h.scram);
    u.revoke_sessions = true;
    StoreCall call = make_user_update(*c.keys, c.prefix(), user, u);
    UserOpStatus st = decode_user_op(run(c, call));
    if (st != UserOpStatus::ok) {
        return report_user_op(c, st, call, user);
    }
    if (c.opt.json) {
        std::cout << "{\"user\":" << json_string(user) << ",\"password\":true,\"sessions_revoked\":true}\n";
    } else {
        std::cout << "password of " << printable(user) << " set (its sessions ended)\n";
    }
    return kDone;
}

int cmd_user_protect(Context& c, bool protect) {
    allow_flags(c, protect ? "user protect" : "user unprotect", 0);
    expect_sub_args(c, 1);
    std::string user = need_user(c, 2);
    UserUpdate u;
    u.protect = protect;
    StoreCall call = make_user_update(*c.keys, c.prefix(), user, u);
    UserOpStatus st = decode_user_op(run(c, call));
    if (st != UserOpStatus::ok) {
        return report_user_op(c, st, call, user);
    }
    if (c.opt.json) {
        std::cout << "{\"user\":" << json_string(user) << ",\"protected\":" << (protect ? "true" : "false") << "}\n";
    } else {
        std::cout << "user " << printable(user) << (protect ? " is protected" : " is no longer protected") << "\n";
    }
    return kDone;
}

int cmd_user_show(Context& c) {
    allow_flags(c, "user show", 0);
    expect_sub_args(c, 1);
    std::string user = need_user(c, 2);
    StoreCall call = make_user_get(*c.keys, c.prefix(), user);
    UserInfo u = decode_user_get(run(c, call));
    if (!u.valid) {
        bad_reply(call);
    }
    if (!u.exists) {
        return report_user_op(c, UserOpStatus::not_found, call, user);
    }
    std::optional<PublicKey> key;
    if (!u.key_pem.empty()) {
        key = PublicKey::from_pem(u.key_pem);
    }
    if (c.opt.json) {
        std::cout << "{\"user\":" << json_string(user) << ",\"created_at\":" << u.created_ms / 1000
                  << ",\"password\":" << (u.argon2.empty() ? "false" : "true")
                  << ",\"haystack\":" << (u.scram.empty() ? "false" : "true") << ",\"key\":" << key_json(key)
                  << ",\"revoked\":"
                  << (u.revoked ? "{\"reason\":" + json_string(u.revoked_reason)
                                      + ",\"revoked_at\":" + std::to_string(u.revoked_ms / 1000) + "}"
                                : std::string("null"))
                  << ",\"protected\":" << (u.protect ? "true" : "false") << ",\"sessions\":" << u.sessions
                  << ",\"failures\":" << u.failures
                  << ",\"locked_for\":" << (u.lock_ms > 0 ? retry_after_seconds(u.lock_ms) : 0) << "}\n";
    } else {
        std::cout << "user:       " << printable(user) << "\n"
                  << "created:    " << utc_time_ms(u.created_ms) << "\n"
                  << "password:   " << (u.argon2.empty() ? "none" : "Argon2id")
                  << (u.scram.empty() ? "" : " (+ SCRAM-SHA-256 for Haystack)") << "\n"
                  << "key:        "
                  << (key ? std::string(key->type_name()) + " " + key->fingerprint()
                          : u.key_pem.empty() ? std::string("none") : std::string("unreadable"))
                  << "\n";
        if (u.revoked) {
            std::cout << "revoked:    " << utc_time_ms(u.revoked_ms)
                      << (u.revoked_reason.empty() ? "" : " (" + printable(u.revoked_reason) + ")") << "\n";
        }
        std::cout << "protected:  " << (u.protect ? "yes" : "no") << "\n"
                  << "sessions:   " << u.sessions << "\n";
        if (u.lock_ms > 0) {
            std::cout << "locked for: " << human_duration(retry_after_seconds(u.lock_ms)) << "\n";
        } else if (u.failures > 0) {
            std::cout << "failures:   " << u.failures << "\n";
        }
    }
    return kDone;
}

int cmd_user_list(Context& c) {
    allow_flags(c, "user list", 0);
    expect_sub_args(c, 0);
    StoreCall call = make_user_list(c.prefix());
    auto users = decode_user_list(run(c, call));
    if (!users) {
        bad_reply(call);
    }
    std::sort(users->begin(), users->end());
    if (c.opt.json) {
        std::string out = "{\"users\":[";
        for (size_t i = 0; i < users->size(); i++) {
            out += (i ? "," : "") + json_string((*users)[i]);
        }
        std::cout << out << "]}\n";
    } else if (users->empty()) {
        std::cout << "no users\n";
    } else {
        for (const std::string& u : *users) {
            std::cout << printable(u) << "\n";
        }
    }
    return kDone;
}

int cmd_key_set(Context& c) {
    allow_flags(c, "key set", 0);
    expect_sub_args(c, 2);
    std::string user = need_user(c, 2);
    PublicKey key = read_public_key_file(c.opt.args[3]);
    StoreCall call = make_key_set(*c.keys, c.prefix(), user, key.to_pem(), key.fingerprint());
    UserOpStatus st = decode_user_op(run(c, call));
    if (st != UserOpStatus::ok) {
        return report_user_op(c, st, call, user);
    }
    if (c.opt.json) {
        std::cout << "{\"user\":" << json_string(user) << ",\"key\":" << key_json(key)
                  << ",\"sessions_revoked\":true}\n";
    } else {
        std::cout << "key of " << printable(user) << " set: " << key.type_name() << " " << key.fingerprint()
                  << " (its sessions and pending challenges ended)\n";
    }
    return kDone;
}

int cmd_key_revoke(Context& c) {
    allow_flags(c, "key revoke", kFlagReason);
    expect_sub_args(c, 1);
    std::string user = need_user(c, 2);
    std::string reason = c.opt.reason.value_or("");
    if (!reason.empty() && (reason.size() > 256 || !utf8_text(reason))) {
        throw UsageError("--reason: at most 256 bytes of UTF-8 text without control characters");
    }
    StoreCall call = make_key_revoke(*c.keys, c.prefix(), user, reason);
    UserOpStatus st = decode_user_op(run(c, call));
    if (st != UserOpStatus::ok) {
        return report_user_op(c, st, call, user);
    }
    if (c.opt.json) {
        std::cout << "{\"user\":" << json_string(user) << ",\"revoked\":true,\"reason\":" << json_string(reason)
                  << "}\n";
    } else {
        std::cout << "key of " << printable(user) << " revoked (its sessions ended; no login until key set)\n";
    }
    return kDone;
}

// The user's record, or a not-found refusal (return value set).
std::optional<UserInfo> existing_user(Context& c, const std::string& user, int& rc) {
    StoreCall get = make_user_get(*c.keys, c.prefix(), user);
    UserInfo info = decode_user_get(run(c, get));
    if (!info.valid) {
        bad_reply(get);
    }
    if (!info.exists) {
        rc = report_user_op(c, UserOpStatus::not_found, get, user);
        return std::nullopt;
    }
    return info;
}

std::string challenge_host(const Context& c) {
    std::string host = c.opt.host.value_or(std::string(kCliChallengeHost));
    if (host.empty() || host.size() > 255 || !utf8_text(host)) {
        throw UsageError("--host: 1-255 bytes of text without control characters");
    }
    return host;
}

// Writes `data` to `path` ("-": standard output), replacing it.
void write_out_file(const std::string& path, const std::string& data) {
    if (path == "-") {
        std::cout << data;
        std::cout.flush();
        return;
    }
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        throw InputError("cannot write " + path + ": " + std::strerror(errno));
    }
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = write(fd, data.data() + off, data.size() - off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            int e = errno;
            close(fd);
            throw InputError("cannot write " + path + ": " + std::strerror(e));
        }
        off += static_cast<size_t>(n);
    }
    if (close(fd) != 0) {
        throw InputError("cannot write " + path + ": " + std::strerror(errno));
    }
}

}  // namespace

int cmd_user(Context& c) {
    if (c.opt.args.size() < 2) {
        throw UsageError("user needs a subcommand: add, del, passwd, show, list, protect, unprotect");
    }
    const std::string& sub = c.opt.args[1];
    if (sub == "add") {
        return cmd_user_add(c);
    } else if (sub == "del") {
        return cmd_user_del(c);
    } else if (sub == "passwd") {
        return cmd_user_passwd(c);
    } else if (sub == "show") {
        return cmd_user_show(c);
    } else if (sub == "list") {
        return cmd_user_list(c);
    } else if (sub == "protect" || sub == "unprotect") {
        return cmd_user_protect(c, sub == "protect");
    }
    throw UsageError("unknown user subcommand \"" + printable(sub) + "\"");
}

int cmd_key(Context& c) {
    if (c.opt.args.size() < 2) {
        throw UsageError("key needs a subcommand: set, revoke");
    }
    const std::string& sub = c.opt.args[1];
    if (sub == "set") {
        return cmd_key_set(c);
    } else if (sub == "revoke") {
        return cmd_key_revoke(c);
    }
    throw UsageError("unknown key subcommand \"" + printable(sub) + "\"");
}

int cmd_sessions(Context& c) {
    allow_flags(c, "sessions", 0);
    expect_args(c, 1, 1);
    std::string user = need_user(c, 1);
    int rc = kDone;
    if (!existing_user(c, user, rc)) {
        return rc;
    }
    StoreCall call = make_sessions_list(*c.keys, c.prefix(), user);
    auto list = decode_sessions_list(run(c, call));
    if (!list) {
        bad_reply(call);
    }
    std::sort(list->begin(), list->end(),
              [](const SessionEntry& a, const SessionEntry& b) { return a.created_ms < b.created_ms; });
    if (c.opt.json) {
        std::string out = "{\"user\":" + json_string(user) + ",\"sessions\":[";
        for (size_t i = 0; i < list->size(); i++) {
            const SessionEntry& e = (*list)[i];
            out += i ? "," : "";
            out += "{\"id\":" + json_string(e.id) + ",\"method\":" + json_string(e.method)
                   + ",\"created_at\":" + std::to_string(e.created_ms / 1000)
                   + ",\"expires_at\":" + std::to_string(e.expires_ms / 1000) + "}";
        }
        std::cout << out << "]}\n";
    } else if (list->empty()) {
        std::cout << "no sessions for " << printable(user) << "\n";
    } else {
        std::vector<std::vector<std::string>> rows;
        for (const SessionEntry& e : *list) {
            rows.push_back({e.id, printable(e.method), utc_time_ms(e.created_ms), utc_time_ms(e.expires_ms)});
        }
        print_table({"ID", "METHOD", "CREATED", "EXPIRES"}, rows);
    }
    return kDone;
}

int cmd_logout(Context& c) {
    allow_flags(c, "logout", 0);
    expect_args(c, 1, 1);
    std::string user = need_user(c, 1);
    int rc = kDone;
    if (!existing_user(c, user, rc)) {
        return rc;
    }
    StoreCall call = make_logout(*c.keys, c.prefix(), user);
    auto n = decode_logout(run(c, call));
    if (!n) {
        bad_reply(call);
    }
    if (c.opt.json) {
        std::cout << "{\"user\":" << json_string(user) << ",\"revoked\":" << *n << "}\n";
    } else {
        std::cout << "ended " << *n << " session(s) of " << printable(user) << "\n";
    }
    return kDone;
}

int cmd_challenge(Context& c) {
    allow_flags(c, "challenge", kFlagOut | kFlagHost);
    expect_args(c, 1, 1);
    std::string user = need_user(c, 1);
    if (!c.opt.out) {
        throw UsageError("challenge needs --out FILE (- for standard output)");
    }
    std::string host = challenge_host(c);
    int rc = kDone;
    auto info = existing_user(c, user, rc);
    if (!info) {
        return rc;
    }
    if (info->revoked) {
        return refuse(c, "revoked", "the key of " + printable(user) + " is revoked (key set to give a new one)");
    }
    if (info->key_pem.empty()) {
        return refuse(c, "no_key", "user " + printable(user) + " has no key (key set USER FILE.pem)");
    }
    std::string seed = generate_challenge_seed();
    StoreCall call = make_challenge_create(*c.keys, c.prefix(), user, seed, c.auth.challenge_ttl_ms);
    auto ttl = decode_challenge_create(run(c, call));
    if (!ttl) {
        bad_reply(call);
    }
    int64_t now_ms = redis_now_ms(c);
    ChallengeFile f{user, host, challenge_nonce(*c.keys, auth_user_tag(*c.keys, user), seed),
                    (now_ms + *ttl) / 1000};
    write_out_file(*c.opt.out, render_challenge_file(f));
    if (*c.opt.out == "-") {
        return kDone;  // the file is the output
    }
    if (c.opt.json) {
        std::cout << "{\"user\":" << json_string(user) << ",\"host\":" << json_string(host)
                  << ",\"nonce\":" << json_string(f.nonce) << ",\"expires_at\":" << f.expires_at
                  << ",\"file\":" << json_string(*c.opt.out) << "}\n";
    } else {
        std::cout << "challenge for " << printable(user) << " written to " << printable(*c.opt.out)
                  << " (expires in " << human_duration(retry_after_seconds(*ttl)) << ");\n"
                  << "sign its \"message\" with the user's key, then: pairguardctl verify " << printable(user)
                  << " --in SIGNATURE_FILE\n";
    }
    return kDone;
}

int cmd_verify(Context& c) {
    allow_flags(c, "verify", kFlagIn | kFlagHost);
    expect_args(c, 1, 1);
    std::string user = need_user(c, 1);
    if (!c.opt.in) {
        throw UsageError("verify needs --in FILE (- for standard input)");
    }
    std::string content;
    if (*c.opt.in == "-") {
        std::string buf((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
        if (buf.size() > kKeyFileMaxBytes) {
            throw InputError("standard input is larger than " + std::to_string(kKeyFileMaxBytes) + " bytes");
        }
        content = std::move(buf);
    } else {
        content = read_small_file(*c.opt.in, kKeyFileMaxBytes);
    }
    SignatureResponse resp = parse_response_file(content);
    if (resp.user && *resp.user != user) {
        throw UsageError(*c.opt.in + " is a response for another user");
    }
    if (resp.host && c.opt.host && *resp.host != *c.opt.host) {
        throw UsageError("--host differs from the host in " + *c.opt.in);
    }
    std::string host = resp.host ? *resp.host : challenge_host(c);

    StoreCall list_call = make_challenge_list(*c.keys, c.prefix(), user);
    ChallengeState st = decode_challenge_list(run(c, list_call));
    if (!st.valid) {
        bad_reply(list_call);
    }
    if (!st.exists) {
        return refuse(c, "not_found", "no user " + printable(user));
    }
    if (st.revoked) {
        return refuse(c, "revoked", "the key of " + printable(user) + " is revoked");
    }
    if (st.key_pem.empty()) {
        return refuse(c, "no_key", "user " + printable(user) + " has no key");
    }
    if (st.lock_ms > 0) {
        if (c.opt.json) {
            std::cout << render_error("locked", retry_after_seconds(st.lock_ms)) << "\n";
        } else {
            std::cerr << "pairguardctl: logins of " << printable(user) << " are locked for another "
                      << human_duration(retry_after_seconds(st.lock_ms)) << "\n";
        }
        return kRefused;
    }
    auto key = PublicKey::from_pem(st.key_pem);
    if (!key) {
        throw StoreUnreachable("redis: the stored key of the user cannot be read");
    }
    std::string tag = auth_user_tag(*c.keys, user);
    const std::string* matched = nullptr;
    for (const std::string& seed : st.seeds) {
        std::string nonce = challenge_nonce(*c.keys, tag, seed);
        if (resp.nonce && *resp.nonce != nonce) {
            continue;
        }
        if (key->verify(auth_signed_message(host, user, nonce), resp.signature)) {
            matched = &seed;
            break;
        }
    }
    if (matched == nullptr) {
        StoreCall fail = make_user_failure(*c.keys, c.prefix(), user, c.auth);
        auto locked = decode_failure(run(c, fail));
        if (!locked) {
            bad_reply(fail);
        }
        std::string more = *locked > 0 ? "; logins of " + printable(user) + " are now locked" : "";
        return refuse(c, "invalid_signature",
                      "the signature matches no pending challenge of " + printable(user) + " (expired, used, "
                          "another host, or the wrong key)" + more);
    }
    SessionCreate s;
    s.token = generate_token(tag);
    s.method = AuthMethod::challenge;
    s.ttl_ms = c.auth.session_ttl_ms;
    s.challenge_seed = *matched;
    s.key_fp = st.key_fp;
    StoreCall create = make_session_create(*c.keys, c.prefix(), user, s);
    SessionCreated created = decode_session_create(run(c, create));
    if (!created.valid) {
        bad_reply(create);
    }
    if (!created.ok) {
        return refuse(c, "invalid_signature", "the challenge was used or the key changed meanwhile");
    }
    if (c.opt.json) {
        std::cout << render_token(s.token, created.expires_ms / 1000) << "\n";
    } else {
        std::cout << s.token << "\n";
        std::cerr << "pairguardctl: session for " << printable(user) << " until " << utc_time_ms(created.expires_ms)
                  << "\n";
    }
    OPENSSL_cleanse(s.token.data(), s.token.size());
    return kDone;
}

}  // namespace pairguard::cli
