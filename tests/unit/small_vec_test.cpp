#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "small_vec.hpp"

using pairguard::SmallVec;

namespace {

template <class V>
std::vector<std::string> items(const V& v) {
    return std::vector<std::string>(v.begin(), v.end());
}

// Every sequence of operations gives what a std::vector gives, across the
// move from the inline slots to the heap and back (clear).
TEST(SmallVec, BehavesAsAVectorAcrossTheSpill) {
    SmallVec<std::string, 2> s;
    std::vector<std::string> v;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 5; i++) {
            std::string x = "item-" + std::to_string(round) + "-" + std::to_string(i) + std::string(20, 'x');
            s.push_back(x);
            v.push_back(x);
            ASSERT_EQ(items(s), v);
            ASSERT_EQ(s.size(), v.size());
            ASSERT_EQ(s.back(), v.back());
            ASSERT_EQ(s[0], v[0]);
        }
        // erase from the middle, then the front
        s.erase(s.begin() + 1, s.begin() + 3);
        v.erase(v.begin() + 1, v.begin() + 3);
        ASSERT_EQ(items(s), v);
        s.erase(s.begin(), s.begin() + 1);
        v.erase(v.begin(), v.begin() + 1);
        ASSERT_EQ(items(s), v);
        s.clear();
        v.clear();
        ASSERT_TRUE(s.empty());
        ASSERT_EQ(s.begin(), s.end());
    }
}

TEST(SmallVec, PushingOneOfItsOwnElementsCopiesIt) {
    SmallVec<std::string, 2> s;
    s.push_back(std::string(30, 'a'));
    s.push_back(std::string(30, 'b'));
    s.push_back(s[0]);  // spills: the copy is made before the elements move
    s.push_back(s[1]);  // on the heap
    EXPECT_EQ(items(s), (std::vector<std::string>{std::string(30, 'a'), std::string(30, 'b'), std::string(30, 'a'),
                                                   std::string(30, 'b')}));
}

TEST(SmallVec, ErasingNothingChangesNothing) {
    for (size_t n : {2u, 5u}) {  // inline, spilled
        SmallVec<std::string, 3> s;
        std::vector<std::string> v;
        for (size_t i = 0; i < n; i++) {
            s.push_back("element-" + std::to_string(i) + std::string(20, 'x'));
            v.push_back(s.back());
        }
        for (size_t at = 0; at <= n; at++) {
            auto it = s.erase(s.begin() + at, s.begin() + at);
            EXPECT_EQ(it, s.begin() + at);
            EXPECT_EQ(items(s), v) << n << " " << at;
        }
    }
}

TEST(SmallVec, EraseInlineKeepsOrderAndResetsFreedSlots) {
    SmallVec<std::string, 4> s;
    for (const char* x : {"a", "b", "c", "d"}) {
        s.push_back(x);
    }
    auto it = s.erase(s.begin() + 1, s.begin() + 2);
    EXPECT_EQ(*it, "c");
    EXPECT_EQ(items(s), (std::vector<std::string>{"a", "c", "d"}));
    // the remove_if + erase idiom the guard uses
    s.erase(std::remove_if(s.begin(), s.end(), [](const std::string& x) { return x != "c"; }), s.end());
    EXPECT_EQ(items(s), (std::vector<std::string>{"c"}));
    // a freed slot holds nothing of its old element: pushing after it
    // shows only what was pushed
    s.push_back("e");
    EXPECT_EQ(items(s), (std::vector<std::string>{"c", "e"}));
}

TEST(SmallVec, CopiesAreIndependentAndMovesLeaveTheSourceEmpty) {
    for (size_t n : {1u, 3u, 6u}) {  // inline, at the edge, spilled
        SmallVec<std::string, 3> a;
        for (size_t i = 0; i < n; i++) {
            a.push_back(std::to_string(i));
        }
        SmallVec<std::string, 3> b = a;
        b.push_back("extra");
        EXPECT_EQ(a.size(), n);
        EXPECT_EQ(b.size(), n + 1);
        EXPECT_EQ(items(b).back(), "extra");

        SmallVec<std::string, 3> c = std::move(a);
        EXPECT_EQ(c.size(), n);
        EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): the contract
        a.push_back("again");
        EXPECT_EQ(items(a), std::vector<std::string>{"again"});

        SmallVec<std::string, 3> d;
        d.push_back("old");
        d = std::move(c);
        EXPECT_EQ(d.size(), n);
        EXPECT_EQ(d[0], "0");
        EXPECT_TRUE(c.empty());  // NOLINT(bugprone-use-after-move)

        d = b;  // copy assignment over a longer or shorter list
        EXPECT_EQ(items(d), items(b));
    }
}

TEST(SmallVec, NestedListsMoveWithTheirElements) {
    struct Group {
        SmallVec<int, 2> keys;
        int mark = 0;
    };
    SmallVec<Group, 1> groups;
    Group g;
    g.keys.push_back(1);
    g.keys.push_back(2);
    g.keys.push_back(3);
    g.mark = 7;
    groups.push_back(std::move(g));
    EXPECT_TRUE(g.keys.empty());  // NOLINT(bugprone-use-after-move)
    Group h;
    h.keys.push_back(9);
    groups.push_back(h);
    ASSERT_EQ(groups.size(), 2u);
    EXPECT_EQ(std::vector<int>(groups[0].keys.begin(), groups[0].keys.end()), (std::vector<int>{1, 2, 3}));
    EXPECT_EQ(groups[0].mark, 7);
    EXPECT_EQ(groups[1].keys[0], 9);
}

}  // namespace
