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

// Which keys hold their caller's own history (the script-free reserve's
// condition) and which name an account (device_cookie's).
TEST(KeyTemplate, PinnedToClientAndNamesAccount) {
    auto parts = [](std::string_view t) {
        std::vector<KeyPart> p;
        EXPECT_EQ(parse_key_template(t, p), "");
        return p;
    };
    EXPECT_TRUE(key_pinned_to_client(parts("$remote_addr")));
    EXPECT_TRUE(key_pinned_to_client(parts("ip:$binary_remote_addr")));
    EXPECT_TRUE(key_pinned_to_client(parts("${pairguard_client_net}")));
    EXPECT_TRUE(key_pinned_to_client(parts("${pairguard_client_net}:$remote_addr")));
    EXPECT_TRUE(key_pinned_to_client(parts("$REMOTE_ADDR"))) << "nginx's names ignore case";
    EXPECT_FALSE(key_pinned_to_client(parts("$binary_remote_addr:$http_x_account")))
        << "behind a shared address (a NAT, a proxy without realip) a neighbour names another's account";
    EXPECT_FALSE(key_pinned_to_client(parts("$remote_addr$host"))) << "the client chooses the host";
    EXPECT_FALSE(key_pinned_to_client(parts(""))) << "no variable";
    EXPECT_FALSE(key_pinned_to_client(parts("$http_x_account")));
    EXPECT_FALSE(key_pinned_to_client(parts("$arg_code")));
    EXPECT_FALSE(key_pinned_to_client(parts("remote_addr"))) << "a literal";
    EXPECT_FALSE(key_pinned_to_client(parts("$realip_remote_addr"))) << "the proxy in front, once realip ran";
    EXPECT_FALSE(key_pinned_to_client(parts("$proxy_protocol_addr"))) << "empty without proxy_protocol";
    EXPECT_FALSE(key_pinned_to_client(parts("$http_x_forwarded_for"))) << "the client writes it";
    EXPECT_FALSE(key_pinned_to_client(parts("$remote_addr_x"))) << "another variable";

    EXPECT_TRUE(key_names_account(parts("$binary_remote_addr:$http_x_account")));
    EXPECT_TRUE(key_names_account(parts("$pairguard_body_user")));
    EXPECT_FALSE(key_names_account(parts("$binary_remote_addr")));
    EXPECT_FALSE(key_names_account(parts("$remote_addr:$host:$server_port")));
    EXPECT_FALSE(key_names_account(parts("literal")));
    EXPECT_FALSE(key_names_account(parts("$Remote_Addr"))) << "nginx's names ignore case";
    EXPECT_TRUE(key_names_account(parts("$HTTP_X_ACCOUNT")));
}
