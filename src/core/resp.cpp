#include "resp.hpp"

#include <charconv>
#include <algorithm>
#include <cstring>

namespace pairguard {

namespace {

void append_number(std::string& out, uint64_t v) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
    (void) ec;
    out.append(buf, static_cast<size_t>(end - buf));
}

// The bulk string of `v` ("$N\r\n", the digits, "\r\n") written backwards
// so that it ends at `end`; returns where it starts (at most 27 bytes
// before). to_chars and a second copy cost as much again.
char* integer_backwards(char* const end, int64_t v) {
    char* p = end;
    *--p = '\n';
    *--p = '\r';
    static constexpr char kPairs[] =
        "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
        "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
        "8081828384858687888990919293949596979899";
    uint64_t u = v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
    while (u >= 100) {  // two digits at a time
        size_t i = static_cast<size_t>(u % 100) * 2;
        u /= 100;
        *--p = kPairs[i + 1];
        *--p = kPairs[i];
    }
    if (u >= 10) {
        *--p = kPairs[u * 2 + 1];
        *--p = kPairs[u * 2];
    } else {
        *--p = static_cast<char>('0' + u);
    }
    if (v < 0) {
        *--p = '-';
    }
    size_t n = static_cast<size_t>(end - p) - 2;  // at most 20
    *--p = '\n';
    *--p = '\r';
    if (n >= 10) {
        *--p = static_cast<char>('0' + n % 10);
        *--p = static_cast<char>('0' + n / 10);
    } else {
        *--p = static_cast<char>('0' + n);
    }
    *--p = '$';
    return p;
}

// A digit's bulk string, "$1\r\nD\r\n" (a key count, a limit set's number).
constexpr size_t kDigitArgLen = 7;
void digit_arg(char* out, int64_t v) {
    std::memcpy(out, "$1\r\n0\r\n", kDigitArgLen);
    out[4] = static_cast<char>('0' + v);
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
    char buf[32];
    char* const end = buf + sizeof(buf);
    char* p = integer_backwards(end, v);
    data.append(p, static_cast<size_t>(end - p));
    count++;
}

RespWriter::RespWriter(std::string& out, size_t expect) : out_(out) {
    size_t used = out.size();
    out.resize(used + expect);
    p_ = out.data() + used;
    end_ = out.data() + out.size();
}

RespWriter::~RespWriter() {
    out_.resize(size());  // shorter: does not throw
}

void RespWriter::grow(size_t n) {
    size_t used = size();
    out_.resize(std::max(used + n, 2 * out_.size()));
    p_ = out_.data() + used;
    end_ = out_.data() + out_.size();
}

void RespWriter::integer(int64_t v) {
    if (v >= 0 && v <= 9) {
        if (kDigitArgLen > static_cast<size_t>(end_ - p_)) {
            grow(kDigitArgLen);
        }
        digit_arg(p_, v);
        p_ += kDigitArgLen;
        return;
    }
    char buf[32];
    char* const end = buf + sizeof(buf);
    char* p = integer_backwards(end, v);
    raw(std::string_view(p, static_cast<size_t>(end - p)));
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
    // "$7\r\nEVALSHA\r\n$40\r\nSHA1\r\n": the same few scripts every time;
    // the last one's text is kept (a worker is single-threaded, and so is
    // every other user of this core)
    static thread_local std::string last_sha1, last_text;
    if (last_text.empty() || sha1 != last_sha1) {
        RespArgs t;
        t.add("EVALSHA");
        t.add(sha1);
        last_sha1.assign(sha1);
        last_text = std::move(t.data);
    }
    RespArgs a;
    a.data.reserve(64 + 48 * tail_count);
    a.data.push_back('*');
    append_number(a.data, 2 + tail_count);
    a.data.append("\r\n", 2);
    a.data.append(last_text);
    a.count = 0;
    a.head = a.data.size();
    a.declared = tail_count;
    return a;
}

}  // namespace pairguard
