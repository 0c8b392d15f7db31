#include "events.hpp"

#include <vector>

#include "keys.hpp"

namespace pairguard {

std::string events_stream(std::string_view prefix) {
    return std::string(prefix) + "{events}-stream";
}

namespace {

std::vector<std::string_view> split_bars(std::string_view s) {
    std::vector<std::string_view> out;
    size_t start = 0;
    for (;;) {
        size_t bar = s.find('|', start);
        out.push_back(s.substr(start, bar == std::string_view::npos ? bar : bar - start));
        if (bar == std::string_view::npos) {
            return out;
        }
        start = bar + 1;
    }
}

// First 8 hex digits of a base64url tag; empty when it is not one.
std::string label(std::string_view tag) {
    std::string raw;
    if (tag.size() < 8 || tag.size() > 64 || !base64url_decode(tag, raw) || raw.size() < 4) {
        return {};
    }
    static const char hex[] = "0123456789abcdef";
    std::string out;
    for (size_t i = 0; i < 4; i++) {
        auto b = static_cast<unsigned char>(raw[i]);
        out.push_back(hex[b >> 4]);
        out.push_back(hex[b & 0xf]);
    }
    return out;
}

bool number(std::string_view s) {
    if (s.empty() || s.size() > 15) {
        return false;
    }
    for (char ch : s) {
        if (ch < '0' || ch > '9') {
            return false;
        }
    }
    return true;
}

// the scope letters of a store key's hash tag, as JSON
const char* scope_name(std::string_view s) {
    if (s == "p") return "platform";
    if (s == "g") return "guard";
    if (s == "d") return "device";
    if (s == "a") return "login_user";
    if (s == "aa") return "login_address";
    return nullptr;
}

// what a scope's label is called
const char* scope_field(std::string_view s) {
    if (s == "p") return "platform";
    if (s == "a") return "user";
    if (s == "aa") return "address";
    if (s == "d") return "device";
    return "key";
}

}  // namespace

int64_t stream_id_ms(std::string_view id) {
    size_t dash = id.find('-');
    std::string_view ms = id.substr(0, dash);
    return number(ms) ? std::stoll(std::string(ms)) : 0;
}

std::optional<std::string> event_json(std::string_view payload, int64_t ts_ms) {
    std::vector<std::string_view> f = split_bars(payload);
    std::string out = "{\"type\":\"";
    auto field = [&out](const char* name, const std::string& value) {
        out += ",\"";
        out += name;
        out += "\":\"" + value + "\"";
    };
    auto integer = [&out](const char* name, std::string_view value) {
        out += ",\"";
        out += name;
        out += "\":" + std::string(value);
    };
    auto start = [&](const char* type) {
        out += type;
        out += "\"";
        if (ts_ms > 0) {
            integer("ts_ms", std::to_string(ts_ms));
        }
    };
    std::string_view kind = f[0];
    if ((kind == "approved" || kind == "revoked") && f.size() == 3) {
        std::string p = label(f[1]), u = label(f[2]);
        if (p.empty() || u.empty()) return std::nullopt;
        start(kind == "approved" ? "pairing_approved" : "pairing_revoked");
        field("platform", p);
        field("user", u);
    } else if (kind == "requested" && f.size() == 4 && f[1] == "p") {
        std::string p = label(f[2]), u = label(f[3]);
        if (p.empty() || u.empty()) return std::nullopt;
        start("pairing_request");
        field("platform", p);
        field("user", u);
    } else if (kind == "wrong_approval" && f.size() == 4 && f[1] == "p" && number(f[3])) {
        std::string p = label(f[2]);
        if (p.empty()) return std::nullopt;
        start("wrong_approval");
        field("platform", p);
        integer("codes_burned", f[3]);
    } else if ((kind == "locked" && f.size() == 4 && number(f[3])) || ((kind == "lock_ended" || kind == "unlocked") && f.size() == 3)) {
        const char* scope = scope_name(f[1]);
        std::string l = label(f[2]);
        if (scope == nullptr || l.empty()) return std::nullopt;
        start(kind == "locked" ? "lock" : kind == "lock_ended" ? "lock_end" : "unlock");
        field("scope", scope);
        field(scope_field(f[1]), l);
        if (kind == "locked") {
            integer("lock_ms", f[3]);
        }
    } else if (kind == "revoked_user" && f.size() == 2) {
        std::string u = label(f[1]);
        if (u.empty()) return std::nullopt;
        start("sessions_revoked");
        field("user", u);
    } else if (kind == "revoked_session" && f.size() == 3) {
        std::string u = label(f[1]);
        if (u.empty()) return std::nullopt;
        start("session_revoked");
        field("user", u);
    } else {
        return std::nullopt;
    }
    out += "}";
    return out;
}

}  // namespace pairguard
