// What the harnesses share: a fixed secret, and a Redis reply tree drawn
// from the fuzzer's bytes (any shape: the decoders must refuse, never trust).
#pragma once

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <string>
#include <vector>

#include "keys.hpp"
#include "pairing.hpp"

namespace pairguard::fuzz {

inline const KeyDeriver& keys() {
    static KeyDeriver k("0123456789abcdef0123456789abcdef");
    return k;
}

// Small integers and their edges more often than uniform 64-bit values, so
// that lengths, counts and times the decoders check are hit.
inline int64_t draw_integer(FuzzedDataProvider& in) {
    switch (in.ConsumeIntegralInRange<int>(0, 3)) {
    case 0:
        return in.ConsumeIntegralInRange<int64_t>(-4, 64);
    case 1:
        return in.PickValueInArray<int64_t>({INT64_MIN, INT64_MAX, INT64_MIN + 1, INT64_MAX - 1, -1, 0,
                                             1800000000000, 4294967296, 2147483648});
    default:
        return in.ConsumeIntegral<int64_t>();
    }
}

inline Reply draw_reply(FuzzedDataProvider& in, int depth = 0) {
    Reply r;
    int kind = in.ConsumeIntegralInRange<int>(0, depth < 4 ? 5 : 4);
    switch (kind) {
    case 0:
        return Reply::nil_reply();
    case 1:
        return Reply::of_integer(draw_integer(in));
    case 2:
        return Reply::of_string(in.ConsumeRandomLengthString(64));
    case 3:
        r.type = Reply::Type::status;
        r.str = in.ConsumeRandomLengthString(16);
        return r;
    case 4:
        return Reply::of_error(in.ConsumeRandomLengthString(16));
    default: {
        std::vector<Reply> e;
        size_t n = in.ConsumeIntegralInRange<size_t>(0, 24);
        for (size_t i = 0; i < n && in.remaining_bytes() > 0; i++) {
            e.push_back(draw_reply(in, depth + 1));
        }
        return Reply::of_array(std::move(e));
    }
    }
}

}  // namespace pairguard::fuzz
