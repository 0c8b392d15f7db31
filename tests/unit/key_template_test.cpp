#include <gtest/gtest.h>

#include "key_template.hpp"

using namespace pairguard;

TEST(KeyTemplate, SplitsVariablesAndLiterals) {
    std::vector<KeyPart> parts;
    ASSERT_EQ(parse_key_template("$binary_remote_addr:${http_x_account}-x", parts), "");
    ASSERT_EQ(parts.size(), 4u);
    EXPECT_TRUE(parts[0].variable);
    EXPECT_EQ(parts[0].text, "binary_remote_addr");
    EXPECT_FALSE(parts[1].variable);
    EXPECT_EQ(parts[1].text, ":");
    EXPECT_TRUE(parts[2].variable);
    EXPECT_EQ(parts[2].text, "http_x_account");
    EXPECT_EQ(parts[3].text, "-x");
}

TEST(KeyTemplate, SingleVariable) {
    std::vector<KeyPart> parts;
    ASSERT_EQ(parse_key_template("$pairguard_body_pairing_code", parts), "");
    ASSERT_EQ(parts.size(), 1u);
    EXPECT_EQ(parts[0].text, "pairguard_body_pairing_code");
}

TEST(KeyTemplate, RejectsBrokenSyntax) {
    std::vector<KeyPart> parts;
    EXPECT_NE(parse_key_template("${oops", parts), "");
    EXPECT_NE(parse_key_template("$", parts), "");
    EXPECT_NE(parse_key_template("${a-b}", parts), "");
    EXPECT_NE(parse_key_template("$1", parts), "");
}
