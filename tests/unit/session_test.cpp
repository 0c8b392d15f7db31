#include <gtest/gtest.h>

#include <regex>

#include "encoding.hpp"
#include "session.hpp"

using namespace pairguard;

TEST(Tokens, TokenCarriesTheUserTagAnd256RandomBits) {
    KeyDeriver keys("0123456789abcdef0123456789abcdef");
    std::string tag = auth_user_tag(keys, "alice");
    EXPECT_EQ(tag.size(), kUserTagChars);
    EXPECT_EQ(tag, auth_user_tag(keys, "alice"));
    EXPECT_NE(tag, auth_user_tag(keys, "bob"));
    std::string a = generate_token(tag);
    std::string b = generate_token(tag);
    EXPECT_EQ(a.size(), kTokenChars);
    EXPECT_NE(a, b);
    EXPECT_TRUE(std::regex_match(a, std::regex("[A-Za-z0-9_-]{16}\\.[A-Za-z0-9_-]{43}")));
    EXPECT_EQ(token_user_tag(a), tag);
    EXPECT_THROW(generate_token("short"), std::invalid_argument);
}

TEST(Tokens, MalformedTokensHaveNoTag) {
    KeyDeriver keys("0123456789abcdef0123456789abcdef");
    std::string t = generate_token(auth_user_tag(keys, "alice"));
    EXPECT_FALSE(token_user_tag(""));
    EXPECT_FALSE(token_user_tag(t.substr(1)));
    EXPECT_FALSE(token_user_tag(t + "A"));
    std::string dotless = t;
    dotless[kUserTagChars] = 'A';
    EXPECT_FALSE(token_user_tag(dotless));
    std::string plus = t;
    plus[20] = '+';
    EXPECT_FALSE(token_user_tag(plus));
}

TEST(Tokens, StoreSeesOnlyAKeyedHashPerKind) {
    KeyDeriver keys("0123456789abcdef0123456789abcdef");
    std::string t = generate_token(auth_user_tag(keys, "alice"));
    std::string h = token_hash(keys, "session", t);
    EXPECT_EQ(h.size(), 22u);
    EXPECT_EQ(h, token_hash(keys, "session", t));
    EXPECT_NE(h, token_hash(keys, "handshake", t));
    EXPECT_EQ(h.find(t.substr(kUserTagChars + 1, 8)), std::string::npos);
    KeyDeriver other("another secret of at least 32 bytes!");
    EXPECT_NE(h, token_hash(other, "session", t));
}

TEST(Tokens, UserNames) {
    EXPECT_TRUE(valid_auth_user("alice"));
    EXPECT_TRUE(valid_auth_user("j\xc3\xb6rg"));
    EXPECT_TRUE(valid_auth_user("a,b=c d"));
    EXPECT_TRUE(valid_auth_user(std::string(kAuthUserMaxBytes, 'x')));
    EXPECT_FALSE(valid_auth_user(""));
    EXPECT_FALSE(valid_auth_user(std::string(kAuthUserMaxBytes + 1, 'x')));
    EXPECT_FALSE(valid_auth_user("a\nb"));
    EXPECT_FALSE(valid_auth_user(std::string("a\0b", 3)));
    EXPECT_FALSE(valid_auth_user("\xc3"));
    EXPECT_FALSE(valid_auth_user("\xed\xa0\x80"));  // surrogate
    EXPECT_FALSE(valid_auth_user("\xc2\x85"));      // C1 control
}

// ---- encoding.hpp ----

TEST(Encoding, LenientBase64TakesBothAlphabetsWithOrWithoutPadding) {
    std::string out;
    for (const char* in : {"+/+/", "-_-_", "+_-/"}) {
        ASSERT_TRUE(base64_decode_lenient(in, out)) << in;
        EXPECT_EQ(out, "\xfb\xff\xbf");
    }
    ASSERT_TRUE(base64_decode_lenient("YQ==", out));
    EXPECT_EQ(out, "a");
    ASSERT_TRUE(base64_decode_lenient("YQ", out));
    EXPECT_EQ(out, "a");
    ASSERT_TRUE(base64_decode_lenient("YWI=", out));
    EXPECT_EQ(out, "ab");
    ASSERT_TRUE(base64_decode_lenient("YWI", out));
    EXPECT_EQ(out, "ab");
    ASSERT_TRUE(base64_decode_lenient("", out));
    EXPECT_EQ(out, "");
    for (const char* bad :
         {"Y", "YQ=", "YWI==", "YQ===", "Y===", "YWJj=", "=", "YR==", "YWJ=", "Y Q", "YQ==YQ==", "!!!!"}) {
        EXPECT_FALSE(base64_decode_lenient(bad, out)) << bad;
    }
}

TEST(Encoding, StandardBase64IsPadded) {
    EXPECT_EQ(base64("a"), "YQ==");
    EXPECT_EQ(base64("\xfb\xff\xbf"), "+/+/");
    EXPECT_EQ(base64(""), "");
}

TEST(Tokens, HandshakeTokenSaysWhoseAndUntilWhenAndNeedsTheSecret) {
    KeyDeriver keys("0123456789abcdef0123456789abcdef");
    KeyDeriver other("another secret, also 32 bytes long!!");
    std::string tag = auth_user_tag(keys, "alice");
    std::string t = generate_handshake_token(keys, tag, 5000);
    EXPECT_EQ(t.size(), kTokenChars);
    EXPECT_EQ(token_user_tag(t), std::optional<std::string_view>(tag));
    EXPECT_NE(t, generate_handshake_token(keys, tag, 5000)) << "random part";
    auto ok = check_handshake_token(keys, t, 4999);
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->user_tag, tag);
    EXPECT_EQ(ok->expires_ms, 5000);
    EXPECT_FALSE(check_handshake_token(keys, t, 5000)) << "expired";
    EXPECT_FALSE(check_handshake_token(other, t, 0)) << "another secret";
    std::string moved = auth_user_tag(keys, "bob") + t.substr(kUserTagChars);
    EXPECT_FALSE(check_handshake_token(keys, moved, 0)) << "bound to its user";
    EXPECT_FALSE(check_handshake_token(keys, generate_token(tag), 0)) << "a session token is not one";
}
