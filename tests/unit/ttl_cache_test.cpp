#include <gtest/gtest.h>

#include <string>

#include "ttl_cache.hpp"

using pairguard::TtlCache;

TEST(TtlCache, AnswersUntilTheTtlThenForgets) {
    TtlCache<int> c(1000, 100);
    c.put("a", 1, 5000);
    ASSERT_NE(c.get("a", 5000), nullptr);
    EXPECT_EQ(*c.get("a", 5999), 1);
    EXPECT_EQ(c.get("a", 6000), nullptr);
    EXPECT_EQ(c.get("b", 5000), nullptr);
    EXPECT_EQ(c.size(), 0u);  // the expired entry is gone, not just hidden
}

TEST(TtlCache, MemoryFollowsTheLastTtlNotEveryKeyEverPut) {
    TtlCache<std::string> c(1000, 1 << 20);
    // 100 000 distinct keys over 100 s, 1000 a second: at most about one
    // second's worth is ever held
    size_t most = 0;
    for (uint64_t i = 0; i < 100000; i++) {
        c.put("token-" + std::to_string(i), "user", 10000 + i);
        most = std::max(most, c.size());
        EXPECT_LE(c.pending(), 1001u);
    }
    EXPECT_LE(most, 1001u);
    c.expire(10000 + 100000 + 1000);
    EXPECT_EQ(c.size(), 0u);
    EXPECT_EQ(c.pending(), 0u);
}

TEST(TtlCache, PutAgainKeepsTheLaterExpiry) {
    TtlCache<int> c(1000, 100);
    c.put("a", 1, 0);
    EXPECT_EQ(c.get("a", 1000), nullptr);  // expired
    c.put("a", 2, 1500);                    // put again after a miss
    c.expire(1999);
    ASSERT_NE(c.get("a", 1999), nullptr);
    EXPECT_EQ(*c.get("a", 1999), 2);
    // the same key put twice while live (insert_or_assign): the earlier
    // order record must not take the later entry with it
    c.put("b", 1, 3000);
    c.put("b", 2, 3500);
    ASSERT_NE(c.get("b", 4100), nullptr);
    EXPECT_EQ(*c.get("b", 4100), 2);
    EXPECT_EQ(c.get("b", 4500), nullptr);
}

TEST(TtlCache, CapDropsEverything) {
    TtlCache<int> c(1000, 3);
    c.put("a", 1, 0);
    c.put("b", 1, 0);
    c.put("c", 1, 0);
    EXPECT_EQ(c.size(), 3u);
    c.put("d", 1, 1);
    EXPECT_EQ(c.size(), 1u);
    EXPECT_EQ(c.get("a", 1), nullptr);
    EXPECT_NE(c.get("d", 1), nullptr);
}

TEST(TtlCache, EraseAndEraseIf) {
    TtlCache<int> c(1000, 100);
    c.put("a", 1, 0);
    c.put("b", 2, 0);
    c.put("c", 2, 0);
    c.erase("a");
    EXPECT_EQ(c.get("a", 1), nullptr);
    c.erase_if([](int v) { return v == 2; });
    EXPECT_EQ(c.size(), 0u);
    c.expire(5000);  // order records of erased keys go quietly
    EXPECT_EQ(c.pending(), 0u);
    c.put("a", 3, 6000);
    c.clear();
    EXPECT_EQ(c.get("a", 6000), nullptr);
}

// An answer looked up before an erase or clear (a revocation may have come
// in between) is not put; one looked up after is. The drops of expiry and
// of the cap are not erasures.
TEST(TtlCache, AnswersFromBeforeAnEraseAreNotPut) {
    TtlCache<int> c(1000, 2);
    uint64_t before = c.generation();
    c.erase("x");
    c.put_if_unchanged(before, "a", 1, 0);
    EXPECT_EQ(c.get("a", 0), nullptr);
    before = c.generation();
    c.erase_if([](int) { return false; });
    c.put_if_unchanged(before, "a", 1, 0);
    EXPECT_EQ(c.get("a", 0), nullptr);
    before = c.generation();
    c.clear();
    c.put_if_unchanged(before, "a", 1, 0);
    EXPECT_EQ(c.get("a", 0), nullptr);

    before = c.generation();
    c.put("b", 1, 0);
    c.put("c", 1, 0);
    c.put("d", 1, 0);  // over the cap: everything dropped
    c.expire(5000);
    c.put_if_unchanged(before, "a", 2, 5000);
    ASSERT_NE(c.get("a", 5000), nullptr);
    EXPECT_EQ(*c.get("a", 5000), 2);
}
