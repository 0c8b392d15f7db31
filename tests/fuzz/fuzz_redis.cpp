// What the Redis client and the cluster batch parse: the words of
// pairguard_redis / --redis (configuration input), MOVED/ASK errors and the
// guard operations split by cluster slot (with arbitrary replies merged
// back), and trusted-device cookie headers and tokens (client input).
#include <fuzzer/FuzzedDataProvider.h>

#include <string>
#include <string_view>
#include <vector>

#include "device.hpp"
#include "guard_cluster.hpp"
#include "keys.hpp"
#include "redis_spec.hpp"
#include "store_scripts.hpp"

using namespace pairguard;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    int which = in.ConsumeIntegralInRange<int>(0, 3);
    switch (which) {
    case 0: {
        std::string text = in.ConsumeRemainingBytesAsString();
        RedisSpec spec;
        if (parse_redis_spec(text, spec).empty()) {
            if (spec.endpoints.empty()) {
                __builtin_trap();
            }
            for (const auto& e : spec.endpoints) {
                if (e.unix_path.empty() && (e.port < 1 || e.port > 65535 || e.host.empty())) {
                    __builtin_trap();
                }
            }
        }
        break;
    }
    case 1: {
        std::string text = in.ConsumeRemainingBytesAsString();
        uint16_t slot = 0;
        RedisEndpoint to;
        if (parse_redis_redirect(text, slot, to) != RedisRedirect::none && slot >= kClusterSlots) {
            __builtin_trap();
        }
        if (cluster_key_slot(text) >= kClusterSlots) {
            __builtin_trap();
        }
        break;
    }
    case 2: {
        // a guard operation of arbitrary bytes, split and merged with
        // arbitrary replies: never a crash, never an allowed reserve from a
        // refused or missing part
        GuardOp op;
        op.settle = in.ConsumeBool();
        op.nkeys = in.ConsumeIntegralInRange<size_t>(0, 8);
        std::string keys = in.ConsumeRandomLengthString(512);
        if (in.ConsumeBool()) {
            // as the module makes them: arbitrary keys and limits
            std::string lim = in.ConsumeRandomLengthString(512);
            size_t nkeys = op.nkeys;
            op = op.settle ? make_guard_settle(keys, nkeys, Outcome::failure, in.ConsumeIntegral<int64_t>(), lim)
                           : make_guard_reserve(keys, nkeys, lim);
        } else {
            std::string args = in.ConsumeRandomLengthString(1024);
            size_t split = in.ConsumeIntegralInRange<size_t>(0, args.size());
            op.nhead = in.ConsumeIntegralInRange<size_t>(0, 5);
            op.nargs = in.ConsumeIntegralInRange<size_t>(0, 64);
            op.set(keys, std::string_view(args).substr(0, split), std::string_view(args).substr(split));
        }
        std::vector<GuardPart> parts = split_guard_op(op, 12345);
        std::vector<std::vector<int64_t>> store;
        std::vector<const std::vector<int64_t>*> replies;
        store.reserve(parts.size());
        for (size_t k = 0; k < parts.size(); k++) {
            if (in.ConsumeBool()) {
                replies.push_back(nullptr);
                continue;
            }
            std::vector<int64_t> r;
            size_t n = in.ConsumeIntegralInRange<size_t>(0, 6);
            for (size_t j = 0; j < n; j++) {
                r.push_back(in.ConsumeIntegralInRange<int64_t>(-2, 10));
            }
            store.push_back(std::move(r));
            replies.push_back(&store.back());
        }
        // the parts (and below, the releases) go out in a batch
        std::vector<const GuardOp*> list;
        for (const GuardPart& part : parts) {
            list.push_back(&part.op);
        }
        if (!list.empty()) {
            RespArgs call = make_guard_batch(list.data(), list.size(), 60000);
            if (call.count != call.declared) {
                __builtin_trap();
            }
        }
        bool ok = false;
        std::vector<GuardOp> release;
        if (op.settle) {
            merge_guard_settle(parts, replies, ok);
        } else {
            std::vector<int64_t> m = merge_guard_reserve(parts, replies, 12345, ok, release);
            for (const GuardOp& rel : release) {
                if (split_guard_op(rel, 12345).empty()) {
                    __builtin_trap();  // a release that could not be sent
                }
            }
            if (ok && !m.empty() && m[0] == 0) {
                for (const auto* r : replies) {
                    if (r == nullptr || r->empty() || (*r)[0] != 0) {
                        __builtin_trap();  // allowed although a part did not allow
                    }
                }
            }
        }
        break;
    }
    default: {
        static const KeyDeriver keys(std::string(32, 's'));
        std::string header = in.ConsumeRemainingBytesAsString();
        std::vector<std::string_view> values;
        cookie_values(header, "dev", values, kDeviceCookiesChecked, kDeviceTokenChars);
        KeyTag account{};
        for (std::string_view v : values) {
            if (v.size() != kDeviceTokenChars) {
                __builtin_trap();
            }
            (void) device_token_check(keys, "login", account, v, 1700000000, 86400);
        }
        break;
    }
    }
    return 0;
}
