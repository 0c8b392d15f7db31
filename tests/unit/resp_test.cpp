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

TEST(Resp, EveryLengthAndNumberEncodesAsTheProtocolSays) {
    // short arguments are written in one piece, long ones part by part: the
    // same bytes either way
    for (size_t len : {0, 1, 9, 10, 99, 100, 117, 118, 119, 120, 121, 200, 5000}) {
        std::string s(len, 'x');
        for (size_t i = 0; i < len; i++) {
            s[i] = static_cast<char>('a' + i % 26);
        }
        RespArgs a, b;
        a.add(s);
        b.add_joined({std::string_view(s).substr(0, len / 3), std::string_view(s).substr(len / 3)});
        std::string want = "$" + std::to_string(len) + "\r\n" + s + "\r\n";
        EXPECT_EQ(a.data, want) << len;
        EXPECT_EQ(b.data, want) << len;
        EXPECT_EQ(a.count, 1u);
        EXPECT_EQ(b.count, 1u);
    }
    for (int64_t v : {int64_t{0}, int64_t{7}, int64_t{-1}, int64_t{123456789}, int64_t{1000000000},
                      int64_t{9223372036854775807}, int64_t{-9223372036854775807} - 1}) {
        RespArgs a;
        a.add(v);
        std::string t = std::to_string(v);
        EXPECT_EQ(a.data, "$" + std::to_string(t.size()) + "\r\n" + t + "\r\n") << v;
        EXPECT_EQ(a.count, 1u);
    }
}

TEST(Resp, NumbersAroundEveryPowerOfTen) {
    for (int i = 0; i <= 18; i++) {
        int64_t p = 1;
        for (int j = 0; j < i; j++) {
            p *= 10;
        }
        for (int64_t v : {p - 1, p, p + 1, -(p - 1), -p, -(p + 1)}) {
            RespArgs a;
            a.add(v);
            std::string t = std::to_string(v);
            EXPECT_EQ(a.data, "$" + std::to_string(t.size()) + "\r\n" + t + "\r\n") << v;
        }
    }
}

TEST(Resp, WriterWritesWhatRespArgsWould) {
    // estimates too short (0, 1, 5 bytes) and ample: the same bytes, the
    // string cut to them at the end, what was there before kept
    for (size_t expect : {0, 1, 5, 64, 4096}) {
        std::string out = "prefix";
        RespArgs want;
        want.data = "prefix";
        {
            RespWriter w(out, expect);
            for (int64_t p = 1, i = 0; i <= 18; i++) {
                for (int64_t v : {p - 1, p, p + 1, -(p - 1), -p, -(p + 1)}) {
                    w.integer(v);
                    want.add(v);
                }
                if (i < 18) {
                    p *= 10;  // 10^18 is the last that fits
                }
            }
            for (int64_t v : {int64_t{9223372036854775807}, int64_t{-9223372036854775807} - 1}) {
                w.integer(v);
                want.add(v);
            }
            std::string big(3000, 'k');
            w.raw(big);
            want.data += big;
            w.raw("");
            EXPECT_EQ(w.size(), want.data.size()) << expect;
        }
        EXPECT_EQ(out, want.data) << expect;
    }
}

TEST(Resp, EvalshaHeadsOfScriptsInTurn) {
    // the last script's "EVALSHA sha1" text is kept: scripts taken in turn
    // each get their own
    std::string one(40, 'a'), two(40, 'b');
    for (const std::string* sha : {&one, &two, &two, &one}) {
        RespArgs a = resp_evalsha(*sha, 2);
        a.add("x");
        a.add(int64_t{3});
        EXPECT_EQ(a.data, "*4\r\n$7\r\nEVALSHA\r\n$40\r\n" + *sha + "\r\n$1\r\nx\r\n$1\r\n3\r\n");
        EXPECT_EQ(a.count, a.declared);
    }
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
