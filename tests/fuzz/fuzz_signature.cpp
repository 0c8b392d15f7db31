// Public keys (PEM) and signatures (DER for ECDSA, raw for Ed25519, both
// base64 on the wire) as verify receives them.
#include <fuzzer/FuzzedDataProvider.h>

#include <optional>
#include <string>

#include "login.hpp"
#include "signature.hpp"

using namespace pairguard;

namespace {

const PublicKey& ecdsa() {
    static const PublicKey k = *PublicKey::from_pem(login::dummy_ecdsa_pem());
    return k;
}
const PublicKey& ed25519() {
    static const PublicKey k = *PublicKey::from_pem(login::dummy_ed25519_pem());
    return k;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    int which = in.ConsumeIntegralInRange<int>(0, 3);
    std::string text = in.ConsumeRemainingBytesAsString();
    switch (which) {
    case 0: {
        std::string err;
        if (auto k = PublicKey::from_pem(text, &err)) {
            std::string pem = k->to_pem();
            auto again = PublicKey::from_pem(pem);
            if (!again || again->fingerprint() != k->fingerprint()) {
                __builtin_trap();
            }
            (void)k->verify("message", "signature");
        }
        break;
    }
    case 1:
        if (ecdsa().verify("pairguard-auth-v1\nexample.org\nalice\nnonce", text)) {
            __builtin_trap();  // nobody has the dummy key's private half
        }
        break;
    case 2:
        if (ed25519().verify("pairguard-auth-v1\nexample.org\nalice\nnonce", text)) {
            __builtin_trap();
        }
        break;
    default:
        (void)verify_auth_signature(ecdsa(), "example.org", "alice", "nonce", text);
        (void)verify_auth_signature(ed25519(), "example.org", "alice", "nonce", text);
        (void)PublicKey::from_raw_ed25519(text);
        break;
    }
    return 0;
}
