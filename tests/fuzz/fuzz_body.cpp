// Request bodies (src/core/body.*): JSON, urlencoded and multipart fields,
// under the Content-Types a client may send (or one it makes up).
#include <fuzzer/FuzzedDataProvider.h>

#include <string>

#include "body.hpp"

using namespace pairguard;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    std::string ct;
    switch (in.ConsumeIntegralInRange<int>(0, 6)) {
    case 0: ct = "application/json"; break;
    case 1: ct = "application/x-www-form-urlencoded"; break;
    case 2: ct = "multipart/form-data; boundary=XyZ"; break;
    case 3: ct = "multipart/form-data; boundary=\"a b\""; break;
    case 4: ct = ""; break;
    case 5: ct = "application/vnd.x+json; charset=utf-8"; break;
    default: ct = in.ConsumeRandomLengthString(96); break;
    }
    std::string body = in.ConsumeRemainingBytesAsString();
    BodyFields f = parse_body_fields(ct, body);
    if (f.status == BodyStatus::ok) {
        for (const auto& [name, value] : f.fields) {
            if (f.get(name) != value) {
                __builtin_trap();
            }
            (void)f.duplicated(name);
        }
    } else if (!f.fields.empty()) {
        __builtin_trap();  // a refused body gives no field to key on
    }
    (void)form_decode(body);
    return 0;
}
