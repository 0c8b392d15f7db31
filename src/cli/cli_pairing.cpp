// pairguardctl's pairing and lock commands: approve, pending, clear-pending,
// approved, revoke, locks, unlock. The same scripts as the module's
// endpoints, so an approval counts toward the same lockouts.

#include <openssl/crypto.h>

#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "cli_command.hpp"
#include "encoding.hpp"
#include "keys.hpp"
#include "pairing.hpp"

namespace pairguard::cli {

namespace {

std::string need_platform(const std::string& raw) {
    auto p = normalize_platform(raw);
    if (!p) {
        throw UsageError("invalid platform \"" + printable(raw) + "\": 1-64 characters of a-z, 0-9, _ . -");
    }
    return *p;
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
    std::string type;   // "guard", "device" or "pairing"
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

// A guard key "PREFIX{TAG}" or a trusted device's "PREFIX{d:TAG}" (nothing
// after the brace; pairing keys are PREFIX{p:TAG}:...): its short label.
bool guard_key_label(const Context& c, const std::string& key, std::string& label, bool& device) {
    std::string tag = hash_tag(key);
    device = tag.rfind("d:", 0) == 0;
    std::string raw;
    if (key.size() != c.prefix().size() + tag.size() + 2 || key.compare(0, c.prefix().size(), c.prefix()) != 0
        || !base64url_decode(device ? tag.substr(2) : tag, raw) || raw.size() < 4) {
        return false;
    }
    KeyTag t{};
    std::copy(raw.begin(), raw.begin() + 4, t.begin());
    label = tag_label(t);
    return true;
}

// The trusted devices' keys whose label is `label` (the operator knows a
// device by nothing else; two devices sharing 32 bits of label are both
// named).
std::vector<std::string> device_keys(Context& c, const std::string& label) {
    std::vector<std::string> out;
    std::string match = glob_escape(c.prefix()) + "{d:*}";
    // (in a Redis Cluster, on every master)
    c.redis->scan(match, [&](const std::vector<std::string>& found) {
        for (const std::string& k : found) {
            std::string l;
            bool device = false;
            if (guard_key_label(c, k, l, device) && device && l == label) {
                out.push_back(k);
            }
        }
    });
    return out;
}

}  // namespace

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
            std::vector<bool> devices;
            for (const std::string& k : found) {
                std::string label;
                bool device = false;
                if (!guard_key_label(c, k, label, device)) {
                    continue;
                }
                keys.push_back(k);
                labels.push_back(label);
                devices.push_back(device);
            }
            auto states = inspect_guard_keys(c, keys);
            for (size_t i = 0; i < keys.size(); i++) {
                if (states[i].first > now) {
                    rows.push_back(LockRow{devices[i] ? "device" : "guard", labels[i], "",
                                           retry_after_seconds(states[i].first - now), states[i].second, true});
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
            out += r.type != "pairing" ? "\"label\":\"" + r.name + "\"" : "\"platform\":\"" + r.name + "\"";
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
    if (c.opt.device_flag) {
        expect_args(c, 1, 1);
        const std::string& label = c.opt.args[1];
        if (label.size() != 8 || label.find_first_not_of("0123456789abcdef") != std::string::npos) {
            throw UsageError("a device LABEL is 8 hex digits, as pairguardctl locks shows it");
        }
        int64_t n = 0;
        for (const std::string& key : device_keys(c, label)) {
            StoreCall dc = make_unlock_device(c.prefix(), key);
            auto d = decode_unlock(run(c, dc));
            if (!d) {
                bad_reply(dc);
            }
            n += *d;
        }
        if (c.opt.json) {
            std::cout << (n > 0 ? "{\"unlocked\":true}" : render_error("not_found")) << "\n";
        } else if (n > 0) {
            std::cout << "unlocked device " << label << "\n";
        } else {
            std::cerr << "pairguardctl: nothing stored for device " << label << "\n";
        }
        return n > 0 ? kDone : kRefused;
    }
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

}  // namespace pairguard::cli
