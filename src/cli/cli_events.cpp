#include "cli_events.hpp"

#include <csignal>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <string>
#include <vector>

#include "cli_store.hpp"
#include "events.hpp"

namespace pairguard::cli {

namespace {

const char kEventsUsage[] =
    "usage: pairguardctl [--redis ADDRESS] [--prefix STR] events [--follow] [--json] [--count N]\n"
    "  the most recent N events (default 20, oldest first) of the store's event\n"
    "  stream; --follow then waits for new ones (until SIGINT or SIGTERM);\n"
    "  --json prints each as one JSON object a line\n";

volatile std::sig_atomic_t stop_requested = 0;

void on_stop(int) {
    stop_requested = 1;
}

std::string utc(int64_t ms) {
    time_t s = static_cast<time_t>(ms / 1000);
    struct tm tm {};
    gmtime_r(&s, &tm);
    char buf[32];
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

// "type key=value ..." from the JSON (flat, no escapes: labels and numbers)
std::string plain(const std::string& json, int64_t ms) {
    std::string out = utc(ms);
    std::string body = json.substr(1, json.size() - 2);
    size_t i = 0;
    while (i < body.size()) {
        size_t colon = body.find(':', i);
        size_t comma = body.find(',', colon);
        if (colon == std::string::npos) {
            break;
        }
        std::string k = body.substr(i + 1, colon - i - 2);
        std::string v = body.substr(colon + 1, comma == std::string::npos ? std::string::npos : comma - colon - 1);
        if (!v.empty() && v.front() == '"') {
            v = v.substr(1, v.size() - 2);
        }
        if (k == "type") {
            out += " " + v;
        } else if (k != "ts_ms") {
            out += " " + k + "=" + v;
        }
        if (comma == std::string::npos) {
            break;
        }
        i = comma + 1;
    }
    return out;
}

// Prints the entries of an XRANGE/XREAD entry list; returns the last id.
std::string print_entries(const Reply& entries, bool json, std::string last) {
    if (entries.type != Reply::Type::array) {
        return last;
    }
    for (const Reply& e : entries.elements) {
        if (e.type != Reply::Type::array || e.elements.size() != 2 || e.elements[0].type != Reply::Type::string) {
            continue;
        }
        last = e.elements[0].str;
        const Reply& fields = e.elements[1];
        for (size_t i = 0; i + 1 < fields.elements.size(); i += 2) {
            if (fields.elements[i].str != "e") {
                continue;
            }
            int64_t ms = stream_id_ms(last);
            auto j = event_json(fields.elements[i + 1].str, ms);
            if (j) {
                std::cout << (json ? *j : plain(*j, ms)) << "\n";
            }
        }
    }
    std::cout.flush();
    return last;
}

}  // namespace

int events_main(int argc, char** argv) {
    std::string redis = getenv("PAIRGUARD_REDIS") != nullptr ? getenv("PAIRGUARD_REDIS") : "";
    std::string prefix;
    bool prefix_set = false, follow = false, json = false;
    long count = 20;
    auto usage = [](const std::string& why) {
        std::cerr << "pairguardctl: " << why << "\n" << kEventsUsage;
        return 2;
    };
    if (getenv("PAIRGUARD_PREFIX") != nullptr && *getenv("PAIRGUARD_PREFIX") != '\0') {
        prefix = getenv("PAIRGUARD_PREFIX");
        prefix_set = true;
    }
    bool seen_cmd = false;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
        if (a == "events" && !seen_cmd) {
            seen_cmd = true;
        } else if (a == "--follow") {
            follow = true;
        } else if (a == "--json") {
            json = true;
        } else if (a == "--count") {
            const char* v = value();
            char* end = nullptr;
            count = v != nullptr ? strtol(v, &end, 10) : 0;
            if (v == nullptr || *end != '\0' || count < 0 || count > 10000) {
                return usage("--count takes a number from 0 to 10000");
            }
        } else if (a == "--redis" || a == "--prefix" || a == "--secret-file" || a == "--policy" || a == "--auth-policy") {
            const char* v = value();
            if (v == nullptr) {
                return usage(a + " needs a value");
            }
            if (a == "--redis") {
                redis = v;
            } else if (a == "--prefix") {
                prefix = v;
                prefix_set = true;
            }  // the others are accepted and unused: events need no secret
        } else if (a == "--help") {
            std::cout << kEventsUsage;
            return 0;
        } else {
            return usage("unknown argument \"" + a + "\"");
        }
    }
    RedisTarget target;
    std::string err = parse_redis_target(redis.empty() ? "127.0.0.1:6379" : redis, target);
    if (!err.empty()) {
        return usage("--redis: " + err);
    }
    if (target.password.empty() && getenv("PAIRGUARD_REDIS_PASSWORD") != nullptr) {
        target.password = getenv("PAIRGUARD_REDIS_PASSWORD");
    }
    if (prefix_set) {
        target.prefix = prefix;
    }
    // XREAD blocks at most 1 s at a time, well inside the command timeout
    if (target.timeout_ms < 3000) {
        target.timeout_ms = 3000;
    }
    const std::string stream = events_stream(target.prefix);

    try {
        SyncRedis r(target);
        // the most recent `count`, printed oldest first
        std::string last = "$";
        Reply recent = r.command({"XREVRANGE", stream, "+", "-", "COUNT", std::to_string(count)});
        if (recent.type == Reply::Type::error) {
            std::cerr << "pairguardctl: " << recent.str << "\n";
            return 3;
        }
        if (recent.type == Reply::Type::array && !recent.elements.empty()) {
            std::vector<Reply> ordered(recent.elements.rbegin(), recent.elements.rend());
            last = print_entries(Reply::of_array(std::move(ordered)), json, last);
        }
        if (!follow) {
            return 0;
        }
        if (last == "$") {
            // nothing listed: start from what the stream holds now
            Reply top = r.command({"XREVRANGE", stream, "+", "-", "COUNT", "1"});
            last = "0-0";
            if (top.type == Reply::Type::array && !top.elements.empty() && top.elements[0].type == Reply::Type::array
                && !top.elements[0].elements.empty()) {
                last = top.elements[0].elements[0].str;
            }
        }
        struct sigaction sa {};
        sa.sa_handler = on_stop;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, nullptr);
        sigaction(SIGTERM, &sa, nullptr);
        while (stop_requested == 0) {
            Reply got;
            try {
                got = r.command({"XREAD", "BLOCK", "1000", "STREAMS", stream, last});
            } catch (const StoreUnreachable&) {
                if (stop_requested != 0) {
                    break;
                }
                throw;
            }
            if (got.type == Reply::Type::error) {
                std::cerr << "pairguardctl: " << got.str << "\n";
                return 3;
            }
            // [[stream, [entries...]]]
            if (got.type == Reply::Type::array && !got.elements.empty() && got.elements[0].elements.size() == 2) {
                last = print_entries(got.elements[0].elements[1], json, last);
            }
        }
        return 0;
    } catch (const StoreUnreachable& e) {
        if (stop_requested != 0) {
            return 0;
        }
        std::cerr << "pairguardctl: " << e.what() << "\n";
        return 3;
    }
}

}  // namespace pairguard::cli
