#include <gtest/gtest.h>

#include <argon2.h>

#include <regex>
#include <thread>
#include <vector>

#include "password.hpp"

using namespace pairguard;

namespace {

// Small enough to run in a millisecond or so.
const Argon2Params kFast{64, 1, 1};

// A hash as libargon2 makes it, with any parameters (what a store could hold).
std::string raw_hash(uint32_t m, uint32_t t, uint32_t p, size_t salt_len = 16, size_t hash_len = 32) {
    std::string salt(salt_len, 's');
    std::vector<char> out(argon2_encodedlen(t, m, p, static_cast<uint32_t>(salt_len),
                                            static_cast<uint32_t>(hash_len), Argon2_id));
    EXPECT_EQ(argon2id_hash_encoded(t, m, p, "pw", 2, salt.data(), salt.size(), hash_len, out.data(), out.size()),
              ARGON2_OK);
    return out.data();
}

}  // namespace

TEST(Password, HashIsAnArgon2idPhcString) {
    std::string h = hash_password("hunter2", kFast);
    std::regex phc(R"(\$argon2id\$v=19\$m=64,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43})");
    EXPECT_TRUE(std::regex_match(h, phc)) << h;
    EXPECT_EQ(h.find("hunter2"), std::string::npos);
    EXPECT_NE(hash_password("hunter2", kFast), h) << "a fresh salt each time";
}

TEST(Password, VerifyAcceptsTheRightPasswordOnly) {
    std::string h = hash_password("hunter2", kFast);
    EXPECT_EQ(verify_password(h, "hunter2"), PasswordCheck::ok);
    EXPECT_EQ(verify_password(h, "hunter3"), PasswordCheck::mismatch);
    EXPECT_EQ(verify_password(h, ""), PasswordCheck::mismatch);
    EXPECT_EQ(verify_password(h, std::string("hunter2\0", 8)), PasswordCheck::mismatch);
    std::string empty = hash_password("", kFast);
    EXPECT_EQ(verify_password(empty, ""), PasswordCheck::ok);
}

TEST(Password, DefaultsAreOwaspMinimum) {
    Argon2Params d;
    EXPECT_EQ(d.m_kib, 19456u);
    EXPECT_EQ(d.t, 2u);
    EXPECT_EQ(d.p, 1u);
    std::string h = hash_password("correct horse battery staple");
    EXPECT_EQ(h.rfind("$argon2id$v=19$m=19456,t=2,p=1$", 0), 0u) << h;
    EXPECT_EQ(verify_password(h, "correct horse battery staple"), PasswordCheck::ok);
    EXPECT_EQ(verify_password(h, "correct horse battery stapler"), PasswordCheck::mismatch);
    EXPECT_FALSE(needs_rehash(h));
}

TEST(Password, StoredParametersAreParsed) {
    auto info = parse_password_hash(raw_hash(128, 3, 2, 16, 32));
    ASSERT_TRUE(info);
    EXPECT_EQ(info->params.m_kib, 128u);
    EXPECT_EQ(info->params.t, 3u);
    EXPECT_EQ(info->params.p, 2u);
    EXPECT_EQ(info->salt_bytes, 16u);
    EXPECT_EQ(info->hash_bytes, 32u);
}

TEST(Password, ParametersAboveTheCapsAreRefusedWithoutHashing) {
    // Forged strings: hashing them would take gigabytes or minutes, so the
    // test itself proves they are refused before libargon2 runs.
    std::string tail = "$c2FsdHNhbHRzYWx0c2FsdA$" + std::string(43, 'A');
    for (const char* params : {"m=4194304,t=2,p=1", "m=262145,t=2,p=1", "m=19456,t=11,p=1", "m=19456,t=1000000,p=1",
                               "m=19456,t=2,p=5", "m=19456,t=2,p=255"}) {
        std::string forged = std::string("$argon2id$v=19$") + params + tail;
        EXPECT_FALSE(parse_password_hash(forged)) << forged;
        EXPECT_EQ(verify_password(forged, "pw"), PasswordCheck::invalid_hash) << forged;
    }
    // at the caps is fine
    EXPECT_TRUE(parse_password_hash("$argon2id$v=19$m=262144,t=10,p=4" + tail));
    // caps are the caller's to choose
    Argon2Limits tight{1024, 3, 1};
    EXPECT_FALSE(parse_password_hash(raw_hash(2048, 1, 1), tight));
    EXPECT_EQ(verify_password(raw_hash(2048, 1, 1), "pw", tight), PasswordCheck::invalid_hash);
    EXPECT_EQ(verify_password(raw_hash(1024, 1, 1), "pw", tight), PasswordCheck::ok);
}

TEST(Password, OtherFormatsAreInvalid) {
    std::string good = raw_hash(64, 1, 1);
    std::string tail = good.substr(good.find("$", 20));  // "$SALT$HASH"
    for (const std::string& bad : {
             std::string(),
             std::string("hunter2"),
             raw_hash(64, 1, 1).replace(0, 9, "$argon2i"),          // Argon2i
             std::string("$argon2d$v=19$m=64,t=1,p=1") + tail,      // Argon2d
             std::string("$argon2id$v=16$m=64,t=1,p=1") + tail,     // old version
             std::string("$argon2id$m=64,t=1,p=1") + tail,          // no version
             std::string("$argon2id$v=19$t=1,m=64,p=1") + tail,     // order
             std::string("$argon2id$v=19$m=064,t=1,p=1") + tail,    // leading zero
             std::string("$argon2id$v=19$m=64,t=0,p=1") + tail,     // t < 1
             std::string("$argon2id$v=19$m=4,t=1,p=1") + tail,      // m < 8p
             std::string("$argon2id$v=19$m=64,t=1,p=1,x=1") + tail,
             std::string("$argon2id$v=19$m=64,t=1,p=1$c2FsdA$") + std::string(43, 'A'),   // 4-byte salt
             std::string("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$AAAA"),                 // 3-byte hash
             std::string("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ=$") + std::string(43, 'A'),  // padding
             good + "$extra",
             good.substr(0, good.size() - 1) + "!",
         }) {
        EXPECT_FALSE(parse_password_hash(bad)) << bad;
        EXPECT_EQ(verify_password(bad, "pw"), PasswordCheck::invalid_hash) << bad;
    }
    EXPECT_EQ(verify_password(good, "pw"), PasswordCheck::ok);
}

TEST(Password, WeakerStoredHashesNeedRehash) {
    Argon2Params policy{256, 2, 1};
    EXPECT_FALSE(needs_rehash(raw_hash(256, 2, 1), policy));
    EXPECT_FALSE(needs_rehash(raw_hash(512, 3, 2), policy)) << "stronger is kept";
    EXPECT_TRUE(needs_rehash(raw_hash(128, 2, 1), policy));
    EXPECT_TRUE(needs_rehash(raw_hash(256, 1, 1), policy));
    EXPECT_TRUE(needs_rehash(raw_hash(256, 2, 1, 8, 32), policy)) << "short salt";
    EXPECT_TRUE(needs_rehash(raw_hash(256, 2, 1, 16, 16), policy)) << "short hash";
    EXPECT_TRUE(needs_rehash("garbage", policy));
    EXPECT_TRUE(needs_rehash(hash_password("pw", kFast)));
}

TEST(Password, UnknownUsersCostTheSameAndNeverMatch) {
    EXPECT_EQ(verify_password_dummy("anything", kFast), PasswordCheck::mismatch);
    EXPECT_EQ(verify_password_dummy("", kFast), PasswordCheck::mismatch);
    EXPECT_THROW(verify_password_dummy("x", Argon2Params{1 << 30, 1, 1}), std::invalid_argument);
}

TEST(Password, OutOfRangeParametersAreRefusedForNewHashes) {
    EXPECT_THROW(hash_password("x", Argon2Params{64, 0, 1}), std::invalid_argument);
    EXPECT_THROW(hash_password("x", Argon2Params{64, 1, 0}), std::invalid_argument);
    EXPECT_THROW(hash_password("x", Argon2Params{8, 1, 2}), std::invalid_argument);
    EXPECT_THROW(hash_password("x", Argon2Params{300 * 1024, 1, 1}), std::invalid_argument);
}

TEST(Password, ThreadsHashAndVerifyConcurrently) {
    std::vector<std::thread> threads;
    std::vector<int> ok(8, 0);
    for (int i = 0; i < 8; i++) {
        threads.emplace_back([i, &ok] {
            std::string pw = "password " + std::to_string(i);
            std::string h = hash_password(pw, kFast);
            ok[static_cast<size_t>(i)] = verify_password(h, pw) == PasswordCheck::ok &&
                                         verify_password(h, pw + "x") == PasswordCheck::mismatch &&
                                         verify_password_dummy(pw, kFast) == PasswordCheck::mismatch;
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    for (int v : ok) {
        EXPECT_EQ(v, 1);
    }
}

TEST(Password, SameStringsAsLibargon2) {
    // hashed through argon2_ctx with mmap'd blocks, encoded by hand: libargon2
    // reads what this writes, and this reads what libargon2 writes
    std::string h = hash_password("hunter2", kFast);
    EXPECT_EQ(argon2id_verify(h.c_str(), "hunter2", 7), ARGON2_OK);
    EXPECT_EQ(argon2id_verify(h.c_str(), "hunter3", 7), ARGON2_VERIFY_MISMATCH);
    std::string l = raw_hash(64, 1, 1);  // the password "pw"
    EXPECT_EQ(verify_password(l, "pw"), PasswordCheck::ok);
    EXPECT_EQ(verify_password(l, "pW"), PasswordCheck::mismatch);
    std::string l2 = raw_hash(64, 2, 2, 8, 16);
    EXPECT_EQ(verify_password(l2, "pw"), PasswordCheck::ok);
    EXPECT_EQ(verify_password(l2, "p"), PasswordCheck::mismatch);
    std::string l3 = raw_hash(128, 1, 1, 64, 64);
    EXPECT_EQ(verify_password(l3, "pw"), PasswordCheck::ok);
}
