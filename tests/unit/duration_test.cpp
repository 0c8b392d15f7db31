#include <gtest/gtest.h>

#include "duration.hpp"

using pairguard::parse_duration_ms;

TEST(Duration, ParsesNginxUnits) {
    EXPECT_EQ(parse_duration_ms("500ms"), 500);
    EXPECT_EQ(parse_duration_ms("2s"), 2000);
    EXPECT_EQ(parse_duration_ms("15m"), 15 * 60 * 1000);
    EXPECT_EQ(parse_duration_ms("1h30m"), 90 * 60 * 1000);
    EXPECT_EQ(parse_duration_ms("1d"), 86400 * 1000);
}

TEST(Duration, BareNumberIsSeconds) {
    EXPECT_EQ(parse_duration_ms("30"), 30000);
}

TEST(Duration, RejectsGarbage) {
    EXPECT_FALSE(parse_duration_ms(""));
    EXPECT_FALSE(parse_duration_ms("abc"));
    EXPECT_FALSE(parse_duration_ms("5x"));
    EXPECT_FALSE(parse_duration_ms("-5s"));
    EXPECT_FALSE(parse_duration_ms("1h30"));
    EXPECT_FALSE(parse_duration_ms("99999999999999999999d"));
}
