#include "resp.hpp"

#include <charconv>
#include <cstring>

namespace pairguard {

namespace {

void append_number(std::string& out, uint64_t v) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
    (void) ec;
    out.append(buf, static_cast<size_t>(end - buf));
}

}  // namespace

void RespArgs::add(std::string_view s) {
    add_joined({s});
}

void RespArgs::add_joined(std::initializer_list<std::string_view> parts) {
    size_t len = 0;
    for (std::string_view p : parts) {
        len += p.size();
    }
    // a short argument (a number, a store key) is written in one append
    char buf[128];
    buf[0] = '$';
    auto [end, ec] = std::to_chars(buf + 1, buf + 24, len);
    (void) ec;
    *end++ = '\r';
    *end++ = '\n';
    size_t head = static_cast<size_t>(end - buf);
    if (head + len + 2 <= sizeof(buf)) {
        for (std::string_view p : parts) {
            if (!p.empty()) {
                std::memcpy(end, p.data(), p.size());
                end += p.size();
            }
        }
        *end++ = '\r';
        *end++ = '\n';
        data.append(buf, static_cast<size_t>(end - buf));
    } else {
        data.reserve(data.size() + head + len + 2);
        data.append(buf, head);
        for (std::string_view p : parts) {
            data.append(p);
        }
        data.append("\r\n", 2);
    }
    count++;
}

void RespArgs::add(int64_t v) {
    // "$N\r\n" then the digits: one append
    char digits[24];
    auto [dend, ec] = std::to_chars(digits, digits + sizeof(digits), v);
    (void) ec;
    size_t n = static_cast<size_t>(dend - digits);
    char buf[48];
    buf[0] = '$';
    char* p = buf + 1;
    if (n >= 10) {
        *p++ = static_cast<char>('0' + n / 10);
    }
    *p++ = static_cast<char>('0' + n % 10);
    *p++ = '\r';
    *p++ = '\n';
    std::memcpy(p, digits, n);
    p += n;
    *p++ = '\r';
    *p++ = '\n';
    data.append(buf, static_cast<size_t>(p - buf));
    count++;
}

void RespArgs::add_encoded(std::string_view encoded, size_t n) {
    data.append(encoded);
    count += n;
}

std::string resp_array_header(size_t n) {
    std::string out("*");
    append_number(out, n);
    out.append("\r\n", 2);
    return out;
}

RespArgs resp_evalsha(std::string_view sha1, size_t tail_count) {
    RespArgs a;
    a.data.reserve(64 + 48 * tail_count);
    a.data.push_back('*');
    append_number(a.data, 2 + tail_count);
    a.data.append("\r\n", 2);
    a.add("EVALSHA");
    a.add(sha1);
    a.count = 0;
    a.head = a.data.size();
    a.declared = tail_count;
    return a;
}

}  // namespace pairguard
