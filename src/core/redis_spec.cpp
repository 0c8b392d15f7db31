#include "redis_spec.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "duration.hpp"

namespace pairguard {

namespace {

bool parse_int(std::string_view s, int64_t& out) {
    if (s.empty() || s.size() > 9) {
        return false;
    }
    int64_t v = 0;
    for (char ch : s) {
        if (ch < '0' || ch > '9') {
            return false;
        }
        v = v * 10 + (ch - '0');
    }
    out = v;
    return true;
}

std::string read_password(const std::string& path, std::string& out) {
    struct stat st;
    if (stat(path.c_str(), &st) != 0) {
        return "cannot read \"" + path + "\": " + std::strerror(errno);
    }
    if (!S_ISREG(st.st_mode)) {
        return "\"" + path + "\" is not a file";
    }
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        return "cannot read \"" + path + "\": " + std::strerror(errno);
    }
    std::string text;
    try {
        text.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    } catch (const std::exception&) {
        return "cannot read \"" + path + "\"";
    }
    if (!text.empty() && text.back() == '\n') {
        text.pop_back();
        if (!text.empty() && text.back() == '\r') {
            text.pop_back();
        }
    }
    if (text.empty()) {
        return "\"" + path + "\" is empty";
    }
    out = std::move(text);
    return {};
}

bool parse_endpoint_list(std::string_view text, std::vector<RedisEndpoint>& out) {
    size_t i = 0;
    while (i <= text.size()) {
        size_t comma = text.find(',', i);
        if (comma == std::string_view::npos) {
            comma = text.size();
        }
        RedisEndpoint e;
        if (!parse_redis_endpoint(text.substr(i, comma - i), e, false)) {
            return false;
        }
        out.push_back(std::move(e));
        i = comma + 1;
    }
    return !out.empty();
}

}  // namespace

std::string RedisEndpoint::label() const {
    if (!unix_path.empty()) {
        return "unix:" + unix_path;
    }
    if (host.find(':') != std::string::npos) {
        return "[" + host + "]:" + std::to_string(port);
    }
    return host + ":" + std::to_string(port);
}

bool parse_redis_endpoint(std::string_view addr, RedisEndpoint& out, bool allow_unix) {
    if (addr.rfind("unix:", 0) == 0) {
        if (!allow_unix || addr.size() == 5) {
            return false;
        }
        out.unix_path = std::string(addr.substr(5));
        return true;
    }
    std::string_view host = addr, port;
    if (!addr.empty() && addr[0] == '[') {
        size_t close = addr.find(']');
        if (close == std::string_view::npos) {
            return false;
        }
        host = addr.substr(1, close - 1);
        if (close + 1 < addr.size()) {
            if (addr[close + 1] != ':') {
                return false;
            }
            port = addr.substr(close + 2);
            if (port.empty()) {
                return false;
            }
        }
    } else if (addr.find(':') != std::string_view::npos) {
        if (addr.find(':') != addr.rfind(':')) {
            return false;  // a bare IPv6 address needs brackets
        }
        host = addr.substr(0, addr.find(':'));
        port = addr.substr(addr.find(':') + 1);
        if (port.empty()) {
            return false;
        }
    }
    int64_t p = 6379;
    if (host.empty() || (!port.empty() && (!parse_int(port, p) || p < 1 || p > 65535))) {
        return false;
    }
    for (char ch : host) {
        if (ch == '/' || ch == ',' || ch == ' ' || ch == '\t' || static_cast<unsigned char>(ch) < 0x21) {
            return false;
        }
    }
    out.host = std::string(host);
    out.port = static_cast<int>(p);
    out.unix_path.clear();
    return true;
}

std::vector<std::string_view> split_redis_words(std::string_view spec) {
    std::vector<std::string_view> words;
    size_t i = 0;
    while (i < spec.size()) {
        while (i < spec.size() && (spec[i] == ' ' || spec[i] == '\t')) {
            i++;
        }
        size_t start = i;
        while (i < spec.size() && spec[i] != ' ' && spec[i] != '\t') {
            i++;
        }
        if (i > start) {
            words.push_back(spec.substr(start, i - start));
        }
    }
    return words;
}

std::string parse_redis_spec(std::string_view spec, RedisSpec& out) {
    return parse_redis_spec(split_redis_words(spec), out);
}

std::string parse_redis_spec(const std::vector<std::string_view>& words, RedisSpec& out) {
    RedisSpec r;
    if (words.empty()) {
        return "empty Redis address";
    }
    std::string password_file, sentinel_password_file;
    bool have_address = false;
    bool tls_detail = false;
    for (size_t w = 0; w < words.size(); w++) {
        std::string_view arg = words[w];
        size_t eq = arg.find('=');
        std::string_view name = arg.substr(0, eq == std::string_view::npos ? arg.size() : eq);
        std::string_view value = eq == std::string_view::npos ? std::string_view() : arg.substr(eq + 1);
        int64_t n = 0;
        if (w == 0 && eq == std::string_view::npos) {
            RedisEndpoint e;
            if (!parse_redis_endpoint(arg, e)) {
                return "invalid address \"" + std::string(arg) + "\"";
            }
            r.endpoints.push_back(std::move(e));
            have_address = true;
        } else if (arg == "tls") {
            r.tls.on = true;
        } else if (eq == std::string_view::npos) {
            return "invalid parameter \"" + std::string(arg) + "\"";
        } else if (w == 0 && (name == "sentinel" || name == "cluster")) {
            if (!parse_endpoint_list(value, r.endpoints)) {
                return "invalid address list in \"" + std::string(name) + "\"";
            }
            r.topology = name == "sentinel" ? RedisTopology::sentinel : RedisTopology::cluster;
            have_address = true;
        } else if (name == "master" && !value.empty() && value.find_first_of(" \t") == std::string_view::npos) {
            r.master_name = std::string(value);
        } else if (name == "password" && !value.empty()) {
            r.password = std::string(value);
        } else if (name == "password_file" && !value.empty()) {
            password_file = std::string(value);
        } else if (name == "user" && !value.empty()) {
            r.user = std::string(value);
        } else if (name == "sentinel_user" && !value.empty()) {
            r.sentinel_user = std::string(value);
        } else if (name == "sentinel_password" && !value.empty()) {
            r.sentinel_password = std::string(value);
        } else if (name == "sentinel_password_file" && !value.empty()) {
            sentinel_password_file = std::string(value);
        } else if (name == "db" && parse_int(value, n) && n < 1 << 20) {
            r.db = static_cast<int>(n);
        } else if (name == "timeout" && parse_duration_ms(value).value_or(0) > 0) {
            r.timeout_ms = *parse_duration_ms(value);
        } else if (name == "prefix" && !value.empty()) {
            r.prefix = std::string(value);
        } else if (name == "tls_verify" && (value == "on" || value == "off")) {
            r.tls.verify = value == "on";
            tls_detail = true;
        } else if (name == "tls_trusted_certificate" && !value.empty()) {
            r.tls.trusted_certificate = std::string(value);
            tls_detail = true;
        } else if (name == "tls_server_name" && !value.empty()) {
            r.tls.server_name = std::string(value);
            tls_detail = true;
        } else if (name == "tls_certificate" && !value.empty()) {
            r.tls.certificate = std::string(value);
            tls_detail = true;
        } else if (name == "tls_certificate_key" && !value.empty()) {
            r.tls.certificate_key = std::string(value);
            tls_detail = true;
        } else {
            // never echo a value that may be a password
            return "invalid parameter \"" + std::string(name) + "\"";
        }
    }
    if (!have_address) {
        return "no address (HOST:PORT, unix:PATH, sentinel=... or cluster=...) first";
    }
    if (r.topology == RedisTopology::sentinel && r.master_name.empty()) {
        return "\"sentinel\" needs \"master=NAME\"";
    }
    if (r.topology != RedisTopology::sentinel
        && (!r.master_name.empty() || !r.sentinel_user.empty() || !r.sentinel_password.empty()
            || !sentinel_password_file.empty())) {
        return "\"master\" and \"sentinel_*\" need \"sentinel=...\"";
    }
    if (r.topology == RedisTopology::cluster && r.db != 0) {
        return "Redis Cluster has only database 0";
    }
    if (tls_detail && !r.tls.on) {
        return "\"tls_*\" parameters need \"tls\"";
    }
    if (r.tls.on && r.endpoints.size() == 1 && !r.endpoints[0].unix_path.empty()) {
        return "\"tls\" with a unix socket";
    }
    if (r.tls.certificate.empty() != r.tls.certificate_key.empty()) {
        return "\"tls_certificate\" and \"tls_certificate_key\" go together";
    }
    if (!password_file.empty()) {
        if (!r.password.empty()) {
            return "both \"password\" and \"password_file\"";
        }
        std::string err = read_password(password_file, r.password);
        if (!err.empty()) {
            return "password_file: " + err;
        }
    }
    if (!sentinel_password_file.empty()) {
        if (!r.sentinel_password.empty()) {
            return "both \"sentinel_password\" and \"sentinel_password_file\"";
        }
        std::string err = read_password(sentinel_password_file, r.sentinel_password);
        if (!err.empty()) {
            return "sentinel_password_file: " + err;
        }
    }
    if (!r.user.empty() && r.password.empty()) {
        return "\"user\" needs a password";
    }
    if (!r.sentinel_user.empty() && r.sentinel_password.empty()) {
        return "\"sentinel_user\" needs a sentinel password";
    }
    out = std::move(r);
    return {};
}

namespace {

struct Crc16Table {
    uint16_t v[256];
    constexpr Crc16Table() : v() {
        for (int i = 0; i < 256; i++) {
            uint16_t crc = static_cast<uint16_t>(i << 8);
            for (int b = 0; b < 8; b++) {
                crc = (crc & 0x8000) != 0 ? static_cast<uint16_t>((crc << 1) ^ 0x1021) : static_cast<uint16_t>(crc << 1);
            }
            v[i] = crc;
        }
    }
    constexpr uint16_t operator[](size_t i) const { return v[i]; }
};
constexpr Crc16Table kCrc16Table;

}  // namespace

uint16_t cluster_key_slot(std::string_view key) {
    size_t open = key.find('{');
    if (open != std::string_view::npos) {
        size_t close = key.find('}', open + 1);
        if (close != std::string_view::npos && close > open + 1) {
            key = key.substr(open + 1, close - open - 1);
        }
    }
    // CRC16/XMODEM (polynomial 0x1021, initial 0), as Redis Cluster
    // specifies, a byte at a time from a table built at compile time
    uint16_t crc = 0;
    for (unsigned char ch : key) {
        crc = static_cast<uint16_t>((crc << 8) ^ kCrc16Table[((crc >> 8) ^ ch) & 0xff]);
    }
    return crc & (kClusterSlots - 1);
}

RedisRedirect parse_redis_redirect(std::string_view error, uint16_t& slot, RedisEndpoint& to) {
    RedisRedirect kind;
    if (error.rfind("MOVED ", 0) == 0) {
        kind = RedisRedirect::moved;
        error.remove_prefix(6);
    } else if (error.rfind("ASK ", 0) == 0) {
        kind = RedisRedirect::ask;
        error.remove_prefix(4);
    } else {
        return RedisRedirect::none;
    }
    size_t sp = error.find(' ');
    int64_t s = 0;
    if (sp == std::string_view::npos || !parse_int(error.substr(0, sp), s) || s >= kClusterSlots) {
        return RedisRedirect::none;
    }
    std::string_view addr = error.substr(sp + 1);
    while (!addr.empty() && (addr.back() == '\r' || addr.back() == '\n' || addr.back() == ' ')) {
        addr.remove_suffix(1);
    }
    // Redis 7 may leave the host out (":6381"): the node that answered
    RedisEndpoint e;
    size_t colon = addr.rfind(':');
    if (colon == 0) {
        int64_t p = 0;
        if (!parse_int(addr.substr(1), p) || p < 1 || p > 65535) {
            return RedisRedirect::none;
        }
        e.port = static_cast<int>(p);
    } else if (colon == std::string_view::npos || addr.find(':') != colon) {
        // IPv6 "host:port" comes without brackets in MOVED
        if (colon == std::string_view::npos) {
            return RedisRedirect::none;
        }
        int64_t p = 0;
        if (!parse_int(addr.substr(colon + 1), p) || p < 1 || p > 65535) {
            return RedisRedirect::none;
        }
        e.host = std::string(addr.substr(0, colon));
        e.port = static_cast<int>(p);
    } else if (!parse_redis_endpoint(addr, e, false)) {
        return RedisRedirect::none;
    }
    slot = static_cast<uint16_t>(s);
    to = std::move(e);
    return kind;
}

}  // namespace pairguard
