// Every script-reply decoder of the core (store_scripts, pairing,
// auth_store) fed an arbitrary reply tree: Redis, or whoever answers on its
// port, is outside input too.
#include <fuzzer/FuzzedDataProvider.h>

#include <string>
#include <vector>

#include "auth_store.hpp"
#include "fuzz_common.hpp"
#include "pairing.hpp"
#include "store_scripts.hpp"

using namespace pairguard;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    int which = in.ConsumeIntegralInRange<int>(0, 29);
    if (which == 29) {
        // the batch's one string: every operation a view inside `values`,
        // each operation's list decodable as a reserve or a settle
        size_t nops = in.ConsumeIntegralInRange<size_t>(0, 8);
        std::string text = in.ConsumeRemainingBytesAsString();
        std::vector<int64_t> values;
        std::vector<size_t> bounds;
        if (decode_guard_batch(Reply::of_string(text), nops, values, bounds)) {
            if (nops == 0 || bounds.size() != nops + 1 || bounds.front() != 0 || bounds.back() != values.size()) {
                __builtin_trap();
            }
            for (size_t i = 0; i < nops; i++) {
                if (bounds[i] > bounds[i + 1]) {
                    __builtin_trap();
                }
                IntList op(values.data() + bounds[i], bounds[i + 1] - bounds[i]);
                (void)decode_reserve(op, 2);
                std::vector<LockStart> out;
                (void)decode_settle(op, 2, out);
            }
        }
        return 0;
    }
    if (which <= 1) {
        // the guard scripts' replies reach the core as integer lists
        size_t nkeys = in.ConsumeIntegralInRange<size_t>(0, 8);
        std::vector<int64_t> v;
        while (in.remaining_bytes() > 0 && v.size() < 64) {
            v.push_back(fuzz::draw_integer(in));
        }
        if (which == 0) {
            ReserveReply r = decode_reserve(v, nkeys);
            if (r.valid) {
                if (r.status != ReserveStatus::allowed && r.policy >= nkeys) {
                    __builtin_trap();
                }
                for (size_t e : r.ended) {
                    if (e >= nkeys) {
                        __builtin_trap();
                    }
                }
            }
        } else {
            std::vector<LockStart> out;
            if (decode_settle(v, nkeys, out)) {
                for (const LockStart& l : out) {
                    if (l.policy >= nkeys || l.lock_ms < 0) {
                        __builtin_trap();
                    }
                }
            }
        }
        return 0;
    }
    Reply r = fuzz::draw_reply(in);
    switch (which) {
    case 2: (void)decode_platforms(r); break;
    case 3: (void)decode_request(r); break;
    case 4: (void)decode_approve(r); break;
    case 5: (void)decode_pending(r, "telegram"); break;
    case 6: (void)decode_clear(r); break;
    case 7: (void)decode_approved(r, "whatsapp"); break;
    case 8: (void)decode_revoke(r); break;
    case 9: (void)decode_check(r); break;
    case 10: (void)decode_lock_status(r); break;
    case 11: (void)decode_unlock(r); break;
    case 12: (void)decode_user_list(r); break;
    case 13: (void)decode_user_op(r); break;
    case 14: (void)decode_user_get(r); break;
    case 15: (void)decode_session_create(r); break;
    case 16: (void)decode_session_get(r); break;
    case 17: (void)decode_session_refresh(r); break;
    case 18: (void)decode_session_revoke(r); break;
    case 19: (void)decode_sessions_list(r); break;
    case 20: (void)decode_logout(r); break;
    case 21: (void)decode_challenge_create(r); break;
    case 22: (void)decode_challenge_list(r); break;
    case 23: (void)decode_handshake_put(r); break;
    case 24: (void)decode_handshake_take(r); break;
    case 25: (void)decode_failure(r); break;
    case 26: (void)decode_lock_ms(r); break;
    case 27: (void)decode_address_start(r); break;
    default: {
        // listings are rendered straight from decoded entries
        if (auto p = decode_pending(r, "telegram")) {
            (void)render_pending(*p);
        }
        if (auto a = decode_approved(r, "telegram")) {
            (void)render_approved(*a);
        }
        break;
    }
    }
    return 0;
}
