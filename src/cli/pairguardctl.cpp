// pairguardctl: the owner's CLI. The same operations as the module's
// endpoints, straight on Redis, through the same scripts and the same core,
// so the rules (and the lockouts an approval counts toward) are the same.
// This file parses the command line and dispatches; the commands are in
// cli_pairing.cpp, cli_auth_commands.cpp, cli_status.cpp and cli_events.cpp.
//
// Exit status: 0 done, 1 refused or not found, 2 usage, 3 store unreachable.

#include <openssl/crypto.h>

#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cli_auth.hpp"
#include "cli_command.hpp"
#include "cli_events.hpp"
#include "cli_status.hpp"
#include "cli_store.hpp"
#include "keys.hpp"
#include "pairing.hpp"

namespace pairguard::cli {

namespace {

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
    "  locks [POLICY [KEY...]]      list locked guard keys, trusted devices and pairing platforms\n"
    "  unlock POLICY KEY            lift the lock (and failures) of a guard key\n"
    "  unlock --platform PLATFORM   lift a platform's pairing approval lock\n"
    "  unlock --device LABEL        lift a trusted device's lock (LABEL as locks shows it)\n"
    "  status [--url URL] [--json]  a node's pairguard_status as a table (no Redis needed)\n"
    "  events [--follow] [--count N] [--json]   recent events (wrong approvals, locks,\n"
    "                               approvals, revocations); --follow waits for new ones\n"
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
    "--auth-policy takes the parameters of pairguard_auth_policy (session_ttl=,\n"
    "challenge_ttl=, max_failures=, lockout=, argon2_m=, argon2_t=, argon2_p=) for\n"
    "sessions, challenges, the failures verify counts and the password hashes of\n"
    "user add and user passwd (give the module's, so that every user costs a\n"
    "login the same time as an unknown one). --password-stdin reads the password\n"
    "from standard input (one trailing newline stripped; from a terminal:\n"
    "prompted, no echo).\n"
    "\n"
    "environment: PAIRGUARD_REDIS, PAIRGUARD_REDIS_PASSWORD, PAIRGUARD_SECRET_FILE,\n"
    "             PAIRGUARD_PREFIX, PAIRGUARD_PAIRING_POLICY, PAIRGUARD_AUTH_POLICY\n"
    "exit status: 0 done, 1 refused or not found, 2 usage, 3 store unreachable\n";

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
        } else if (a == "--device") {
            o.device_flag = true;
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
        {"user", cmd_user},         {"key", cmd_key},         {"sessions", cmd_sessions},
        {"logout", cmd_logout},     {"challenge", cmd_challenge}, {"verify", cmd_verify},
    };
    auto it = commands.find(cmd);
    if (it == commands.end()) {
        throw UsageError("unknown command \"" + printable(cmd) + "\"");
    }
    if ((c.opt.platform_flag || c.opt.device_flag) && cmd != "unlock") {
        throw UsageError(std::string(c.opt.platform_flag ? "--platform" : "--device") + " goes with unlock");
    }
    if (c.opt.platform_flag && c.opt.device_flag) {
        throw UsageError("--platform and --device do not go together");
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
    } catch (const InputError& e) {
        std::cerr << "pairguardctl: " << e.what() << "\n";
        return kUsage;
    } catch (const StoreUnreachable& e) {
        std::cerr << "pairguardctl: " << e.what() << "\n";
        return kUnreachable;
    } catch (const std::exception& e) {
        std::cerr << "pairguardctl: " << e.what() << "\n";
        return kUnreachable;
    }
}
