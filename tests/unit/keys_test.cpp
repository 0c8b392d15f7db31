#include <gtest/gtest.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "answers.hpp"
#include "keys.hpp"
#include "pairing.hpp"
#include "store_scripts.hpp"

using namespace pairguard;

namespace {
const std::string kSecret = "0123456789abcdef0123456789abcdef";
}

TEST(Keys, TagIsTruncatedHmacSha256) {
    KeyDeriver d(kSecret);
    std::string msg = std::string("g") + '\0' + "claim_ip" + '\0' + "10.0.0.1";
    unsigned char md[32];
    unsigned int len = 0;
    HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()),
         reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), md, &len);
    KeyTag t = d.tag("g", "claim_ip", "10.0.0.1");
    EXPECT_EQ(0, memcmp(t.data(), md, t.size()));
}

TEST(Keys, DifferentPoliciesAndValuesGiveDifferentTags) {
    KeyDeriver d(kSecret);
    EXPECT_NE(d.tag("g", "a", "x"), d.tag("g", "b", "x"));
    EXPECT_NE(d.tag("g", "a", "x"), d.tag("g", "a", "y"));
    // the separator keeps ("ab","c") apart from ("a","bc")
    EXPECT_NE(d.tag("g", "ab", "c"), d.tag("g", "a", "bc"));
    KeyDeriver other("another secret of at least 32 bytes!");
    EXPECT_NE(d.tag("g", "a", "x"), other.tag("g", "a", "x"));
}

TEST(Keys, StoreKeyIsHashTaggedAndHoldsNoRawValue) {
    KeyDeriver d(kSecret);
    std::string key = guard_store_key("pairguard:", d.tag("g", "claim_code", "483920"));
    EXPECT_EQ(key.rfind("pairguard:{", 0), 0u);
    EXPECT_EQ(key.back(), '}');
    EXPECT_EQ(key.size(), 28u) << "fits Redis' 32-byte allocation class";
    EXPECT_EQ(key.find("483920"), std::string::npos);
}

TEST(Keys, Base64Url) {
    const uint8_t data[] = {0xfb, 0xff, 0xbf};
    EXPECT_EQ(base64url(data, 3), "-_-_");
    EXPECT_EQ(base64url(data, 1), "-w");
}

TEST(Keys, LabelIsEightHexDigits) {
    KeyTag t{};
    t[0] = 0xab;
    t[3] = 0x01;
    EXPECT_EQ(tag_label(t), "ab000001");
}

TEST(Keys, ConstantTimeEqual) {
    EXPECT_TRUE(equal_ct("abc", "abc"));
    EXPECT_FALSE(equal_ct("abc", "abd"));
    EXPECT_FALSE(equal_ct("abc", "abcd"));
}

TEST(Scripts, DigestsMatchTheSource) {
    EXPECT_EQ(guard_reserve_script().sha1, sha1_hex(guard_reserve_script().source));
    EXPECT_EQ(guard_reserve_script().sha1.size(), 40u);
    EXPECT_NE(guard_reserve_script().sha1, guard_settle_script().sha1);
    EXPECT_NE(guard_reserve_script().source.find("redis.call('TIME')"), std::string_view::npos);
}

TEST(Scripts, DecodeReserve) {
    ReserveReply r = decode_reserve({0, 0, 0, 123, 2}, 2);
    ASSERT_TRUE(r.valid);
    EXPECT_EQ(r.status, ReserveStatus::allowed);
    EXPECT_EQ(r.reservation, 123);
    ASSERT_EQ(r.ended.size(), 1u);
    EXPECT_EQ(r.ended[0], 1u);

    r = decode_reserve({1, 2, 5000, 0}, 2);
    ASSERT_TRUE(r.valid);
    EXPECT_EQ(r.status, ReserveStatus::locked);
    EXPECT_EQ(r.policy, 1u);
    EXPECT_EQ(r.retry_ms, 5000);

    EXPECT_FALSE(decode_reserve({1, 3, 5000, 0}, 2).valid) << "policy index out of range";
    EXPECT_FALSE(decode_reserve({0, 0, 0, 0}, 1).valid) << "allowed without a reservation";
    EXPECT_FALSE(decode_reserve({7, 0, 0, 1}, 1).valid);
    EXPECT_FALSE(decode_reserve({}, 1).valid);
}

TEST(Scripts, DecodeSettle) {
    std::vector<LockStart> out;
    ASSERT_TRUE(decode_settle({1, 900000, 2, 1000}, 2, out));
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[1].policy, 1u);
    EXPECT_EQ(out[1].lock_ms, 1000);
    out.clear();
    EXPECT_FALSE(decode_settle({1}, 2, out));
    EXPECT_FALSE(decode_settle({3, 1}, 2, out));
}

TEST(Scripts, BatchWritesEveryOperationsKeysThenArguments) {
    RespArgs k1, k2, lim;
    k1.add("p:{a}");
    k2.add("p:{b}");
    k2.add("p:{c}");
    PolicyLimits l;
    l.max_failures = 5;
    append_limits(lim, l);
    std::string two_limits = lim.data + lim.data;

    GuardOp r = make_guard_reserve(k1.data, 1, lim.data);
    GuardOp s = make_guard_settle(k2.data, 2, Outcome::failure, 42, two_limits);
    EXPECT_FALSE(r.settle);
    EXPECT_EQ(r.nargs, 2u + 5u);
    EXPECT_EQ(s.nargs, 4u + 10u);
    const GuardOp* ops[] = {&r, &s};
    RespArgs call = make_guard_batch(ops, 2, 60000);
    EXPECT_EQ(call.count, call.declared) << "as many arguments as the head declares";
    // EVALSHA sha numkeys=3 (keys of both, in order) hold ops...
    std::string expect = "*" + std::to_string(2 + 1 + 3 + 1 + 7 + 14) + "\r\n$7\r\nEVALSHA\r\n$40\r\n" +
                         guard_batch_script().sha1 + "\r\n$1\r\n3\r\n" + k1.data + k2.data + "$5\r\n60000\r\n" +
                         "$1\r\nr\r\n$1\r\n1\r\n" + lim.data + "$1\r\ns\r\n$1\r\n2\r\n$1\r\nf\r\n$2\r\n42\r\n" +
                         two_limits;
    EXPECT_EQ(call.data, expect);
}

TEST(Scripts, DecodeBatchNeedsOneIntegerListPerOperation) {
    std::vector<std::vector<int64_t>> out;
    Reply ok = Reply::of_array({Reply::of_array({Reply::of_integer(0), Reply::of_integer(0), Reply::of_integer(0),
                                                 Reply::of_integer(9)}),
                                Reply::of_array({})});
    ASSERT_TRUE(decode_guard_batch(ok, 2, out));
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0].back(), 9);
    EXPECT_TRUE(out[1].empty());
    EXPECT_FALSE(decode_guard_batch(ok, 3, out)) << "one reply short";
    EXPECT_FALSE(decode_guard_batch(Reply::of_error("NOSCRIPT"), 2, out));
    EXPECT_FALSE(decode_guard_batch(Reply::of_array({Reply::of_array({Reply::of_string("x")}), Reply::of_array({})}), 2, out));
}

TEST(Answers, RetryAfterRoundsUp) {
    EXPECT_EQ(retry_after_seconds(1), 1);
    EXPECT_EQ(retry_after_seconds(1000), 1);
    EXPECT_EQ(retry_after_seconds(1001), 2);
    EXPECT_EQ(retry_after_seconds(0), 1);
    EXPECT_EQ(too_many_attempts_body(7), R"({"error":"too_many_attempts","retry_after":7})");
    EXPECT_EQ(error_body("key_required"), R"({"error":"key_required"})");
}
