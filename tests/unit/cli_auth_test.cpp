// pairguardctl's auth helpers (src/cli/cli_auth.hpp): password input, the
// air-gapped challenge and response files, JSON text.
#include "cli_auth.hpp"
#include "encoding.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

using namespace pairguard;
using namespace pairguard::cli;

namespace {

// read_password on a pipe that holds `input`.
std::string read_from_pipe(const std::string& input) {
    int fds[2];
    EXPECT_EQ(pipe(fds), 0);
    EXPECT_EQ(write(fds[1], input.data(), input.size()), static_cast<ssize_t>(input.size()));
    close(fds[1]);
    try {
        SecretString s = read_password(fds[0]);
        close(fds[0]);
        return std::string(s.view());
    } catch (...) {
        close(fds[0]);
        throw;
    }
}

}  // namespace

TEST(CliPassword, StripsOneTrailingNewline) {
    EXPECT_EQ(read_from_pipe("hunter2\n"), "hunter2");
    EXPECT_EQ(read_from_pipe("hunter2\r\n"), "hunter2");
    EXPECT_EQ(read_from_pipe("hunter2"), "hunter2");
    EXPECT_EQ(read_from_pipe(" spaces kept \n"), " spaces kept ");
    EXPECT_EQ(read_from_pipe("caf\xc3\xa9\n"), "caf\xc3\xa9");
}

TEST(CliPassword, RefusesWithoutQuoting) {
    for (const std::string& bad : {std::string(""), std::string("\n"), std::string("two\n\n"),
                                   std::string("in\nside\n"), std::string("nul\0byte", 8), std::string("\xff\n"),
                                   std::string("\xc0\x80\n"), std::string(kPasswordMaxBytes + 1, 'x')}) {
        try {
            read_from_pipe(bad);
            ADD_FAILURE() << "accepted a bad password of " << bad.size() << " bytes";
        } catch (const InputError& e) {
            std::string msg = e.what();
            if (bad.size() > 3) {
                EXPECT_EQ(msg.find(bad.substr(0, 3)), std::string::npos) << msg;
            }
        }
    }
    EXPECT_EQ(read_from_pipe(std::string(kPasswordMaxBytes, 'x') + "\n").size(), kPasswordMaxBytes);
}

TEST(CliPassword, Problems) {
    EXPECT_EQ(password_problem("fine"), "");
    EXPECT_NE(password_problem(""), "");
    EXPECT_NE(password_problem("a\rb"), "");
    EXPECT_NE(password_problem("\xed\xa0\x80"), "");  // a surrogate
    EXPECT_EQ(password_problem("\xf0\x9f\x94\x91"), "");
}

TEST(CliChallengeFile, RoundTrip) {
    ChallengeFile c{"alice", "edge.example.com", std::string(43, 'A') + "=", 1700000000};
    std::string text = render_challenge_file(c);
    EXPECT_NE(text.find("\"message\":\"pairguard-auth-v1\\nedge.example.com\\nalice\\nAAAA"), std::string::npos);
    auto back = parse_challenge_file(text);
    ASSERT_TRUE(back);
    EXPECT_EQ(back->user, "alice");
    EXPECT_EQ(back->host, "edge.example.com");
    EXPECT_EQ(back->nonce, c.nonce);
    EXPECT_EQ(back->expires_at, 1700000000);

    std::string tampered = text;
    tampered.replace(tampered.find("\"user\":\"alice\""), 14, "\"user\":\"mallo\"");
    EXPECT_FALSE(parse_challenge_file(tampered)) << "message no longer matches";
    EXPECT_FALSE(parse_challenge_file("{}"));
    EXPECT_FALSE(parse_challenge_file("not json"));
}

TEST(CliResponseFile, Forms) {
    std::string raw(64, '\x01');
    raw[0] = '\xff';
    std::string b64 = base64(raw);
    ASSERT_EQ(b64.substr(b64.size() - 2), "==");
    EXPECT_EQ(parse_response_file(raw).signature, raw);
    EXPECT_EQ(parse_response_file(b64 + "\n").signature, raw);
    std::string url = b64.substr(0, b64.size() - 2);
    url[0] = '_';
    EXPECT_EQ(parse_response_file(url).signature, raw) << "base64url without padding";

    SignatureResponse j = parse_response_file("{\"signature\":\"" + b64 + "\",\"nonce\":\"N\",\"host\":\"h\"}");
    EXPECT_EQ(j.signature, raw);
    EXPECT_EQ(j.nonce.value_or(""), "N");
    EXPECT_EQ(j.host.value_or(""), "h");
    SignatureResponse j2 = parse_response_file("{\"signature\":\"" + b64 + "\"}");
    EXPECT_FALSE(j2.nonce);
    EXPECT_FALSE(j2.host);

    EXPECT_THROW(parse_response_file(""), InputError);
    EXPECT_THROW(parse_response_file(" \n"), InputError);
    EXPECT_THROW(parse_response_file("{\"nonce\":\"N\"}"), InputError);
    EXPECT_THROW(parse_response_file("{\"signature\":\"***\"}"), InputError);
    EXPECT_THROW(parse_response_file(std::string(300, '\x02')), InputError);
}

TEST(CliJson, Strings) {
    EXPECT_EQ(json_string("plain"), "\"plain\"");
    EXPECT_EQ(json_string("a\"b\\c\nd\x01"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    EXPECT_EQ(json_string("caf\xc3\xa9"), "\"caf\xc3\xa9\"");
    EXPECT_EQ(json_string("bad\xff"), "\"bad\xef\xbf\xbd\"");
}

TEST(CliTime, Utc) { EXPECT_EQ(utc_time_ms(1700000000123), "2023-11-14 22:13:20Z"); }
