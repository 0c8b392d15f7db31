#include "cli_command.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <iostream>

namespace pairguard::cli {

namespace {

// Display width of UTF-8 text, counting code points (good enough for names).
size_t width(std::string_view s) {
    size_t n = 0;
    for (char c : s) {
        n += (static_cast<unsigned char>(c) & 0xc0) != 0x80;
    }
    return n;
}

}  // namespace

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

std::string printable(std::string_view s) {
    std::string out;
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        out.push_back(u < 0x20 || u == 0x7f ? '?' : c);
    }
    return out.empty() ? "-" : out;
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

int64_t redis_now_ms(Context& c) {
    Reply t = c.redis->command({"TIME"});
    if (t.type != Reply::Type::array || t.elements.size() != 2) {
        throw StoreUnreachable("redis: unexpected reply to TIME");
    }
    return std::stoll(t.elements[0].str) * 1000 + std::stoll(t.elements[1].str) / 1000;
}

}  // namespace pairguard::cli
