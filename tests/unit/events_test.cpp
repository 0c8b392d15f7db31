// event_json: the stream's payloads as JSON, with labels only.
#include <gtest/gtest.h>

#include "events.hpp"

using pairguard::event_json;

namespace {

// 16 bytes 0x00..0x0f as base64url (22 characters): label "00010203"
const char kTag[] = "AAECAwQFBgcICQoLDA0ODw";
// 12 bytes as a guard key's hash tag (16 characters): label "c0ffee00"
const char kGuard[] = "wP_uAAECAwQFBgcI";

}  // namespace

TEST(Events, Pairing) {
    EXPECT_EQ(*event_json(std::string("approved|") + kTag + "|" + kTag, 5),
              "{\"type\":\"pairing_approved\",\"ts_ms\":5,\"platform\":\"00010203\",\"user\":\"00010203\"}");
    EXPECT_EQ(*event_json(std::string("wrong_approval|p|") + kTag + "|2"),
              "{\"type\":\"wrong_approval\",\"platform\":\"00010203\",\"codes_burned\":2}");
    EXPECT_EQ(*event_json(std::string("requested|p|") + kTag + "|" + kTag),
              "{\"type\":\"pairing_request\",\"platform\":\"00010203\",\"user\":\"00010203\"}");
}

TEST(Events, Locks) {
    EXPECT_EQ(*event_json(std::string("locked|g|") + kGuard + "|60000"),
              "{\"type\":\"lock\",\"scope\":\"guard\",\"key\":\"c0ffee00\",\"lock_ms\":60000}");
    EXPECT_EQ(*event_json(std::string("lock_ended|g|") + kGuard),
              "{\"type\":\"lock_end\",\"scope\":\"guard\",\"key\":\"c0ffee00\"}");
    EXPECT_EQ(*event_json(std::string("unlocked|p|") + kTag),
              "{\"type\":\"unlock\",\"scope\":\"platform\",\"platform\":\"00010203\"}");
    EXPECT_EQ(*event_json(std::string("locked|aa|") + kGuard + "|1"),
              "{\"type\":\"lock\",\"scope\":\"login_address\",\"address\":\"c0ffee00\",\"lock_ms\":1}");
}

TEST(Events, SessionTokenHashLeftOut) {
    auto j = event_json(std::string("revoked_session|") + kGuard + "|" + kTag);
    ASSERT_TRUE(j);
    EXPECT_EQ(*j, "{\"type\":\"session_revoked\",\"user\":\"c0ffee00\"}");
}

TEST(Events, UnknownOrMalformedIsNothing) {
    EXPECT_FALSE(event_json("approved|not a tag|x"));
    EXPECT_FALSE(event_json("locked|g|" + std::string(kGuard) + "|12ab"));
    EXPECT_FALSE(event_json("locked|zz|" + std::string(kGuard) + "|1"));
    EXPECT_FALSE(event_json("something|else"));
    EXPECT_FALSE(event_json(""));
    EXPECT_EQ(pairguard::stream_id_ms("1796048593497-0"), 1796048593497);
    EXPECT_EQ(pairguard::stream_id_ms("x-0"), 0);
}
