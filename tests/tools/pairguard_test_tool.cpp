// Test-only (not installed; build/cmake/pairguard_test_tool): makes store
// state the way the module does, with the same core and scripts, so that
// tests can drive pairguardctl without nginx.
//
//   pairguard_test_tool [--redis ADDRESS] [--policy "PAIRING PARAMS"] SECRET_FILE request PLATFORM USER_ID [USER_NAME]
//       what the `pairguard_pairing request` endpoint does (register the
//       platform, draw a code, run pair_request); prints the endpoint's
//       answer: "201 {"code":"ABCD2345","expires_in":3600}" or "429 {...}".
//   pairguard_test_tool [--redis ADDRESS] SECRET_FILE guard-fail POLICY KEY MAX_FAILURES LOCKOUT
//       one guarded attempt on (POLICY, KEY) that the upstream failed
//       (guard_reserve, then guard_settle 'f'; window = lockout); prints the
//       settle reply.
//   pairguard_test_tool [--redis ADDRESS] SECRET_FILE session USER [METHOD [TTL]]
//       a session for USER as a login would make it (session_create; METHOD
//       password by default, TTL 1h); prints the token, or "refused".
//   pairguard_test_tool [--redis ADDRESS] SECRET_FILE session-get TOKEN
//       what a request with the token would find: "found USER METHOD
//       EXPIRES_MS", or "none" (exit 1).
//
// Exit status: 0 done, 1 refused, 2 usage, 3 store unreachable.

#include <iostream>
#include <string>
#include <vector>

#include "auth_store.hpp"
#include "cli_store.hpp"
#include "duration.hpp"
#include "pairing.hpp"
#include "policy.hpp"
#include "session.hpp"

using namespace pairguard;
using namespace pairguard::cli;

namespace {

int request(SyncRedis& store, const KeyDeriver& keys, const RedisTarget& target, const PairingLimits& limits,
            const std::vector<std::string>& args) {
    if (args.size() < 2 || args.size() > 3) {
        return 2;
    }
    // the body the endpoint would get (no escaping needed for test values)
    std::string body = "{\"platform\":\"" + args[0] + "\",\"user_id\":\"" + args[1] + "\"";
    if (args.size() == 3) {
        body += ",\"user_name\":\"" + args[2] + "\"";
    }
    body += "}";
    PairingRequest req;
    std::string err = parse_request_body(body, req);
    if (!err.empty()) {
        std::cout << "400 " << render_invalid_request(err) << "\n";
        return 1;
    }
    store.run(make_register(target.prefix, req.platform));
    for (int attempt = 0; attempt < 3; attempt++) {
        std::string code = generate_code();
        RequestResult r = decode_request(store.run(make_request(keys, target.prefix, limits, req, code)));
        if (r.status == RequestStatus::collision) {
            continue;
        }
        HttpAnswer a = answer_request(r, code);
        std::cout << a.status << " " << a.body << "\n";
        return r.status == RequestStatus::ok ? 0 : r.status == RequestStatus::invalid ? 3 : 1;
    }
    std::cout << "500 " << render_error("store_error") << "\n";
    return 3;
}

int guard_fail(SyncRedis& store, const KeyDeriver& keys, const RedisTarget& target,
               const std::vector<std::string>& args) {
    if (args.size() != 4) {
        return 2;
    }
    PolicyLimits limits;
    limits.max_failures = std::stoll(args[2]);
    limits.lockout_ms = parse_duration_ms(args[3]).value_or(0);
    limits.window_ms = limits.lockout_ms;
    limits.max_lockout_ms = limits.lockout_ms;
    std::string key = guard_store_key(target.prefix, keys.tag("g", args[0], args[1]));

    Reply r = store.run(make_guard_reserve_call({key}, {limits}));
    std::vector<int64_t> rv;
    ReserveReply rr = reply_integers(r, rv) ? decode_reserve(rv, 1) : ReserveReply();
    if (!rr.valid) {
        std::cerr << "pairguard_test_tool: reserve failed: " << r.str << "\n";
        return 3;
    }
    if (rr.status != ReserveStatus::allowed) {
        std::cout << "refused " << static_cast<int>(rr.status) << "\n";
        return 1;
    }
    Reply s = store.run(make_guard_settle_call({key}, {limits}, Outcome::failure, rr.reservation));
    std::vector<int64_t> sv;
    std::vector<LockStart> locks;
    if (!reply_integers(s, sv) || !decode_settle(sv, 1, locks)) {
        std::cerr << "pairguard_test_tool: settle failed: " << s.str << "\n";
        return 3;
    }
    std::cout << "settled";
    for (int64_t v : sv) {
        std::cout << " " << v;
    }
    std::cout << "\n";
    return 0;
}

int session(SyncRedis& store, const KeyDeriver& keys, const RedisTarget& target,
            const std::vector<std::string>& args) {
    if (args.empty() || args.size() > 3) {
        return 2;
    }
    SessionCreate s;
    s.token = generate_token(auth_user_tag(keys, args[0]));
    std::string method = args.size() > 1 ? args[1] : "password";
    s.method = method == "haystack"  ? AuthMethod::haystack
               : method == "cli"       ? AuthMethod::cli
               : method == "challenge" ? AuthMethod::challenge
               : method == "refresh" ? AuthMethod::refresh
                                     : AuthMethod::password;
    s.ttl_ms = parse_duration_ms(args.size() > 2 ? args[2] : "1h").value_or(3600000);
    SessionCreated c = decode_session_create(store.run(make_session_create(keys, target.prefix, args[0], s)));
    if (!c.valid) {
        return 3;
    }
    if (!c.ok) {
        std::cout << "refused\n";
        return 1;
    }
    std::cout << s.token << "\n";
    return 0;
}

int session_get(SyncRedis& store, const KeyDeriver& keys, const RedisTarget& target,
                const std::vector<std::string>& args) {
    if (args.size() != 1) {
        return 2;
    }
    StoreCall call = make_session_get(keys, target.prefix, args[0]);
    if (call.script == nullptr) {
        std::cout << "none\n";
        return 1;
    }
    SessionInfo i = decode_session_get(store.run(call));
    if (!i.valid) {
        return 3;
    }
    if (!i.found) {
        std::cout << "none\n";
        return 1;
    }
    std::cout << "found " << i.user << " " << i.method << " " << i.expires_ms << "\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::string redis = "127.0.0.1:6379", policy;
    std::vector<std::string> args;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if ((a == "--redis" || a == "--policy") && i + 1 < argc) {
            (a == "--redis" ? redis : policy) = argv[++i];
        } else {
            args.push_back(a);
        }
    }
    if (args.size() < 2) {
        std::cerr << "usage: pairguard_test_tool [--redis ADDRESS] [--policy PARAMS] SECRET_FILE "
                     "request PLATFORM USER_ID [USER_NAME] | guard-fail POLICY KEY MAX_FAILURES LOCKOUT"
                     " | session USER [METHOD [TTL]] | session-get TOKEN\n";
        return 2;
    }
    try {
        RedisTarget target;
        PairingLimits limits;
        std::vector<std::string_view> words;
        for (size_t s = 0, e; s < policy.size(); s = e + 1) {
            e = policy.find(' ', s);
            if (e == std::string::npos) {
                e = policy.size();
            }
            if (e > s) {
                words.push_back(std::string_view(policy).substr(s, e - s));
            }
        }
        std::string err = parse_redis_target(redis, target);
        if (err.empty()) {
            err = parse_pairing_policy_args(words, limits);
        }
        if (!err.empty()) {
            std::cerr << "pairguard_test_tool: " << err << "\n";
            return 2;
        }
        KeyDeriver keys(read_secret_file(args[0]));
        SyncRedis store(target);
        std::vector<std::string> rest(args.begin() + 2, args.end());
        int rc = args[1] == "request" ? request(store, keys, target, limits, rest)
                 : args[1] == "guard-fail" ? guard_fail(store, keys, target, rest)
                 : args[1] == "session"     ? session(store, keys, target, rest)
                 : args[1] == "session-get" ? session_get(store, keys, target, rest)
                                           : 2;
        if (rc == 2) {
            std::cerr << "pairguard_test_tool: bad arguments\n";
        }
        return rc;
    } catch (const StoreUnreachable& e) {
        std::cerr << "pairguard_test_tool: " << e.what() << "\n";
        return 3;
    } catch (const std::exception& e) {
        std::cerr << "pairguard_test_tool: " << e.what() << "\n";
        return 2;
    }
}
