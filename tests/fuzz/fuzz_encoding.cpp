// base64 (standard and URL-safe, lenient decoder), base64url and UTF-8
// checks: decoders refuse or round-trip.
#include <fuzzer/FuzzedDataProvider.h>

#include <string>

#include "encoding.hpp"
#include "keys.hpp"

using namespace pairguard;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);

    std::string out;
    if (base64_decode_lenient(text, out)) {
        std::string again;
        if (!base64_decode_lenient(base64(out), again) || again != out) {
            __builtin_trap();
        }
    }
    out.clear();
    if (base64url_decode(text, out)) {
        if (base64url(reinterpret_cast<const uint8_t*>(out.data()), out.size()) != text) {
            __builtin_trap();  // one spelling per byte string
        }
    }
    std::string enc = base64(text);
    std::string dec;
    if (!base64_decode_lenient(enc, dec) || dec != text) {
        __builtin_trap();
    }
    bool any = utf8_valid(text, false);
    if (utf8_text(text) && !any) {
        __builtin_trap();
    }
    return 0;
}
