// Redis protocol (RESP) arguments, written straight into one buffer. hiredis'
// generic formatter costs several thousand instructions per command on the
// hot path; a command here is a few appends.
#pragma once

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <string_view>

namespace pairguard {

struct RespArgs {
    std::string data;  // bulk strings, back to back
    size_t count = 0;
    size_t head = 0;      // bytes before the counted arguments (resp_evalsha)
    size_t declared = 0;  // with a head: the count it promised

    void add(std::string_view s);
    // One bulk string made of `parts` written one after the other.
    void add_joined(std::initializer_list<std::string_view> parts);
    void add(int64_t v);
    // Appends arguments encoded earlier (e.g. a policy's constant limits).
    void add_encoded(std::string_view encoded, size_t n);
};

// RESP text written at the end of `out` through a pointer, for the hot
// path's buffers: room for `expect` more bytes is made at once, every write
// checks it (and makes more when the estimate was short), and the writer's
// end cuts `out` to what was written. std::string's append costs about 30
// instructions a call on top of the copy; a guarded request makes about 18.
class RespWriter {
public:
    RespWriter(std::string& out, size_t expect);
    ~RespWriter();
    RespWriter(const RespWriter&) = delete;
    RespWriter& operator=(const RespWriter&) = delete;

    void raw(std::string_view s) {
        if (s.size() > static_cast<size_t>(end_ - p_)) {
            grow(s.size());
        }
        if (!s.empty()) {
            std::memcpy(p_, s.data(), s.size());
            p_ += s.size();
        }
    }
    // One bulk string: `v` in decimal.
    void integer(int64_t v);
    // Bytes of `out` written so far, its earlier content included.
    size_t size() const { return static_cast<size_t>(p_ - out_.data()); }

private:
    void grow(size_t n);

    std::string& out_;
    char* p_;
    char* end_;
};

// "*N\r\n" for a command of `n` arguments.
std::string resp_array_header(size_t n);

// Starts a whole "EVALSHA sha1 ..." in one buffer: the caller declares how
// many arguments follow (numkeys, keys, arguments) and then adds exactly those.
RespArgs resp_evalsha(std::string_view sha1, size_t tail_count);

}  // namespace pairguard
