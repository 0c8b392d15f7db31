#include "guard_cluster.hpp"

#include <gtest/gtest.h>

#include "redis_spec.hpp"
#include "resp.hpp"

using namespace pairguard;

namespace {

// keys whose slots are known to differ: distinct hash tags
const std::vector<std::string> kKeys = {"pg:{aaaa}", "pg:{bbbb}", "pg:{aaaa}x"};

std::string limits_for(size_t n) {
    RespArgs l;
    for (size_t i = 0; i < n; i++) {
        for (int64_t v : {int64_t(3) + static_cast<int64_t>(i), int64_t(60000), int64_t(1000), int64_t(2000), int64_t(0)}) {
            l.add(v);
        }
    }
    return l.data;
}

std::string keys_resp(const std::vector<std::string>& keys) {
    RespArgs k;
    for (const auto& s : keys) {
        k.add(s);
    }
    return k.data;
}

}  // namespace

TEST(GuardCluster, OneSlotIsOnePartUnchanged) {
    std::vector<std::string> keys = {"pg:{aaaa}", "pg:{aaaa}x"};
    GuardOp op = make_guard_reserve(keys_resp(keys), 2, limits_for(2));
    std::vector<GuardPart> parts = split_guard_op(op, 12345);
    ASSERT_EQ(parts.size(), 1u);
    EXPECT_EQ(parts[0].op.args(), op.args());
    EXPECT_EQ(parts[0].op.keys(), op.keys());
    EXPECT_EQ(parts[0].slot, cluster_key_slot("aaaa"));
    EXPECT_EQ(parts[0].index, (std::vector<size_t>{0, 1}));
}

TEST(GuardCluster, ReserveSplitsBySlotWithOneReservation) {
    ASSERT_NE(cluster_key_slot("aaaa"), cluster_key_slot("bbbb"));
    GuardOp op = make_guard_reserve(keys_resp(kKeys), 3, limits_for(3));
    std::vector<uint16_t> slots;
    ASSERT_TRUE(guard_op_slots(op, slots));
    EXPECT_EQ(slots, (std::vector<uint16_t>{cluster_key_slot("aaaa"), cluster_key_slot("bbbb"), cluster_key_slot("aaaa")}));

    std::vector<GuardPart> parts = split_guard_op(op, 777);
    ASSERT_EQ(parts.size(), 2u);
    EXPECT_EQ(parts[0].index, (std::vector<size_t>{0, 2}));
    EXPECT_EQ(parts[1].index, (std::vector<size_t>{1}));
    EXPECT_EQ(parts[0].op.keys(), keys_resp({kKeys[0], kKeys[2]}));
    // 'R', nkeys, reservation, then each key's own five limits
    RespArgs want;
    want.add("R");
    want.add(int64_t(2));
    want.add(int64_t(777));
    std::string l = limits_for(3);
    RespArgs l0, l2;
    for (int64_t v : {int64_t(3), int64_t(60000), int64_t(1000), int64_t(2000), int64_t(0)}) l0.add(v);
    for (int64_t v : {int64_t(5), int64_t(60000), int64_t(1000), int64_t(2000), int64_t(0)}) l2.add(v);
    EXPECT_EQ(parts[0].op.args(), want.data + l0.data + l2.data);
    EXPECT_EQ(parts[0].op.nargs, 3u + 10u);
    EXPECT_FALSE(parts[1].op.settle);
}

TEST(GuardCluster, SettleSplitsKeepingOutcomeAndReservation) {
    GuardOp op = make_guard_settle(keys_resp(kKeys), 3, Outcome::failure, 4242, limits_for(3));
    std::vector<GuardPart> parts = split_guard_op(op, 1);
    ASSERT_EQ(parts.size(), 2u);
    RespArgs head;
    head.add("s");
    head.add(int64_t(1));
    head.add("f");
    head.add(int64_t(4242));
    EXPECT_EQ(parts[1].op.args().substr(0, head.data.size()), head.data);
    EXPECT_TRUE(parts[1].op.settle);

    // key 2 (part 0, local 2) and key 1 (part 1, local 1) locked
    std::vector<int64_t> r0 = {2, 5000}, r1 = {1, 1000};
    bool ok = false;
    std::vector<int64_t> merged = merge_guard_settle(parts, {&r0, &r1}, ok);
    ASSERT_TRUE(ok);
    EXPECT_EQ(merged, (std::vector<int64_t>{3, 5000, 2, 1000}));
    merged = merge_guard_settle(parts, {&r0, nullptr}, ok);
    EXPECT_FALSE(ok);
}

TEST(GuardCluster, ReserveMergesAllowedOnlyWhenEveryPartAllows) {
    GuardOp op = make_guard_reserve(keys_resp(kKeys), 3, limits_for(3));
    std::vector<GuardPart> parts = split_guard_op(op, 900);
    std::vector<int64_t> a0 = {0, 0, 0, 900, 2}, a1 = {0, 0, 0, 900};
    bool ok = false;
    std::vector<GuardOp> release;
    std::vector<int64_t> m = merge_guard_reserve(parts, {&a0, &a1}, 900, ok, release);
    ASSERT_TRUE(ok);
    EXPECT_EQ(m, (std::vector<int64_t>{0, 0, 0, 900, 3}));  // key 3's lock ended
    EXPECT_TRUE(release.empty());

    // part 1 (key 2) is locked: refused, and part 0 gives back what it reserved
    std::vector<int64_t> l1 = {1, 1, 7000, 0};
    m = merge_guard_reserve(parts, {&a0, &l1}, 900, ok, release);
    ASSERT_TRUE(ok);
    EXPECT_EQ(m, (std::vector<int64_t>{1, 2, 7000, 0, 3}));
    ASSERT_EQ(release.size(), 1u);
    EXPECT_TRUE(release[0].settle);
    EXPECT_EQ(release[0].keys(), parts[0].op.keys());
    RespArgs head;
    head.add("s");
    head.add(int64_t(2));
    head.add("n");
    head.add(int64_t(900));
    EXPECT_EQ(release[0].args().substr(0, head.data.size()), head.data);
    EXPECT_EQ(release[0].nargs, 4u + 10u);
    EXPECT_EQ(release[0].nhead, 4u);
    EXPECT_EQ(release[0].head(), head.data);
    EXPECT_EQ(release[0].limits(), parts[0].op.limits());
    // a release is sent like any operation: it splits (here into itself)
    std::vector<GuardPart> again = split_guard_op(release[0], 900);
    ASSERT_EQ(again.size(), 1u);
    EXPECT_EQ(again[0].op.data, release[0].data);
    for (const GuardPart& p : parts) {
        EXPECT_EQ(p.op.nargs, p.op.nhead + 5 * p.op.nkeys);
        EXPECT_EQ(p.op.args(), std::string(p.op.head()) + std::string(p.op.limits()));
        EXPECT_EQ(split_guard_op(p.op, 900).size(), 1u) << "a part parses again";
    }

    // a lock wins over a busy key, the longest lock over a shorter one
    std::vector<int64_t> b0 = {2, 1, 1000, 0}, c1 = {1, 1, 3000, 0};
    release.clear();
    m = merge_guard_reserve(parts, {&b0, &c1}, 900, ok, release);
    EXPECT_EQ(m[0], 1);
    EXPECT_EQ(m[1], 2);
    EXPECT_TRUE(release.empty());

    // a part that failed fails the whole, and what was reserved is released
    release.clear();
    m = merge_guard_reserve(parts, {&a0, nullptr}, 900, ok, release);
    EXPECT_FALSE(ok);
    EXPECT_EQ(release.size(), 1u);

    // ... unless another part refused: a refusal by a working shard stands
    // even when the other shard is down (store_down must not let it through)
    std::vector<int64_t> locked0 = {1, 2, 9000, 0};
    release.clear();
    m = merge_guard_reserve(parts, {&locked0, nullptr}, 900, ok, release);
    ASSERT_TRUE(ok);
    EXPECT_EQ(m[0], 1);
    EXPECT_EQ(m[1], 3);  // part 0's second key is the request's third
    EXPECT_EQ(m[2], 9000);
    EXPECT_TRUE(release.empty());
}

TEST(GuardCluster, MalformedOperationsGiveNoParts) {
    GuardOp bad;
    bad.nkeys = 2;
    bad.set("$3\r\nabc\r\n", "$1\r\nr\r\n", "");
    EXPECT_TRUE(split_guard_op(bad, 1).empty());
    std::vector<uint16_t> slots;
    EXPECT_FALSE(guard_op_slots(bad, slots));
}
