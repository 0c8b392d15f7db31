#include "resp.hpp"

#include <charconv>

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
    char head[24];
    head[0] = '$';
    auto [end, ec] = std::to_chars(head + 1, head + sizeof(head) - 2, len);
    (void) ec;
    *end++ = '\r';
    *end++ = '\n';
    data.append(head, static_cast<size_t>(end - head));
    for (std::string_view p : parts) {
        data.append(p);
    }
    data.append("\r\n", 2);
    count++;
}

void RespArgs::add(int64_t v) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
    (void) ec;
    add(std::string_view(buf, static_cast<size_t>(end - buf)));
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
