// Redis protocol (RESP) arguments, written straight into one buffer. hiredis'
// generic formatter costs several thousand instructions per command on the
// hot path; a command here is a few appends.
#pragma once

#include <cstdint>
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

// "*N\r\n" for a command of `n` arguments.
std::string resp_array_header(size_t n);

// Starts a whole "EVALSHA sha1 ..." in one buffer: the caller declares how
// many arguments follow (numkeys, keys, arguments) and then adds exactly those.
RespArgs resp_evalsha(std::string_view sha1, size_t tail_count);

}  // namespace pairguard
