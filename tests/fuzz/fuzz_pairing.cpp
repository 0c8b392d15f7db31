// The pairing flow's outside input: codes an approver types, user ids
// (WhatsApp's several spellings), platform and user names, request and
// approve bodies, and the events other nodes publish.
#include <fuzzer/FuzzedDataProvider.h>

#include <string>

#include "auth_store.hpp"
#include "pairing.hpp"

using namespace pairguard;

namespace {

bool alphabet_only(const std::string& s) {
    for (char c : s) {
        if (kCodeAlphabet.find(c) == std::string_view::npos) {
            return false;
        }
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    int which = in.ConsumeIntegralInRange<int>(0, 6);
    std::string text = in.ConsumeRemainingBytesAsString();
    switch (which) {
    case 0:
        if (auto c = normalize_code(text)) {
            if (c->size() != kCodeLength || !alphabet_only(*c) || normalize_code(*c) != c) {
                __builtin_trap();
            }
        }
        break;
    case 1:
        for (const char* platform : {"whatsapp", "telegram"}) {
            if (auto id = normalize_user_id(platform, text)) {
                if (id->empty() || id->size() > kUserIdMaxBytes || normalize_user_id(platform, *id) != id) {
                    __builtin_trap();  // normalising twice changes nothing
                }
            }
        }
        break;
    case 2:
        if (auto p = normalize_platform(text)) {
            if (normalize_platform(*p) != p) {
                __builtin_trap();
            }
        }
        if (auto n = normalize_user_name(text)) {
            if (normalize_user_name(*n) != n) {
                __builtin_trap();
            }
        }
        break;
    case 3: {
        PairingRequest req;
        (void)parse_request_body(text, req);
        ApproveInput ap;
        (void)parse_approve_body(text, ap);
        AuthInput au;
        (void)parse_auth_body(text, au);
        break;
    }
    case 4:
        (void)parse_event(text);
        (void)parse_auth_event(text);
        break;
    case 5:
        (void)code_id(text);
        (void)hash_tag(text);
        break;
    default:
        (void)render_user("whatsapp", text, text);
        (void)render_invalid_request(text);
        break;
    }
    return 0;
}
