// The login flows (src/core/login.*) pumped with arbitrary store replies and
// Argon2id outcomes, from arbitrary bodies and Authorization headers: what
// a hostile client and a wrong or tampered store can make a flow do.
#include <fuzzer/FuzzedDataProvider.h>

#include <memory>
#include <string>
#include <vector>

#include "fuzz_common.hpp"
#include "login.hpp"

using namespace pairguard;
using namespace pairguard::login;

namespace {

const AuthPolicy& policy() {
    static AuthPolicy p = [] {
        AuthPolicy a;
        a.argon2 = Argon2Params{8, 1, 1};
        return a;
    }();
    return p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    Request req;
    req.keys = &fuzz::keys();
    req.prefix = "pairguard:";
    req.policy = &policy();
    req.address = "192.0.2.7";
    req.host = "example.org";
    req.tls = in.ConsumeBool();
    req.now_ms = 1800000000000;

    std::unique_ptr<Flow> flow;
    int which = in.ConsumeIntegralInRange<int>(0, 3);
    std::string input = in.ConsumeRandomLengthString(512);
    switch (which) {
    case 0: flow = password_login(req, input); break;
    case 1: flow = challenge(req, input); break;
    case 2: flow = verify(req, input); break;
    default: {
        auto auth = haystack::parse_authorization(input);
        if (!auth || auth->kind == haystack::Kind::bearer || auth->kind == haystack::Kind::other) {
            return 0;
        }
        flow = haystack_exchange(req, *auth);
        break;
    }
    }

    Step step = flow->start();
    for (int i = 0; i < 16 && step.kind != Step::Kind::answer; i++) {
        if (step.kind == Step::Kind::store) {
            // as the glue does: one reply per call, ok only if all answered
            std::vector<Reply> replies;
            for (size_t c = 0; c < step.calls.size(); c++) {
                if (step.calls[c].script == nullptr) {
                    __builtin_trap();
                }
                replies.push_back(fuzz::draw_reply(in));
            }
            step = flow->stored(in.ConsumeBool(), replies);
        } else {
            PasswordResult res;
            res.failed = in.ConsumeBool();
            res.check = in.PickValueInArray({PasswordCheck::ok, PasswordCheck::mismatch, PasswordCheck::invalid_hash});
            if (in.ConsumeBool()) {
                res.rehash = in.ConsumeRandomLengthString(32);
            }
            step = flow->hashed(res);
        }
    }
    if (step.kind == Step::Kind::answer && (step.answer.status < 200 || step.answer.status > 599)) {
        __builtin_trap();
    }
    return 0;
}
