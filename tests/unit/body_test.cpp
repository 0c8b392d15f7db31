#include <gtest/gtest.h>

#include "body.hpp"

using namespace pairguard;

TEST(Body, JsonStringNumberAndBoolFields) {
    BodyFields b = parse_body_fields("application/json; charset=utf-8",
                                     R"({"pairing_code":"123456","n":42,"ok":true,"x":null,"o":{"a":1}})");
    ASSERT_EQ(b.status, BodyStatus::ok);
    EXPECT_EQ(b.get("pairing_code"), "123456");
    EXPECT_EQ(b.get("n"), "42");
    EXPECT_EQ(b.get("ok"), "true");
    EXPECT_EQ(b.get("x"), "");
    EXPECT_EQ(b.get("o"), "");
    EXPECT_EQ(b.get("missing"), "");
}

TEST(Body, MalformedJsonIsInvalid) {
    EXPECT_EQ(parse_body_fields("application/json", "{\"a\":").status, BodyStatus::invalid);
    EXPECT_EQ(parse_body_fields("application/json", "[1,2]").status, BodyStatus::invalid);
    EXPECT_EQ(parse_body_fields("application/json", "").status, BodyStatus::invalid);
}

TEST(Body, DuplicateJsonKeysAreInvalid) {
    // an upstream may read the other copy: refuse rather than guess
    EXPECT_EQ(parse_body_fields("application/json", R"({"c":"1","c":"2"})").status, BodyStatus::invalid);
}

TEST(Body, FormFieldsAreDecoded) {
    BodyFields b = parse_body_fields("application/x-www-form-urlencoded", "pairing_code=12%2034&name=a+b&empty=&flag");
    ASSERT_EQ(b.status, BodyStatus::ok);
    EXPECT_EQ(b.get("pairing_code"), "12 34");
    EXPECT_EQ(b.get("name"), "a b");
    EXPECT_EQ(b.get("empty"), "");
}

TEST(Body, NoContentTypeSniffsJsonOrForm) {
    EXPECT_EQ(parse_body_fields("", "  {\"a\":\"1\"}").get("a"), "1");
    EXPECT_EQ(parse_body_fields("", "a=2").get("a"), "2");
}

TEST(Body, OtherTypesGiveNoFields) {
    BodyFields b = parse_body_fields("text/plain", "a=1");
    EXPECT_EQ(b.status, BodyStatus::unsupported);
    EXPECT_EQ(b.get("a"), "");
}

TEST(Body, FormDecodeKeepsBrokenEscapes) {
    EXPECT_EQ(form_decode("%zz%4"), "%zz%4");
    EXPECT_EQ(form_decode("%41%42"), "AB");
}
