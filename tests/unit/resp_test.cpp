#include <gtest/gtest.h>

#include "resp.hpp"

using namespace pairguard;

TEST(Resp, BulkStringsAndNumbers) {
    RespArgs a;
    a.add("GET");
    a.add(std::string_view("k\r\nyz", 5));
    a.add(int64_t{-42});
    EXPECT_EQ(a.count, 3u);
    EXPECT_EQ(a.data, std::string("$3\r\nGET\r\n$5\r\nk\r\nyz\r\n$3\r\n-42\r\n"));
    EXPECT_EQ(resp_array_header(3), "*3\r\n");
}

TEST(Resp, PreEncodedArguments) {
    RespArgs limits;
    limits.add(int64_t{5});
    limits.add(int64_t{900000});
    RespArgs a;
    a.add("x");
    a.add_encoded(limits.data, limits.count);
    EXPECT_EQ(a.count, 3u);
    EXPECT_EQ(a.data, "$1\r\nx\r\n$1\r\n5\r\n$6\r\n900000\r\n");
}

#include "store_scripts.hpp"

TEST(Resp, LimitsEncodeLikeTheVectorForm) {
    PolicyLimits l;
    l.max_failures = 5;
    l.window_ms = 900000;
    l.lockout_ms = 60000;
    l.backoff_milli = 2000;
    l.max_lockout_ms = 0;
    std::vector<std::string> v;
    append_limits(v, l);
    RespArgs expect;
    for (const auto& s : v) {
        expect.add(s);
    }
    RespArgs got;
    append_limits(got, l);
    EXPECT_EQ(got.data, expect.data);
    EXPECT_EQ(got.count, 5u);
}
