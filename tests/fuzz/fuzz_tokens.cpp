// Tokens a client presents (sessions, Haystack handshake tokens), user
// names, and stored Argon2id hashes (a tampered store must not make a worker
// thread burn seconds).
#include <fuzzer/FuzzedDataProvider.h>

#include <string>

#include "fuzz_common.hpp"
#include "password.hpp"
#include "session.hpp"

using namespace pairguard;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    int which = in.ConsumeIntegralInRange<int>(0, 2);
    std::string text = in.ConsumeRemainingBytesAsString();
    switch (which) {
    case 0:
        if (auto tag = token_user_tag(text)) {
            if (text.size() != kTokenChars || tag->size() != kUserTagChars) {
                __builtin_trap();
            }
        }
        (void)valid_auth_user(text);
        break;
    case 1:
        if (check_handshake_token(fuzz::keys(), text, 0)) {
            __builtin_trap();  // a MAC nobody computed
        }
        break;
    default:
        if (auto info = parse_password_hash(text)) {
            Argon2Limits lim;
            if (info->params.m_kib > lim.max_m_kib || info->params.t > lim.max_t || info->params.p > lim.max_p) {
                __builtin_trap();
            }
            (void)needs_rehash(text);
        }
        break;
    }
    return 0;
}
