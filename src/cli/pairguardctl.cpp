// pairguardctl: the owner's CLI. The same operations as the module's
// endpoints, straight on Redis, through the same scripts and the same core,
// so the rules (and the lockouts an approval counts toward) are the same.
//
// Exit status: 0 done, 1 refused or not found, 2 usage, 3 store unreachable.

#include <openssl/crypto.h>

#include <algorithm>
#include <cstdio>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cli_events.hpp"
#include "cli_status.hpp"
#include "cli_store.hpp"
#include "keys.hpp"
#include "pairing.hpp"
#if PAIRGUARD_CLI_AUTH
#include <fcntl.h>
#include <unistd.h>

#include "auth_store.hpp"
#include "cli_auth.hpp"
#include "encoding.hpp"
#include "password.hpp"
#include "scram.hpp"
#include "session.hpp"
#include "signature.hpp"
#endif

namespace pairguard::cli {

namespace {

constexpr int kDone = 0;
constexpr int kRefused = 1;
constexpr int kUsage = 2;
constexpr int kUnreachable = 3;

const char kUsageText[] =
    "usage: pairguardctl [--redis ADDRESS] [--secret-file PATH] [--prefix STR]\n"
    "                    [--policy \"PAIRING POLICY PARAMETERS\"] [--json] COMMAND\n"
    "\n"
    "commands:\n"
    "  approve PLATFORM CODE        approve a pending pairing code\n"
    "  pending [PLATFORM]           list pending codes\n"
    "  clear-pending [PLATFORM]     drop pending codes\n"
    "  approved [PLATFORM]          list approved users\n"
    "  revoke PLATFORM USER_ID      remove an approved user\n"
    "  locks [POLICY [KEY...]]      list locked guard keys and pairing platforms\n"
    "  unlock POLICY KEY            lift the lock (and failures) of a guard key\n"
    "  unlock --platform PLATFORM   lift a platform's pairing approval lock\n"
    "  status [--url URL] [--json]  a node's pairguard_status as a table (no Redis needed)\n"
    "  events [--follow] [--count N] [--json]   recent events (wrong approvals, locks,\n"
    "                               approvals, revocations); --follow waits for new ones\n"
#if PAIRGUARD_CLI_AUTH
    "\n"
    "  user add USER [--password-stdin] [--pubkey FILE.pem] [--protected]\n"
    "  user del USER                delete a user (refused for protected users)\n"
    "  user passwd USER --password-stdin   set the password (ends the user's sessions)\n"
    "  user show USER               what the store holds for USER (no secrets)\n"
    "  user list                    list users\n"
    "  user protect|unprotect USER  mark or unmark USER as undeletable\n"
    "  key set USER FILE.pem        set or rotate USER's key (ends the user's sessions)\n"
    "  key revoke USER [--reason TEXT]   revoke USER's key (no login until key set)\n"
    "  sessions USER                list USER's sessions (never the tokens)\n"
    "  logout USER                  end every session of USER\n"
    "  challenge USER --out FILE [--host HOST]   air-gapped login: write a challenge\n"
    "  verify USER --in FILE [--host HOST]       read its signature, print a session token\n"
#endif
    "\n"
    "ADDRESS is the words of pairguard_redis in one argument: HOST:PORT or\n"
    "unix:/path (default 127.0.0.1:6379), \"sentinel=HOST:PORT,... master=NAME\"\n"
    "or \"cluster=HOST:PORT,...\", then password=P, password_file=PATH, user=U,\n"
    "db=N, timeout=TIME, prefix=STR, sentinel_user=U, sentinel_password=P,\n"
    "sentinel_password_file=PATH, tls, tls_verify=on|off,\n"
    "tls_trusted_certificate=PATH, tls_server_name=NAME, tls_certificate=PATH,\n"
    "tls_certificate_key=PATH. --policy takes the parameters of\n"
    "pairguard_pairing_policy (e.g. \"max_failures=5 lockout=1h\"), so that CLI\n"
    "approvals follow the same limits as the module; default: its defaults.\n"
    "With platforms=, listings without a platform cover those platforms.\n"
#if PAIRGUARD_CLI_AUTH
    "--auth-policy takes the parameters of pairguard_auth_policy (session_ttl=,\n"
    "challenge_ttl=, max_failures=, lockout=) for sessions, challenges and the\n"
    "failures verify counts. --password-stdin reads the password from standard\n"
    "input (one trailing newline stripped; from a terminal: prompted, no echo).\n"
#endif
    "\n"
    "environment: PAIRGUARD_REDIS, PAIRGUARD_REDIS_PASSWORD, PAIRGUARD_SECRET_FILE,\n"
    "             PAIRGUARD_PREFIX, PAIRGUARD_PAIRING_POLICY, PAIRGUARD_AUTH_POLICY\n"
    "exit status: 0 done, 1 refused or not found, 2 usage, 3 store unreachable\n";

struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Options {
    std::string redis;
    std::string secret_file;
    std::optional<std::string> prefix;
    std::string policy;
    bool json = false;
    bool platform_flag = false;  // unlock --platform
    std::string auth_policy;
    // auth commands
    bool password_stdin = false;
    bool protect = false;
    std::optional<std::string> pubkey, reason, out, in, host;
    std::vector<std::string> args;
};

struct Context {
    Options opt;
    RedisTarget target;
    PairingLimits limits;
#if PAIRGUARD_CLI_AUTH
    AuthPolicy auth;
#endif
    std::unique_ptr<KeyDeriver> keys;
    std::unique_ptr<SyncRedis> redis;

    const std::string& prefix() const { return target.prefix; }
};

std::string env(const char* name) {
    const char* v = std::getenv(name);
    return v ? v : "";
}

std::vector<std::string_view> split_words(std::string_view s) {
    std::vector<std::string_view> out;
    size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) {
            i++;
        }
        size_t start = i;
        while (i < s.size() && s[i] != ' ' && s[i] != '\t') {
            i++;
        }
        if (i > start) {
            out.push_back(s.substr(start, i - start));
        }
    }
    return out;
}

// "1h02m", "3m05s", "42s".
std::string human_duration(int64_t s) {
    char buf[64];
    if (s >= 3600) {
        snprintf(buf, sizeof(buf), "%lldh%02lldm", static_cast<long long>(s / 3600),
                 static_cast<long long>(s % 3600 / 60));
    } else if (s >= 60) {
        snprintf(buf, sizeof(buf), "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
    } else {
        snprintf(buf, sizeof(buf), "%llds", static_cast<long long>(s));
    }
    return buf;
}

std::string utc_time(int64_t unix_s) {
    time_t t = static_cast<time_t>(unix_s);
    struct tm tm;
    char buf[32];
    if (gmtime_r(&t, &tm) == nullptr || strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%SZ", &tm) == 0) {
        return std::to_string(unix_s);
    }
    return buf;
}

// Text from Redis, made safe for a terminal.
std::string printable(std::string_view s) {
    std::string out;
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        out.push_back(u < 0x20 || u == 0x7f ? '?' : c);
    }
    return out.empty() ? "-" : out;
}

// Display width of UTF-8 text, counting code points (good enough for names).
size_t width(std::string_view s) {
    size_t n = 0;
    for (char c : s) {
        n += (static_cast<unsigned char>(c) & 0xc0) != 0x80;
    }
    return n;
}

void print_table(const std::vector<std::string>& head, const std::vector<std::vector<std::string>>& rows) {
    std::vector<size_t> w(head.size());
    for (size_t i = 0; i < head.size(); i++) {
        w[i] = width(head[i]);
        for (const auto& r : rows) {
            w[i] = std::max(w[i], width(r[i]));
        }
    }
    auto line = [&](const std::vector<std::string>& cells) {
        std::string out;
        for (size_t i = 0; i < cells.size(); i++) {
            out += cells[i];
            if (i + 1 < cells.size()) {
                out.append(w[i] - width(cells[i]) + 2, ' ');
            }
        }
        std::cout << out << "\n";
    };
    line(head);
    for (const auto& r : rows) {
        line(r);
    }
}

std::string need_platform(const std::string& raw) {
    auto p = normalize_platform(raw);
    if (!p) {
        throw UsageError("invalid platform \"" + printable(raw) + "\": 1-64 characters of a-z, 0-9, _ . -");
    }
    return *p;
}

void expect_args(const Context& c, size_t min, size_t max) {
    size_t n = c.opt.args.size() - 1;
    if (n < min || n > max) {
        throw UsageError("wrong number of arguments for \"" + c.opt.args[0] + "\"");
    }
}

Reply run(Context& c, const StoreCall& call) {
    Reply r = c.redis->run(call);
    if (r.type == Reply::Type::error) {
        throw StoreUnreachable("redis: script " + std::string(call.script->name) + " failed: " + r.str);
    }
    return r;
}

[[noreturn]] void bad_reply(const StoreCall& call) {
    throw StoreUnreachable("redis: unexpected reply from script " + std::string(call.script->name));
}

// The policy's platforms= when given (as nginx lists them), else every
// platform that has had a request (only configured names ever get there).
std::vector<std::string> all_platforms(Context& c) {
    if (!c.limits.platforms.empty()) {
        std::vector<std::string> list = c.limits.platforms;
        std::sort(list.begin(), list.end());
        return list;
    }
    StoreCall call = make_platforms(c.prefix());
    auto list = decode_platforms(run(c, call));
    if (!list) {
        bad_reply(call);
    }
    return *list;
}

// The platforms a listing covers: the one named (args[1]), or every known one.
std::vector<std::string> platforms_of(Context& c) {
    return c.opt.args.size() > 1 ? std::vector<std::string>{need_platform(c.opt.args[1])} : all_platforms(c);
}

// ---- commands ----

int cmd_approve(Context& c) {
    expect_args(c, 2, 2);
    std::string platform = need_platform(c.opt.args[1]);
    auto code = normalize_code(c.opt.args[2]);
    if (!platform_allowed(c.limits, platform)) {
        throw UsageError("platform \"" + platform + "\" is not among the policy's platforms");
    }
    if (!code) {
        // not a possible code: refused without asking Redis (and not counted)
        if (c.opt.json) {
            std::cout << render_error("invalid_code") << "\n";
        } else {
            std::cerr << "pairguardctl: invalid code\n";
        }
        return kRefused;
    }
    StoreCall call = make_approve(*c.keys, c.prefix(), c.limits, platform, *code);
    OPENSSL_cleanse(code->data(), code->size());
    ApproveResult r = decode_approve(run(c, call));
    if (r.status == ApproveStatus::invalid) {
        bad_reply(call);
    }
    HttpAnswer a = answer_approve(r, platform);
    if (c.opt.json) {
        std::cout << a.body << "\n";
    } else if (r.status == ApproveStatus::ok) {
        std::cout << "approved " << platform << " user " << printable(r.user_id)
                  << (r.user_name.empty() ? "" : " (" + printable(r.user_name) + ")") << "\n";
    } else if (r.status == ApproveStatus::locked) {
        std::cerr << "pairguardctl: approvals on " << platform << " are locked for another "
                  << human_duration(a.retry_after) << "\n";
    } else {
        std::string more;
        if (r.burned > 0) {
            more += "; " + std::to_string(r.burned) + " pending code(s) burned after too many wrong attempts";
        }
        if (r.lock_started_ms > 0) {
            more += "; approvals on " + platform + " are now locked for "
                    + human_duration(retry_after_seconds(r.lock_started_ms));
        }
        std::cerr << "pairguardctl: invalid or expired code" << more << "\n";
    }
    return r.status == ApproveStatus::ok ? kDone : kRefused;
}

int cmd_pending(Context& c) {
    expect_args(c, 0, 1);
    std::vector<PendingEntry> all;
    for (const std::string& p : platforms_of(c)) {
        StoreCall call = make_pending(*c.keys, c.prefix(), p);
        auto list = decode_pending(run(c, call), p);
        if (!list) {
            bad_reply(call);
        }
        all.insert(all.end(), list->begin(), list->end());
    }
    if (c.opt.json) {
        std::cout << render_pending(all) << "\n";
    } else if (all.empty()) {
        std::cout << "no pending pairing requests\n";
    } else {
        std::vector<std::vector<std::string>> rows;
        for (const PendingEntry& e : all) {
            rows.push_back({e.platform, e.id, printable(e.user_id), printable(e.user_name),
                            human_duration(e.age_seconds), human_duration(e.expires_in)});
        }
        print_table({"PLATFORM", "ID", "USER_ID", "USER_NAME", "AGE", "EXPIRES_IN"}, rows);
    }
    return kDone;
}

int cmd_clear_pending(Context& c) {
    expect_args(c, 0, 1);
    int64_t total = 0;
    for (const std::string& p : platforms_of(c)) {
        StoreCall call = make_clear(*c.keys, c.prefix(), p);
        auto n = decode_clear(run(c, call));
        if (!n) {
            bad_reply(call);
        }
        total += *n;
    }
    if (c.opt.json) {
        std::cout << render_cleared(total) << "\n";
    } else {
        std::cout << "cleared " << total << " pending code(s)\n";
    }
    return kDone;
}

int cmd_approved(Context& c) {
    expect_args(c, 0, 1);
    std::vector<ApprovedEntry> all;
    for (const std::string& p : platforms_of(c)) {
        StoreCall call = make_approved(*c.keys, c.prefix(), p);
        auto list = decode_approved(run(c, call), p);
        if (!list) {
            bad_reply(call);
        }
        all.insert(all.end(), list->begin(), list->end());
    }
    if (c.opt.json) {
        std::cout << render_approved(all) << "\n";
    } else if (all.empty()) {
        std::cout << "no approved users\n";
    } else {
        std::vector<std::vector<std::string>> rows;
        for (const ApprovedEntry& e : all) {
            rows.push_back({e.platform, printable(e.user_id), printable(e.user_name), utc_time(e.approved_at)});
        }
        print_table({"PLATFORM", "USER_ID", "USER_NAME", "APPROVED_AT"}, rows);
    }
    return kDone;
}

int cmd_revoke(Context& c) {
    expect_args(c, 2, 2);
    std::string platform = need_platform(c.opt.args[1]);
    auto user = normalize_user_id(platform, c.opt.args[2]);
    if (!user) {
        throw UsageError("invalid user id: 1-256 bytes of text without control characters");
    }
    StoreCall call = make_revoke(*c.keys, c.prefix(), platform, *user);
    auto r = decode_revoke(run(c, call));
    if (!r) {
        bad_reply(call);
    }
    if (c.opt.json) {
        std::cout << answer_revoke(r).body << "\n";
    } else if (*r) {
        std::cout << "revoked " << platform << " user " << printable(*user) << "\n";
    } else {
        std::cerr << "pairguardctl: " << platform << " user " << printable(*user) << " is not approved\n";
    }
    return *r ? kDone : kRefused;
}

int64_t redis_now_ms(Context& c) {
    Reply t = c.redis->command({"TIME"});
    if (t.type != Reply::Type::array || t.elements.size() != 2) {
        throw StoreUnreachable("redis: unexpected reply to TIME");
    }
    return std::stoll(t.elements[0].str) * 1000 + std::stoll(t.elements[1].str) / 1000;
}

std::string glob_escape(std::string_view s) {
    std::string out;
    for (char ch : s) {
        if (ch == '*' || ch == '?' || ch == '[' || ch == ']' || ch == '\\') {
            out.push_back('\\');
        }
        out.push_back(ch);
    }
    return out;
}

struct LockRow {
    std::string type;   // "guard" or "pairing"
    std::string name;   // guard label or platform
    std::string key;    // guard: the key asked about, if any
    int64_t retry_after = 0;
    int64_t failures = 0;
    bool locked = false;
};

// Lock end and failures of guard keys, read by the guard scripts' own parser.
std::vector<std::pair<int64_t, int64_t>> inspect_guard_keys(Context& c, const std::vector<std::string>& keys) {
    std::vector<StoreCall> calls;
    for (const std::string& k : keys) {
        calls.push_back(StoreCall{&guard_inspect_script(), {k}, {}});
    }
    std::vector<std::pair<int64_t, int64_t>> out;
    for (const Reply& r : c.redis->run_many(calls)) {
        if (r.type != Reply::Type::array || r.elements.size() != 2 || r.elements[0].type != Reply::Type::integer
            || r.elements[1].type != Reply::Type::integer) {
            throw StoreUnreachable("redis: script guard_inspect failed" + (r.str.empty() ? "" : ": " + r.str));
        }
        out.emplace_back(r.elements[0].integer, r.elements[1].integer);
    }
    return out;
}

int cmd_locks(Context& c) {
    std::vector<LockRow> rows;
    int64_t now = redis_now_ms(c);

    if (c.opt.args.size() > 2) {
        // the state of these very keys of POLICY
        const std::string& policy = c.opt.args[1];
        std::vector<std::string> keys;
        std::vector<std::string> labels;
        for (size_t i = 2; i < c.opt.args.size(); i++) {
            KeyTag tag = c.keys->tag("g", policy, c.opt.args[i]);
            keys.push_back(guard_store_key(c.prefix(), tag));
            labels.push_back(tag_label(tag));
        }
        auto states = inspect_guard_keys(c, keys);
        for (size_t i = 0; i < keys.size(); i++) {
            bool locked = states[i].first > now;
            rows.push_back(LockRow{"guard", labels[i], c.opt.args[i + 2],
                                   locked ? retry_after_seconds(states[i].first - now) : 0, states[i].second, locked});
        }
    } else {
        if (c.opt.args.size() == 2 && !c.opt.json) {
            std::cerr << "pairguardctl: note: guard keys do not record their policy; listing the locks of every "
                         "policy (name KEYs to check particular ones)\n";
        }
        // guard keys are PREFIX{TAG} and nothing after the brace; pairing
        // keys (PREFIX{p:TAG}:...) do not match
        std::string match = glob_escape(c.prefix()) + "{*}";
        // (in a Redis Cluster, on every master)
        c.redis->scan(match, [&](const std::vector<std::string>& found) {
            std::vector<std::string> keys;
            std::vector<std::string> labels;
            for (const std::string& k : found) {
                std::string tag = hash_tag(k);
                std::string raw;
                if (k.size() != c.prefix().size() + tag.size() + 2 || !base64url_decode(tag, raw) || raw.size() < 4) {
                    continue;
                }
                KeyTag t{};
                std::copy(raw.begin(), raw.begin() + 4, t.begin());
                keys.push_back(k);
                labels.push_back(tag_label(t));
            }
            auto states = inspect_guard_keys(c, keys);
            for (size_t i = 0; i < keys.size(); i++) {
                if (states[i].first > now) {
                    rows.push_back(LockRow{"guard", labels[i], "", retry_after_seconds(states[i].first - now),
                                           states[i].second, true});
                }
            }
        });
        std::sort(rows.begin(), rows.end(), [](const LockRow& a, const LockRow& b) { return a.name < b.name; });

        if (c.opt.args.size() == 1) {
            std::vector<std::string> platforms = all_platforms(c);
            std::vector<StoreCall> calls;
            for (const std::string& p : platforms) {
                calls.push_back(make_lock_status(*c.keys, c.prefix(), p));
            }
            std::vector<Reply> replies = c.redis->run_many(calls);
            for (size_t i = 0; i < platforms.size(); i++) {
                LockStatus s = decode_lock_status(replies[i]);
                if (!s.valid) {
                    bad_reply(calls[i]);
                }
                if (s.retry_ms > 0) {
                    rows.push_back(
                        LockRow{"pairing", platforms[i], "", retry_after_seconds(s.retry_ms), s.failures, true});
                }
            }
        }
    }

    if (c.opt.json) {
        std::string out = "{\"locks\":[";
        for (size_t i = 0; i < rows.size(); i++) {
            const LockRow& r = rows[i];
            out += i ? "," : "";
            out += "{\"type\":\"" + r.type + "\",";
            out += r.type == "guard" ? "\"label\":\"" + r.name + "\"" : "\"platform\":\"" + r.name + "\"";
            out += ",\"locked\":" + std::string(r.locked ? "true" : "false");
            out += ",\"retry_after\":" + std::to_string(r.retry_after);
            out += ",\"failures\":" + std::to_string(r.failures) + "}";
        }
        std::cout << out << "]}\n";
    } else if (rows.empty()) {
        std::cout << "no locks\n";
    } else {
        std::vector<std::vector<std::string>> table;
        for (const LockRow& r : rows) {
            std::string name = r.key.empty() ? r.name : r.name + " (" + printable(r.key) + ")";
            table.push_back({r.type, name, r.locked ? human_duration(r.retry_after) : "not locked",
                             std::to_string(r.failures)});
        }
        print_table({"TYPE", "KEY", "LOCKED_FOR", "FAILURES"}, table);
    }
    return kDone;
}

int cmd_unlock(Context& c) {
    StoreCall call;
    std::string what;
    if (c.opt.platform_flag) {
        expect_args(c, 1, 1);
        std::string platform = need_platform(c.opt.args[1]);
        call = make_unlock_platform(*c.keys, c.prefix(), platform);
        what = "pairing approvals on " + platform;
    } else {
        expect_args(c, 2, 2);
        call = make_unlock_guard(*c.keys, c.prefix(), c.opt.args[1], c.opt.args[2]);
        what = "key " + tag_label(c.keys->tag("g", c.opt.args[1], c.opt.args[2])) + " of policy \""
               + printable(c.opt.args[1]) + "\"";
    }
    auto n = decode_unlock(run(c, call));
    if (!n) {
        bad_reply(call);
    }
    if (c.opt.json) {
        std::cout << (*n > 0 ? "{\"unlocked\":true}" : render_error("not_found")) << "\n";
    } else if (*n > 0) {
        std::cout << "unlocked " << what << "\n";
    } else {
        std::cerr << "pairguardctl: nothing stored for " << what << "\n";
    }
    return *n > 0 ? kDone : kRefused;
}

#if PAIRGUARD_CLI_AUTH
// ---- users, keys, sessions, challenges (SPEC section 4) ----

// The auth options a command takes; any other one given is a usage error.
enum AuthFlag : unsigned {
    kFlagPasswordStdin = 1,
    kFlagPubkey = 2,
    kFlagProtected = 4,
    kFlagReason = 8,
    kFlagOut = 16,
    kFlagIn = 32,
    kFlagHost = 64,
};

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

PasswordHashes read_and_hash_password(bool confirm) {
    SecretString pw = read_password(STDIN_FILENO, confirm);
    PasswordHashes h;
    h.argon2 = hash_password(pw.view());
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
        PasswordHashes h = read_and_hash_password(true);
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
    PasswordHashes h = read_and_hash_password(true);
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
#endif  // PAIRGUARD_CLI_AUTH

Options parse_options(int argc, char** argv) {
    Options o;
    o.redis = env("PAIRGUARD_REDIS");
    o.secret_file = env("PAIRGUARD_SECRET_FILE");
    o.policy = env("PAIRGUARD_PAIRING_POLICY");
    o.auth_policy = env("PAIRGUARD_AUTH_POLICY");
    if (!env("PAIRGUARD_PREFIX").empty()) {
        o.prefix = env("PAIRGUARD_PREFIX");
    }
    bool opts_done = false;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        auto value = [&](const char* name) {
            if (i + 1 >= argc) {
                throw UsageError(std::string(name) + " needs a value");
            }
            return std::string(argv[++i]);
        };
        if (opts_done || a.size() < 2 || a.compare(0, 2, "--") != 0) {
            o.args.push_back(a);
        } else if (a == "--") {
            opts_done = true;
        } else if (a == "--redis") {
            o.redis = value("--redis");
        } else if (a == "--secret-file") {
            o.secret_file = value("--secret-file");
        } else if (a == "--prefix") {
            o.prefix = value("--prefix");
        } else if (a == "--policy") {
            o.policy = value("--policy");
        } else if (a == "--json") {
            o.json = true;
        } else if (a == "--platform") {
            o.platform_flag = true;
#if PAIRGUARD_CLI_AUTH
        } else if (a == "--auth-policy") {
            o.auth_policy = value("--auth-policy");
        } else if (a == "--password-stdin") {
            o.password_stdin = true;
        } else if (a == "--protected") {
            o.protect = true;
        } else if (a == "--pubkey") {
            o.pubkey = value("--pubkey");
        } else if (a == "--reason") {
            o.reason = value("--reason");
        } else if (a == "--out") {
            o.out = value("--out");
        } else if (a == "--in") {
            o.in = value("--in");
        } else if (a == "--host") {
            o.host = value("--host");
#endif
        } else if (a == "--help") {
            o.args = {"help"};
            return o;
        } else {
            throw UsageError("unknown option \"" + a + "\"");
        }
    }
    return o;
}

int main_checked(int argc, char** argv) {
    Context c;
    c.opt = parse_options(argc, argv);
    if (c.opt.args.empty()) {
        throw UsageError("no command");
    }
    const std::string& cmd = c.opt.args[0];
    if (cmd == "help") {
        std::cout << kUsageText;
        return kDone;
    }
    static const std::map<std::string, std::function<int(Context&)>> commands = {
        {"approve", cmd_approve},   {"pending", cmd_pending}, {"clear-pending", cmd_clear_pending},
        {"approved", cmd_approved}, {"revoke", cmd_revoke},   {"locks", cmd_locks},
        {"unlock", cmd_unlock},
#if PAIRGUARD_CLI_AUTH
        {"user", cmd_user},         {"key", cmd_key},         {"sessions", cmd_sessions},
        {"logout", cmd_logout},     {"challenge", cmd_challenge}, {"verify", cmd_verify},
#endif
    };
    auto it = commands.find(cmd);
    if (it == commands.end()) {
        throw UsageError("unknown command \"" + printable(cmd) + "\"");
    }
    if (c.opt.platform_flag && cmd != "unlock") {
        throw UsageError("--platform goes with unlock");
    }

    std::string err = parse_redis_target(c.opt.redis.empty() ? "127.0.0.1:6379" : c.opt.redis, c.target);
    if (!err.empty()) {
        throw UsageError("--redis: " + err);
    }
    if (c.target.password.empty()) {
        c.target.password = env("PAIRGUARD_REDIS_PASSWORD");
    }
    if (c.opt.prefix) {
        c.target.prefix = *c.opt.prefix;
    }
    std::vector<std::string_view> words = split_words(c.opt.policy);
    err = parse_pairing_policy_args(words, c.limits);
    if (!err.empty()) {
        throw UsageError("--policy: " + err);
    }
#if PAIRGUARD_CLI_AUTH
    static const std::set<std::string> auth_commands = {"user", "key", "sessions", "logout", "challenge", "verify"};
    if (auth_commands.count(cmd) != 0) {
        std::vector<std::string_view> auth_words = split_words(c.opt.auth_policy);
        err = parse_auth_policy_args(auth_words, c.auth);
        if (!err.empty()) {
            throw UsageError("--auth-policy: " + err);
        }
    } else {
        allow_flags(c, cmd, 0);
    }
#endif
    if (c.opt.secret_file.empty()) {
        throw UsageError("no secret file: use --secret-file PATH or PAIRGUARD_SECRET_FILE");
    }
    std::string secret;
    try {
        secret = read_secret_file(c.opt.secret_file);
    } catch (const std::runtime_error& e) {
        throw UsageError(e.what());
    }
    c.keys = std::make_unique<KeyDeriver>(secret);
    OPENSSL_cleanse(secret.data(), secret.size());

    c.redis = std::make_unique<SyncRedis>(c.target);
    return it->second(c);
}

}  // namespace

}  // namespace pairguard::cli

int main(int argc, char** argv) {
    using namespace pairguard::cli;
    if (argc >= 2 && std::string_view(argv[1]) == "status") {
        return status_main(argc, argv);  // plain HTTP to a node: no store, no secret
    }
    for (int i = 1; i < argc; i++) {
        std::string_view a = argv[i];
        if (a == "events") {
            return events_main(argc, argv);  // the event stream: no secret needed
        }
        if (a == "--redis" || a == "--prefix" || a == "--secret-file" || a == "--policy" || a == "--auth-policy") {
            i++;  // skip the option's value
        } else if (a.substr(0, 2) != "--") {
            break;  // another command
        }
    }
    try {
        return main_checked(argc, argv);
    } catch (const UsageError& e) {
        std::cerr << "pairguardctl: " << e.what() << "\n(pairguardctl help: usage)\n";
        return kUsage;
#if PAIRGUARD_CLI_AUTH
    } catch (const InputError& e) {
        std::cerr << "pairguardctl: " << e.what() << "\n";
        return kUsage;
#endif
    } catch (const StoreUnreachable& e) {
        std::cerr << "pairguardctl: " << e.what() << "\n";
        return kUnreachable;
    } catch (const std::exception& e) {
        std::cerr << "pairguardctl: " << e.what() << "\n";
        return kUnreachable;
    }
}
