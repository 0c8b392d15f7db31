// SCRAM messages: client-first, client-final (checked against a real
// handshake), stored credentials and a stored handshake.
#include <fuzzer/FuzzedDataProvider.h>

#include <string>

#include "scram.hpp"

using namespace pairguard;

namespace {

const scram::Handshake& handshake() {
    static const scram::Handshake h = [] {
        scram::ClientFirst first;
        scram::parse_client_first("n,,n=user,r=rOprNGfwEbeRWgbNEkqO", first);
        scram::Credentials creds = scram::derive_credentials("pencil", "0123456789abcdef", 4096);
        return scram::start(first, creds, true, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", 1800000000000);
    }();
    return h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    int which = in.ConsumeIntegralInRange<int>(0, 4);
    std::string msg = in.ConsumeRemainingBytesAsString();
    switch (which) {
    case 0: {
        scram::ClientFirst first;
        if (scram::parse_client_first(msg, first) == scram::Error::none) {
            scram::Credentials c;
            c.salt = "0123456789abcdef";
            scram::Handshake h = scram::start(first, c, false, "nonce", 1);
            if (!scram::parse_handshake(scram::serialize(h))) {
                __builtin_trap();  // what we store we must read back
            }
        }
        break;
    }
    case 1: {
        scram::ClientFinal fin;
        (void)scram::parse_client_final(msg, fin);
        break;
    }
    case 2: {
        std::string server_final;
        if (scram::finish(handshake(), msg, 0, server_final) == scram::Error::none) {
            __builtin_trap();  // nobody forges a proof for "pencil" by chance
        }
        break;
    }
    case 3:
        if (auto c = scram::parse_credentials(msg)) {
            if (!scram::parse_credentials(scram::format_credentials(*c))) {
                __builtin_trap();
            }
        }
        break;
    default:
        (void)scram::parse_handshake(msg);
        break;
    }
    return 0;
}
