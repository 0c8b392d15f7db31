// Redis protocol (RESP) arguments, written straight into one buffer. hiredis'
// generic formatter costs several thousand instructions per command on the
// hot path; a command here is a few appends.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pairguard {

struct RespArgs {
    std::string data;  // bulk strings, back to back
    size_t count = 0;

    void add(std::string_view s);
    void add(int64_t v);
    // Appends arguments encoded earlier (e.g. a policy's constant limits).
    void add_encoded(std::string_view encoded, size_t n);
};

// "*N\r\n" for a command of `n` arguments.
std::string resp_array_header(size_t n);

}  // namespace pairguard
