#include <gtest/gtest.h>

#include <deque>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "answers.hpp"
#include "keys.hpp"
#include "guard_cluster.hpp"
#include "pairing.hpp"
#include "store_scripts.hpp"

using namespace pairguard;

namespace {
using V = std::vector<int64_t>;
// IntList is a view: the lists it views are kept here for the test's length
const V& held(V v) {
    static std::deque<V> kept;
    kept.push_back(std::move(v));
    return kept.back();
}
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

// The precomputed pads must give OpenSSL's HMAC for every secret length
// (shorter than, equal to and longer than SHA-256's 64-byte block, which is
// hashed first) and every message length (one and several blocks), for the
// tag and for the full mac, called many times on one deriver.
TEST(Keys, HmacMatchesOpenSslForEverySecretAndMessageLength) {
    for (size_t secret_len : {32, 63, 64, 65, 100, 300}) {
        std::string secret;
        for (size_t i = 0; i < secret_len; i++) {
            secret.push_back(static_cast<char>((i * 37 + secret_len) & 0xff));
        }
        KeyDeriver d(secret);
        for (size_t msg_len : {0, 1, 31, 46, 47, 55, 56, 64, 119, 200}) {
            std::string value(msg_len, 'v');
            for (size_t i = 0; i < msg_len; i++) {
                value[i] = static_cast<char>(i & 0xff);
            }
            for (int round = 0; round < 2; round++) {
                unsigned char md[32];
                unsigned int len = 0;
                HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
                     reinterpret_cast<const unsigned char*>(value.data()), value.size(), md, &len);
                auto full = d.mac(value);
                ASSERT_EQ(0, memcmp(full.data(), md, 32)) << secret_len << " " << msg_len;
                std::string msg = std::string("s") + '\0' + "policy" + '\0' + value;
                HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
                     reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), md, &len);
                KeyTag t = d.tag("s", "policy", value);
                ASSERT_EQ(0, memcmp(t.data(), md, t.size())) << secret_len << " " << msg_len;
            }
        }
    }
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

// The hot path writes the key straight into the command: the same bytes as
// encoding guard_store_key's string, for any prefix and any tag.
TEST(Keys, StoreKeyWrittenInPlaceIsTheSameBulkString) {
    KeyDeriver d(kSecret);
    for (const std::string& prefix : std::vector<std::string>{"", "pairguard:", std::string(300, 'p')}) {
        for (int i = 0; i < 50; i++) {
            KeyTag t = d.tag("g", "ip", std::to_string(i));
            RespArgs a, b;
            a.add("x");
            b.add("x");
            add_guard_store_key(a, prefix, t);
            b.add(guard_store_key(prefix, t));
            ASSERT_EQ(a.data, b.data);
            ASSERT_EQ(a.count, 2u);
        }
    }
}

TEST(Keys, StoreKeyIsHashTaggedAndHoldsNoRawValue) {
    KeyDeriver d(kSecret);
    std::string key = guard_store_key("pairguard:", d.tag("g", "claim_code", "483920"));
    EXPECT_EQ(key.rfind("pairguard:{", 0), 0u);
    EXPECT_EQ(key.back(), '}');
    EXPECT_EQ(key.size(), 28u) << "fits Redis' 32-byte allocation class";
    EXPECT_EQ(key.find("483920"), std::string::npos);
}

// The store key's tag is written with its own table: the same text as
// base64url() of the tag's first 96 bits, for every byte in every position.
TEST(Keys, StoreKeyTagIsBase64UrlOfNinetySixBits) {
    for (int i = 0; i < 256 * 12; i++) {
        KeyTag t{};
        for (size_t j = 0; j < t.size(); j++) {
            t[j] = static_cast<uint8_t>((i + 101 * j) & 0xff);
        }
        t[static_cast<size_t>(i / 256)] = static_cast<uint8_t>(i & 0xff);
        ASSERT_EQ(guard_store_key("p:", t), "p:{" + base64url(t.data(), kStoreKeyTagBytes) + "}") << i;
    }
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
    ReserveReply r = decode_reserve(held(V{0, 0, 0, 123, 2}), 2);
    ASSERT_TRUE(r.valid);
    EXPECT_EQ(r.status, ReserveStatus::allowed);
    EXPECT_EQ(r.reservation, 123);
    ASSERT_EQ(r.ended.size(), 1u);
    EXPECT_EQ(r.ended[0], 1u);

    r = decode_reserve(held(V{1, 2, 5000, 0}), 2);
    ASSERT_TRUE(r.valid);
    EXPECT_EQ(r.status, ReserveStatus::locked);
    EXPECT_EQ(r.policy, 1u);
    EXPECT_EQ(r.retry_ms, 5000);

    EXPECT_FALSE(decode_reserve(held(V{1, 3, 5000, 0}), 2).valid) << "policy index out of range";
    EXPECT_FALSE(decode_reserve(held(V{0, 0, 0, 0}), 1).valid) << "allowed without a reservation";
    EXPECT_FALSE(decode_reserve(held(V{7, 0, 0, 1}), 1).valid);
    EXPECT_FALSE(decode_reserve(held(V{}), 1).valid);
}

TEST(Scripts, DecodeSettle) {
    std::vector<LockStart> out;
    ASSERT_TRUE(decode_settle(held(V{1, 900000, 2, 1000}), 2, out));
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[1].policy, 1u);
    EXPECT_EQ(out[1].lock_ms, 1000);
    out.clear();
    EXPECT_FALSE(decode_settle(held(V{1}), 2, out));
    EXPECT_FALSE(decode_settle(held(V{3, 1}), 2, out));
}

TEST(Scripts, BatchWritesEveryOperationsKeysThenEachLimitsListOnceThenTheOperations) {
    RespArgs k1, k2, k3, lim, other;
    k1.add("p:{a}");
    k2.add("p:{b}");
    k2.add("p:{c}");
    k3.add("p:{d}");
    PolicyLimits l;
    l.max_failures = 5;
    append_limits(lim, l);
    l.max_failures = 6;
    append_limits(other, l);
    std::string two_limits = lim.data + lim.data;

    GuardOp r = make_guard_reserve(k1.data, 1, lim.data);
    GuardOp s = make_guard_settle(k2.data, 2, Outcome::failure, 42, two_limits);
    GuardOp r2 = make_guard_reserve(k3.data, 1, lim.data);
    GuardOp r3 = make_guard_reserve(k1.data, 1, other.data);
    EXPECT_FALSE(r.settle);
    EXPECT_EQ(r.nargs, 2u + 5u);
    EXPECT_EQ(r.nhead, 2u);
    EXPECT_EQ(r.head(), "$1\r\nr\r\n$1\r\n1\r\n");
    EXPECT_EQ(r.limits(), lim.data);
    EXPECT_EQ(s.nargs, 4u + 10u);
    EXPECT_EQ(s.nhead, 4u);
    EXPECT_EQ(s.head(), "$1\r\ns\r\n$1\r\n2\r\n$1\r\nf\r\n$2\r\n42\r\n");
    EXPECT_EQ(s.limits(), two_limits);
    EXPECT_EQ(s.args(), std::string(s.head()) + two_limits);
    const GuardOp* ops[] = {&r, &s, &r2, &r3};
    RespArgs call = make_guard_batch(ops, 4, 60000);
    EXPECT_EQ(call.count, call.declared) << "as many arguments as the head declares";
    // EVALSHA sha numkeys=5 (keys of all, in order) hold nsets=3, each set
    // (count, limits) once in order of first use, then each operation's head
    // and its set's number: r and r2 share the first set
    std::string expect = "*" + std::to_string(2 + 1 + 5 + 1 + 1 + 6 + 11 + 6 + 3 + 5 + 3 + 3) +
                         "\r\n$7\r\nEVALSHA\r\n$40\r\n" + guard_batch_script().sha1 + "\r\n$1\r\n5\r\n" + k1.data +
                         k2.data + k3.data + k1.data + "$5\r\n60000\r\n$1\r\n3\r\n" + "$1\r\n5\r\n" + lim.data +
                         "$2\r\n10\r\n" + two_limits + "$1\r\n5\r\n" + other.data + "$1\r\nr\r\n$1\r\n1\r\n$1\r\n1\r\n" +
                         "$1\r\ns\r\n$1\r\n2\r\n$1\r\nf\r\n$2\r\n42\r\n$1\r\n2\r\n" +
                         "$1\r\nr\r\n$1\r\n1\r\n$1\r\n1\r\n" + "$1\r\nr\r\n$1\r\n1\r\n$1\r\n3\r\n";
    EXPECT_EQ(call.data, expect);
}

// The heads of 1 to 9 keys come from a table made once, others are written
// each time: both spell the same arguments.
TEST(Scripts, OperationHeadsOfEveryKeyCount) {
    for (size_t n = 1; n <= 12; n++) {
        std::string keys, limits;
        for (size_t i = 0; i < n; i++) {
            keys += "$5\r\np:{" + std::string(1, static_cast<char>('a' + i)) + "}\r\n";
            limits += "$1\r\n5\r\n$1\r\n1\r\n$1\r\n1\r\n$1\r\n0\r\n$1\r\n1\r\n";
        }
        std::string count = "$" + std::to_string(std::to_string(n).size()) + "\r\n" + std::to_string(n) + "\r\n";
        GuardOp r = make_guard_reserve(keys, n, limits);
        EXPECT_EQ(r.head(), "$1\r\nr\r\n" + count) << n;
        EXPECT_EQ(r.nhead, 2u);
        EXPECT_EQ(r.nargs, 2u + 5 * n);
        for (auto [o, letter] : {std::pair{Outcome::failure, 'f'}, {Outcome::success, 's'}, {Outcome::neutral, 'n'}}) {
            GuardOp s = make_guard_settle(keys, n, o, 1764547200123, limits);
            EXPECT_EQ(s.head(), "$1\r\ns\r\n" + count + "$1\r\n" + letter + "\r\n$13\r\n1764547200123\r\n")
                << n << letter;
            EXPECT_EQ(s.nhead, 4u);
            EXPECT_EQ(s.nargs, 4u + 5 * n);
            EXPECT_EQ(s.keys(), keys);
            EXPECT_EQ(s.limits(), limits);
        }
    }
}

// The module refills recycled operations: what a refill holds is exactly
// what a new operation holds, whatever the buffer held before (a longer
// settle, a shorter reserve).
TEST(Scripts, AnOperationFilledAgainEqualsANewOne) {
    RespArgs k1, k2, lim;
    k1.add("p:{a}");
    k2.add("p:{bb}");
    k2.add("p:{cc}");
    PolicyLimits l;
    l.max_failures = 5;
    append_limits(lim, l);
    std::string two_limits = lim.data + lim.data;
    auto same = [](const GuardOp& a, const GuardOp& b) {
        EXPECT_EQ(a.settle, b.settle);
        EXPECT_EQ(a.nkeys, b.nkeys);
        EXPECT_EQ(a.nargs, b.nargs);
        EXPECT_EQ(a.nhead, b.nhead);
        EXPECT_EQ(a.data, b.data);
        EXPECT_EQ(a.keys(), b.keys());
        EXPECT_EQ(a.head(), b.head());
        EXPECT_EQ(a.limits(), b.limits());
    };
    GuardOp op;
    make_guard_settle(op, k2.data, 2, Outcome::failure, 1234567890123, two_limits);
    same(op, make_guard_settle(k2.data, 2, Outcome::failure, 1234567890123, two_limits));
    make_guard_reserve(op, k1.data, 1, lim.data);
    same(op, make_guard_reserve(k1.data, 1, lim.data));
    make_guard_settle(op, k1.data, 1, Outcome::success, 7, lim.data);
    same(op, make_guard_settle(k1.data, 1, Outcome::success, 7, lim.data));
    make_guard_reserve(op, k2.data, 2, two_limits);
    same(op, make_guard_reserve(k2.data, 2, two_limits));
}

TEST(Scripts, DecodeBatchNeedsOneIntegerListPerOperation) {
    std::vector<int64_t> values;
    std::vector<size_t> bounds;
    auto op = [&](size_t i) { return V(values.begin() + bounds[i], values.begin() + bounds[i + 1]); };
    ASSERT_TRUE(decode_guard_batch(Reply::of_string("0 0 0 1764547200123,,1 900000 2 -5"), 3, values, bounds));
    EXPECT_EQ(op(0), (V{0, 0, 0, 1764547200123}));
    EXPECT_TRUE(op(1).empty());
    EXPECT_EQ(op(2), (V{1, 900000, 2, -5}));
    ASSERT_TRUE(decode_guard_batch(Reply::of_string(""), 1, values, bounds)) << "one empty list";
    EXPECT_TRUE(op(0).empty());
    ASSERT_TRUE(decode_guard_batch(Reply::of_string(",9223372036854775807"), 2, values, bounds));
    EXPECT_EQ(op(1), (V{INT64_MAX}));
    // 18 and 19 digits, either sign; a leading zero or "-0" is still a number
    ASSERT_TRUE(decode_guard_batch(
        Reply::of_string("999999999999999999 -999999999999999999 1000000000000000000 -9223372036854775808 -0 007"),
        1, values, bounds));
    EXPECT_EQ(op(0), (V{999999999999999999, -999999999999999999, 1000000000000000000, INT64_MIN, 0, 7}));

    Reply two = Reply::of_string("0 0 0 9,");
    EXPECT_FALSE(decode_guard_batch(two, 3, values, bounds)) << "one reply short";
    EXPECT_FALSE(decode_guard_batch(two, 1, values, bounds)) << "one reply too many";
    EXPECT_FALSE(decode_guard_batch(Reply::of_error("NOSCRIPT"), 1, values, bounds));
    EXPECT_FALSE(decode_guard_batch(Reply::of_array({Reply::of_array({}), Reply::of_array({})}), 2, values, bounds))
        << "the single scripts' shape is not the batch's";
    for (const char* bad : {"0  1", " 0", "0 ", "+1", "1e+15", "1.5", "x", "0,1,", "9223372036854775808", "-9223372036854775809", "99999999999999999999", "0\n1", "-", "--1", "1-",
                            "- 1", "1 -"}) {
        EXPECT_FALSE(decode_guard_batch(Reply::of_string(bad), 2, values, bounds)) << bad;
        EXPECT_FALSE(decode_guard_batch(Reply::of_string(bad), 1, values, bounds)) << bad;
    }
    EXPECT_FALSE(decode_guard_batch(Reply::of_string(""), 0, values, bounds)) << "no operation, no batch";
}

TEST(Answers, RetryAfterRoundsUp) {
    EXPECT_EQ(retry_after_seconds(1), 1);
    EXPECT_EQ(retry_after_seconds(1000), 1);
    EXPECT_EQ(retry_after_seconds(1001), 2);
    EXPECT_EQ(retry_after_seconds(0), 1);
    EXPECT_EQ(too_many_attempts_body(7), R"({"error":"too_many_attempts","retry_after":7})");
    EXPECT_EQ(error_body("key_required"), R"({"error":"key_required"})");
}

TEST(Scripts, FreshReserveIsTheFastPathsSetOfALoneKey) {
    RespArgs k1, k2, lim;
    k1.add("p:{a}");
    k2.add("p:{a}");
    k2.add("p:{b}");
    PolicyLimits l;
    l.max_failures = 5;
    append_limits(lim, l);
    GuardOp one = make_guard_reserve(k1.data, 1, lim.data);
    GuardOp two = make_guard_reserve(k2.data, 2, lim.data + lim.data);
    GuardOp settle = make_guard_settle(k1.data, 1, Outcome::success, 1700000060000, lim.data);
    EXPECT_FALSE(fresh_reserve_eligible(one)) << "a key anyone may name (an account, a code): its history would show";
    one.own_key = true;
    two.own_key = true;
    settle.own_key = true;
    EXPECT_TRUE(fresh_reserve_eligible(one));
    EXPECT_FALSE(fresh_reserve_eligible(two)) << "stacked keys: the script takes back what it wrote";
    EXPECT_FALSE(fresh_reserve_eligible(settle));
    // a part of a request split over Redis Cluster slots ('R', its value fixed)
    for (const GuardPart& p : split_guard_op(two, 1700000060000)) {
        EXPECT_FALSE(fresh_reserve_eligible(p.op));
    }
    // an operation's buffer is recycled: a new reserve starts not pinned
    make_guard_reserve(one, k1.data, 1, lim.data);
    EXPECT_FALSE(one.own_key);
    one.own_key = true;

    RespArgs call = make_guard_fresh_reserve(one, 1700000060000, 60000);
    EXPECT_EQ(call.count, 6u);
    // guard_ops_common.lua's reservation_only(): '|||' .. reservation .. '|'
    EXPECT_EQ(call.data, "*6\r\n$3\r\nSET\r\n" + k1.data + "$17\r\n|||1700000060000|\r\n$2\r\nNX\r\n$2\r\nPX\r\n$5\r\n60000\r\n");

    EXPECT_TRUE(fresh_reserve_taken(Reply{Reply::Type::status, 0, "OK", {}}));
    EXPECT_FALSE(fresh_reserve_taken(Reply::nil_reply())) << "the key exists";
    EXPECT_FALSE(fresh_reserve_taken(Reply::of_string("OK"))) << "a bulk string is not SET's answer";
    EXPECT_FALSE(fresh_reserve_taken(Reply::of_error("OOM command not allowed")));
    auto answer = fresh_reserve_answer(1700000060000);
    ReserveReply rr = decode_reserve(IntList(answer.data(), answer.size()), 1);
    EXPECT_TRUE(rr.valid);
    EXPECT_EQ(rr.status, ReserveStatus::allowed);
    EXPECT_EQ(rr.reservation, 1700000060000);
}

// The reserves of a batch go as SETs together or not at all: each of one
// key, no key named twice in the batch (a settle of that key, another
// reserve, a stacked reserve naming it), at most `max`.
TEST(Scripts, FreshReservesAreDisjointLoneKeys) {
    PolicyLimits l;
    l.max_failures = 5;
    RespArgs lim;
    append_limits(lim, l);
    auto key = [](std::string name) {
        RespArgs k;
        k.add(name);
        return k.data;
    };
    auto own = [&](std::string name) {
        GuardOp op = make_guard_reserve(key(name), 1, lim.data);
        op.own_key = true;
        return op;
    };
    GuardOp a = own("p:a");
    GuardOp b = own("p:b");
    GuardOp c = own("p:c");
    GuardOp a_again = own("p:a");
    GuardOp account = make_guard_reserve(key("p:acct"), 1, lim.data);
    GuardOp settle_x = make_guard_settle(key("p:x"), 1, Outcome::success, 1700000060000, lim.data);
    GuardOp settle_a = make_guard_settle(key("p:a"), 1, Outcome::failure, 1700000060000, lim.data);
    GuardOp stacked_xa = make_guard_settle(key("p:x") + key("p:a"), 2, Outcome::neutral, 1700000060000,
                                           lim.data + lim.data);
    GuardOp stacked = make_guard_reserve(key("p:y") + key("p:z"), 2, lim.data + lim.data);
    stacked.own_key = true;
    GuardOp longer = make_guard_settle(key("p:ab"), 1, Outcome::success, 1700000060000, lim.data);
    auto count = [](std::vector<const GuardOp*> ops, size_t max = 4) {
        return fresh_reserves(ops.data(), ops.size(), max);
    };
    EXPECT_EQ(count({&a}), 1u);
    EXPECT_EQ(count({&a, &b, &c}), 3u);
    EXPECT_EQ(count({&account}), 0u) << "not pinned to the client";
    EXPECT_EQ(count({&a, &account}), 0u) << "with a key that is not pinned: one script call";
    EXPECT_EQ(count({&settle_x, &a, &settle_x, &b}), 2u) << "settles of other keys";
    EXPECT_EQ(count({&a, &b, &c}, 2), 0u) << "more than max: one script call";
    EXPECT_EQ(count({&settle_x}), 0u) << "no reserve";
    EXPECT_EQ(count({}), 0u);
    EXPECT_EQ(count({&a, &a_again}), 0u) << "the same key twice";
    EXPECT_EQ(count({&settle_a, &a}), 0u) << "a settle of its key comes first";
    EXPECT_EQ(count({&a, &settle_a}), 0u) << "a settle of its key comes after";
    EXPECT_EQ(count({&b, &stacked_xa, &a}), 0u) << "a stacked settle naming its key";
    EXPECT_EQ(count({&a, &stacked}), 0u) << "a stacked reserve goes to the script, and the batch with it";
    EXPECT_EQ(count({&b, &longer}), 1u) << "p:ab is not p:b";
    // p:a's RESP text ($3 p:a) is not inside $4 p:ab's, so this one is
    // sent the SET way; what is found is only ever a stricter answer
    EXPECT_EQ(count({&a, &longer}), 1u);
    RespArgs raw;
    raw.add(std::string("q") + key("p:a"));
    GuardOp embeds = make_guard_settle(raw.data, 1, Outcome::success, 1700000060000, lim.data);
    EXPECT_EQ(count({&a, &embeds}), 0u) << "a key holding another's RESP text: the script, to be safe";

    // one reserve sent apart from the rest of its batch
    auto apart = [](std::vector<const GuardOp*> ops, size_t i) { return fresh_reserve_apart(ops.data(), ops.size(), i); };
    EXPECT_TRUE(apart({&settle_x, &a}, 1)) << "beside a settle of another key";
    EXPECT_TRUE(apart({&a, &account, &settle_x}, 0)) << "beside a reserve that must go to the script";
    EXPECT_FALSE(apart({&a, &account, &settle_x}, 1)) << "not pinned to the client";
    EXPECT_FALSE(apart({&a, &account, &settle_x}, 2)) << "a settle";
    EXPECT_FALSE(apart({&settle_a, &a}, 1)) << "a settle of its key comes first";
    EXPECT_FALSE(apart({&a, &settle_a}, 0)) << "a settle of its key comes after";
    EXPECT_FALSE(apart({&stacked_xa, &a}, 1)) << "a stacked settle naming its key";
    EXPECT_FALSE(apart({&a, &a_again}, 0)) << "the same key twice";
    EXPECT_FALSE(apart({&stacked, &settle_x}, 0)) << "a stacked reserve";
    EXPECT_FALSE(apart({&a, &embeds}, 0)) << "a key holding its RESP text";
    EXPECT_TRUE(apart({&b, &longer}, 0)) << "p:ab is not p:b";
    EXPECT_FALSE(apart({&a}, 1)) << "no such operation";

}
