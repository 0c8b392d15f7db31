// Configuration input: durations, key templates and the parameter lists of
// pairguard_policy, pairguard_pairing_policy and pairguard_auth_policy.
#include <fuzzer/FuzzedDataProvider.h>

#include <string>
#include <string_view>
#include <vector>

#include "auth_store.hpp"
#include "duration.hpp"
#include "key_template.hpp"
#include "pairing.hpp"
#include "policy.hpp"

using namespace pairguard;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    int which = in.ConsumeIntegralInRange<int>(0, 4);
    std::string text = in.ConsumeRemainingBytesAsString();

    // nginx hands directives their arguments split on whitespace
    std::vector<std::string_view> args;
    std::string_view rest(text);
    while (!rest.empty()) {
        size_t sp = rest.find(' ');
        args.push_back(rest.substr(0, sp));
        rest = sp == std::string_view::npos ? std::string_view() : rest.substr(sp + 1);
    }

    switch (which) {
    case 0: {
        auto ms = parse_duration_ms(text);
        if (ms && *ms < 0) {
            __builtin_trap();
        }
        break;
    }
    case 1: {
        std::vector<KeyPart> parts;
        std::string err = parse_key_template(text, parts);
        if (err.empty()) {
            std::string back;
            for (const KeyPart& p : parts) {
                if (p.variable && p.text.empty()) {
                    __builtin_trap();
                }
            }
        }
        break;
    }
    case 2: {
        PolicySpec spec;
        if (parse_policy_args(args, spec).empty()) {
            for (int64_t n = 0; n < 4; n++) {
                (void)lockout_duration_ms(spec.limits, n);
            }
            (void)lockout_duration_ms(spec.limits, 1000000);
        }
        break;
    }
    case 3: {
        PairingLimits limits;
        (void)parse_pairing_policy_args(args, limits);
        break;
    }
    default: {
        AuthPolicy policy;
        (void)parse_auth_policy_args(args, policy);
        break;
    }
    }
    return 0;
}
