#include <gtest/gtest.h>

#include "auth_store.hpp"
#include "session.hpp"

using namespace pairguard;

namespace {

const std::string kSecret = "0123456789abcdef0123456789abcdef";
const std::string kPrefix = "pairguard:";

Reply arr(std::vector<Reply> e) {
    return Reply::of_array(std::move(e));
}
Reply str(std::string s) {
    return Reply::of_string(std::move(s));
}
Reply num(int64_t v) {
    return Reply::of_integer(v);
}

std::string parse_err(std::vector<std::string_view> args, AuthPolicy& p) {
    return parse_auth_policy_args(args, p);
}

}  // namespace

TEST(AuthPolicy, DefaultsAreSpecs) {
    AuthPolicy p;
    EXPECT_EQ(p.session_ttl_ms, 24 * 3600 * 1000LL);
    EXPECT_EQ(p.challenge_ttl_ms, 300000);
    EXPECT_EQ(p.max_failures, 5);
    EXPECT_EQ(p.lockout_ms, 900000);
    EXPECT_EQ(p.plaintext, Plaintext::tls_only);
}

TEST(AuthPolicy, ParsesEveryParameter) {
    AuthPolicy p;
    EXPECT_EQ(parse_err({"session_ttl=1h", "challenge_ttl=30s", "max_failures=3", "lockout=2m", "plaintext=on",
                         "argon2_m=65536", "argon2_t=3", "argon2_p=2"},
                        p),
              "");
    EXPECT_EQ(p.session_ttl_ms, 3600000);
    EXPECT_EQ(p.challenge_ttl_ms, 30000);
    EXPECT_EQ(p.max_failures, 3);
    EXPECT_EQ(p.lockout_ms, 120000);
    EXPECT_EQ(p.plaintext, Plaintext::on);
    EXPECT_EQ(p.argon2.m_kib, 65536u);
    EXPECT_EQ(p.argon2.t, 3u);
    EXPECT_EQ(p.argon2.p, 2u);
}

TEST(AuthPolicy, RefusesNonsense) {
    for (std::string_view bad : {"session_ttl=0", "max_failures=0", "max_failures=x", "plaintext=maybe", "what=1",
                                 "lockout", "argon2_m=999999999", "argon2_t=11"}) {
        AuthPolicy p;
        EXPECT_NE(parse_err({bad}, p), "") << bad;
    }
    AuthPolicy p;
    EXPECT_NE(parse_err({"lockout=1m", "lockout=2m"}, p), "");
}

TEST(AuthStore, EveryKeyOfAUserSharesItsHashTag) {
    KeyDeriver keys(kSecret);
    AuthUserKeys k = auth_user_keys(keys, kPrefix, "alice");
    std::string tag = "{a:" + auth_user_tag(keys, "alice") + "}";
    for (const std::string& key : {k.user, k.sessions, k.challenges, k.fail, k.lock, k.session("x"), k.handshake("y")}) {
        EXPECT_EQ(key.rfind(kPrefix + tag, 0), 0u) << key;
    }
    std::string token = generate_token(k.tag);
    StoreCall get = make_session_get(keys, kPrefix, token);
    ASSERT_NE(get.script, nullptr);
    EXPECT_EQ(get.keys[0], k.session(token_hash(keys, "session", token)));
    EXPECT_EQ(make_session_get(keys, kPrefix, "not-a-token").script, nullptr);
}

TEST(AuthStore, NoSecretInAnyCall) {
    KeyDeriver keys(kSecret);
    std::string token = generate_token(auth_user_tag(keys, "alice"));
    SessionCreate s;
    s.token = token;
    s.ttl_ms = 1000;
    for (const StoreCall& c : {make_session_create(keys, kPrefix, "alice", s), make_session_get(keys, kPrefix, token),
                               make_session_revoke(keys, kPrefix, token),
                               make_handshake_take(keys, kPrefix, token)}) {
        for (const auto& v : c.keys) {
            EXPECT_EQ(v.find(token.substr(kUserTagChars + 1)), std::string::npos);
        }
        for (const auto& v : c.args) {
            EXPECT_EQ(v.find(token.substr(kUserTagChars + 1)), std::string::npos);
        }
    }
}

TEST(AuthStore, ChallengeNonceNeedsTheSecret) {
    KeyDeriver a(kSecret), b("another secret, also 32 bytes long!!");
    std::string seed = generate_challenge_seed();
    std::string n = challenge_nonce(a, "AAAAAAAAAAAAAAAA", seed);
    EXPECT_EQ(n.size(), 44u);
    EXPECT_EQ(n, challenge_nonce(a, "AAAAAAAAAAAAAAAA", seed));
    EXPECT_NE(n, challenge_nonce(b, "AAAAAAAAAAAAAAAA", seed));
    EXPECT_NE(n, challenge_nonce(a, "BAAAAAAAAAAAAAAA", seed));
    EXPECT_EQ(n.find(seed), std::string::npos);
}

TEST(AuthStore, DecodesUserGet) {
    UserInfo u = decode_user_get(arr({num(1000), num(0), num(2), num(1), str("name"), str("alice"), str("argon2"),
                                      str("$argon2id$..."), str("revoked"),
                                      str("{\"reason\":\"lost\",\"revoked_ms\":5}"), str("protected"), str("1")}));
    ASSERT_TRUE(u.valid);
    EXPECT_TRUE(u.exists);
    EXPECT_EQ(u.name, "alice");
    EXPECT_EQ(u.failures, 2);
    EXPECT_EQ(u.sessions, 1);
    EXPECT_TRUE(u.revoked);
    EXPECT_EQ(u.revoked_reason, "lost");
    EXPECT_EQ(u.revoked_ms, 5);
    EXPECT_TRUE(u.protect);

    UserInfo none = decode_user_get(arr({num(1000), num(0), num(0), num(0)}));
    EXPECT_TRUE(none.valid);
    EXPECT_FALSE(none.exists);
    EXPECT_FALSE(decode_user_get(str("x")).valid);
}

TEST(AuthStore, DecodesSessions) {
    SessionCreated c = decode_session_create(arr({num(1), num(123456)}));
    EXPECT_TRUE(c.valid && c.ok);
    EXPECT_EQ(c.expires_ms, 123456);
    SessionCreated refused = decode_session_create(Reply::nil_reply());
    EXPECT_TRUE(refused.valid);
    EXPECT_FALSE(refused.ok);

    SessionInfo s = decode_session_get(
        arr({num(1000), str("{\"user\":\"bob\",\"created_ms\":1,\"expires_ms\":2000,\"method\":\"password\"}")}));
    EXPECT_TRUE(s.valid && s.found);
    EXPECT_EQ(s.user, "bob");
    SessionInfo expired = decode_session_get(
        arr({num(3000), str("{\"user\":\"bob\",\"created_ms\":1,\"expires_ms\":2000,\"method\":\"password\"}")}));
    EXPECT_TRUE(expired.valid);
    EXPECT_FALSE(expired.found);
    SessionInfo gone = decode_session_get(arr({num(3000)}));
    EXPECT_TRUE(gone.valid);
    EXPECT_FALSE(gone.found);
}

TEST(AuthStore, ParsesEvents) {
    auto s = parse_auth_event("revoked_session|AAAAAAAAAAAAAAAA|BBBBBBBBBBBBBBBBBBBBBA");
    ASSERT_TRUE(s);
    EXPECT_EQ(s->kind, AuthEventKind::revoked_session);
    EXPECT_EQ(s->user_tag, "AAAAAAAAAAAAAAAA");
    EXPECT_EQ(s->token_hash, "BBBBBBBBBBBBBBBBBBBBBA");
    auto u = parse_auth_event("revoked_user|AAAAAAAAAAAAAAAA");
    ASSERT_TRUE(u);
    EXPECT_EQ(u->kind, AuthEventKind::revoked_user);
    for (std::string_view bad : {"revoked_user|short", "revoked_user|AAAAAAAAAAAAAAAA|x", "revoked|a|b",
                                 "revoked_session|AAAAAAAAAAAAAAAA", "approved|x|y", ""}) {
        EXPECT_FALSE(parse_auth_event(bad)) << bad;
    }
}

TEST(AuthStore, ParsesBodies) {
    AuthInput in;
    EXPECT_EQ(parse_auth_body(R"({"user":"alice","password":"pw"})", in), "");
    EXPECT_EQ(in.user, "alice");
    EXPECT_EQ(in.password, "pw");
    EXPECT_NE(parse_auth_body(R"({"password":"pw"})", in), "");
    EXPECT_NE(parse_auth_body(R"({"user":""})", in), "");
    EXPECT_NE(parse_auth_body(R"({"user":"a","password":1})", in), "");
    EXPECT_NE(parse_auth_body(R"({"user":"a","user":"b"})", in), "");
    EXPECT_NE(parse_auth_body("not json", in), "");
}

TEST(AuthStore, AddressStartsAreCountedUnderTheAddressTag) {
    KeyDeriver keys(kSecret);
    AuthPolicy p;
    p.max_pending = 7;
    StoreCall c = make_address_start(keys, kPrefix, "192.0.2.1", p);
    AuthFailKeys k = auth_address_keys(keys, kPrefix, "192.0.2.1");
    EXPECT_EQ(c.keys, (std::vector<std::string>{k.lock, k.starts}));
    EXPECT_EQ(c.args[0], "7");
    EXPECT_EQ(k.starts.find("192.0.2.1"), std::string::npos) << "no address in clear";
    EXPECT_EQ(make_address_reset(keys, kPrefix, "192.0.2.1").keys, std::vector<std::string>{k.starts});
    AddressStart a = decode_address_start(arr({num(1500), num(0)}));
    EXPECT_TRUE(a.valid);
    EXPECT_EQ(a.lock_ms, 1500);
    EXPECT_FALSE(a.allowed);
    EXPECT_TRUE(decode_address_start(arr({num(0), num(1)})).allowed);
    EXPECT_FALSE(decode_address_start(num(1)).valid);
}

TEST(AuthStore, HandshakeStepsDecode) {
    EXPECT_EQ(decode_handshake_put(num(1)), std::optional<bool>(true));
    EXPECT_EQ(decode_handshake_put(num(0)), std::optional<bool>(false));
    EXPECT_FALSE(decode_handshake_put(Reply::nil_reply()));
    EXPECT_EQ(decode_handshake_take(str("{}")), std::optional<std::string>("{}"));
    EXPECT_FALSE(decode_handshake_take(str(""))) << "the used mark";
    EXPECT_FALSE(decode_handshake_take(Reply::nil_reply()));
}

TEST(AuthPolicy, MaxPending) {
    AuthPolicy p;
    EXPECT_EQ(p.max_pending, 20);
    EXPECT_EQ(parse_err({"max_pending=3"}, p), "");
    EXPECT_EQ(p.max_pending, 3);
    AuthPolicy q;
    EXPECT_NE(parse_err({"max_pending=0"}, q), "");
}
