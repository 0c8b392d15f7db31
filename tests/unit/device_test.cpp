#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "device.hpp"
#include "events.hpp"
#include "keys.hpp"
#include "pairing.hpp"
#include "policy.hpp"

using namespace pairguard;

namespace {

const std::string kSecret(32, 'k');

KeyTag account(const KeyDeriver& k, std::string_view policy, std::string_view value) {
    return k.tag("g", policy, value);
}

std::vector<std::string_view> values(std::string_view header, std::string_view name) {
    std::vector<std::string_view> out;
    cookie_values(header, name, out);
    return out;
}

}  // namespace

TEST(DevicePolicy, ParsesDeviceParameters) {
    PolicySpec spec;
    ASSERT_EQ(parse_policy_args({"key=$a", "max_failures=5", "window=1m", "lockout=1m", "device_cookie=pg_dev",
                                 "device_ttl=7d", "device_max_failures=3"},
                                spec),
              "");
    EXPECT_EQ(spec.device.cookie, "pg_dev");
    EXPECT_EQ(spec.device.ttl_ms, int64_t{7} * 86400 * 1000);
    EXPECT_EQ(spec.device.limits.max_failures, 3);
    EXPECT_EQ(spec.device.limits.lockout_ms, 60000);
    EXPECT_EQ(spec.limits.max_failures, 5);
}

TEST(DevicePolicy, DefaultsToThePolicysBudgetAndThirtyDays) {
    PolicySpec spec;
    ASSERT_EQ(parse_policy_args({"key=$a", "max_failures=5", "window=1m", "lockout=1m", "backoff=2",
                                 "max_lockout=1h", "device_cookie=d"},
                                spec),
              "");
    EXPECT_EQ(spec.device.ttl_ms, kDefaultDeviceTtlMs);
    EXPECT_EQ(spec.device.limits.max_failures, 5);
    EXPECT_EQ(spec.device.limits.backoff_milli, 2000);
    EXPECT_EQ(spec.device.limits.max_lockout_ms, 3600000);
}

TEST(DevicePolicy, RefusesBadDeviceParameters) {
    auto err = [](std::vector<std::string_view> extra) {
        std::vector<std::string_view> a{"key=$a", "max_failures=5", "window=1m", "lockout=1m"};
        a.insert(a.end(), extra.begin(), extra.end());
        PolicySpec spec;
        return parse_policy_args(a, spec);
    };
    EXPECT_EQ(err({"device_cookie="}), "invalid parameter \"device_cookie=\"");
    EXPECT_EQ(err({"device_cookie=a;b"}), "invalid parameter \"device_cookie=a;b\"");
    EXPECT_EQ(err({"device_cookie=a=b"}), "invalid parameter \"device_cookie=a=b\"");
    EXPECT_NE(err({"device_cookie=d", "device_ttl=0"}), "");
    EXPECT_NE(err({"device_cookie=d", "device_ttl=401d"}), "");
    EXPECT_NE(err({"device_cookie=d", "device_ttl=500ms"}), "");
    EXPECT_EQ(err({"device_cookie=d", "device_max_failures=0"}), "invalid parameter \"device_max_failures=0\"");
    EXPECT_EQ(err({"device_cookie=d", "device_max_failures=1001"}), "invalid parameter \"device_max_failures=1001\"");
    EXPECT_EQ(err({"device_ttl=1d"}), "\"device_ttl\" requires \"device_cookie\"");
    EXPECT_EQ(err({"device_max_failures=2"}), "\"device_max_failures\" requires \"device_cookie\"");
}

TEST(DeviceToken, RoundTripsForItsPolicyAndAccountOnly) {
    KeyDeriver k(kSecret);
    KeyTag alice = account(k, "login", "alice");
    KeyTag bob = account(k, "login", "bob");
    DeviceId id = new_device_id();
    std::string t = device_token(k, "login", alice, id, 2000);
    EXPECT_EQ(t.size(), 55u);

    auto got = device_token_check(k, "login", alice, t, 1000);
    ASSERT_TRUE(got);
    EXPECT_EQ(got->id, id);
    EXPECT_EQ(got->expires_s, 2000);
    EXPECT_FALSE(device_token_check(k, "login", bob, t, 1000)) << "another account's token";
    EXPECT_FALSE(device_token_check(k, "other", alice, t, 1000)) << "another policy's token";
    EXPECT_FALSE(device_token_check(k, "login", alice, t, 2000)) << "expired";
    KeyDeriver other(std::string(32, 'x'));
    EXPECT_FALSE(device_token_check(other, "login", alice, t, 1000)) << "another secret";
}

TEST(DeviceToken, AnyChangedCharacterIsRefused) {
    KeyDeriver k(kSecret);
    KeyTag alice = account(k, "login", "alice");
    std::string t = device_token(k, "login", alice, new_device_id(), 2000);
    const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (size_t i = 0; i < t.size(); i++) {
        for (char c : {alphabet[(alphabet.find(t[i]) + 1) % 64], alphabet[(alphabet.find(t[i]) + 63) % 64]}) {
            std::string f = t;
            f[i] = c;
            EXPECT_FALSE(device_token_check(k, "login", alice, f, 1000)) << "position " << i;
        }
    }
    EXPECT_FALSE(device_token_check(k, "login", alice, t.substr(1), 1000));
    EXPECT_FALSE(device_token_check(k, "login", alice, t + "A", 1000));
    EXPECT_FALSE(device_token_check(k, "login", alice, "", 1000));
    EXPECT_FALSE(device_token_check(k, "login", alice, std::string(55, 'A'), 1000));
}

TEST(DeviceToken, ALaterExpiryCannotBeForged) {
    // the expiry is under the MAC: a token re-encoded with a later expiry fails
    KeyDeriver k(kSecret);
    KeyTag alice = account(k, "login", "alice");
    std::string t = device_token(k, "login", alice, new_device_id(), 2000);
    std::string raw;
    ASSERT_TRUE(base64url_decode(t, raw));
    raw[1 + kDeviceIdBytes + 6] = static_cast<char>(0x7f);
    std::string forged = base64url(reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
    EXPECT_FALSE(device_token_check(k, "login", alice, forged, 1000));
}

TEST(DeviceToken, IsRenewedOnceHalfItsTimeIsGone) {
    EXPECT_FALSE(device_token_renew(1000 + 3600, 3600, 1000));
    EXPECT_FALSE(device_token_renew(1000 + 1801, 3600, 1000));
    EXPECT_TRUE(device_token_renew(1000 + 1800, 3600, 1000));
    EXPECT_TRUE(device_token_renew(1001, 2, 1000));
}

TEST(DeviceToken, IdsAndTagsDiffer) {
    KeyDeriver k(kSecret);
    KeyTag alice = account(k, "login", "alice");
    std::set<std::string> ids;
    for (int i = 0; i < 100; i++) {
        DeviceId id = new_device_id();
        ids.insert(std::string(id.begin(), id.end()));
    }
    EXPECT_EQ(ids.size(), 100u);
    DeviceId id = new_device_id();
    KeyTag d = device_tag(k, "login", alice, id);
    EXPECT_NE(d, alice);
    EXPECT_NE(d, device_tag(k, "login", account(k, "login", "bob"), id));
    EXPECT_NE(d, device_tag(k, "other", alice, id));
}

TEST(DeviceStoreKey, IsAHashTaggedGuardKeyWithItsOwnScope) {
    KeyTag t{};
    t[0] = 0xff;
    std::string key = device_store_key("pg:", t);
    EXPECT_EQ(key.rfind("pg:{d:", 0), 0u);
    EXPECT_EQ(key.size(), 3 + 3 + 16 + 1);
    EXPECT_EQ(key.back(), '}');
    EXPECT_NE(key, guard_store_key("pg:", t));
}

TEST(CookieValues, FindsTheNamedCookieWithOddSpacing) {
    EXPECT_EQ(values("a=1; dev=XYZ; b=2", "dev"), std::vector<std::string_view>{"XYZ"});
    EXPECT_EQ(values("dev=XYZ", "dev"), std::vector<std::string_view>{"XYZ"});
    EXPECT_EQ(values("  dev =  XYZ  ;b=2", "dev"), std::vector<std::string_view>{"XYZ"});
    EXPECT_EQ(values("a=1;dev=\"XYZ\"", "dev"), std::vector<std::string_view>{"XYZ"});
    EXPECT_EQ(values("\tdev=XYZ;", "dev"), std::vector<std::string_view>{"XYZ"});
    EXPECT_TRUE(values("device=XYZ; xdev=1; Dev=2", "dev").empty()) << "names are exact and case-sensitive";
    EXPECT_TRUE(values("dev; a=dev=1", "dev").empty());
    EXPECT_EQ(values("dev=", "dev"), std::vector<std::string_view>{""});
    EXPECT_EQ(values("a=x=y; dev=Q=", "dev"), std::vector<std::string_view>{"Q="});
}

TEST(CookieValues, KeepsDuplicatesInOrderUpToTheLimit) {
    EXPECT_EQ(values("dev=1; dev=2", "dev"), (std::vector<std::string_view>{"1", "2"}));
    std::string many, half1, half2;
    for (size_t i = 0; i < kDeviceCookiesChecked + 2; i++) {
        many += "dev=" + std::to_string(i) + ";";
        (i % 2 ? half1 : half2) += "dev=" + std::to_string(i) + "; ";
    }
    EXPECT_EQ(values(many, "dev").size(), kDeviceCookiesChecked);
    std::vector<std::string_view> out;
    cookie_values(half1, "dev", out);
    cookie_values(half2, "dev", out);
    EXPECT_EQ(out.size(), kDeviceCookiesChecked) << "the limit counts over several Cookie headers";
}

TEST(SetCookie, CarriesTheAttributes) {
    EXPECT_EQ(device_set_cookie("dev", "TOK", 2592000, false),
              "dev=TOK; Max-Age=2592000; Path=/; HttpOnly; SameSite=Strict");
    EXPECT_EQ(device_set_cookie("dev", "TOK", 60, true), "dev=TOK; Max-Age=60; Path=/; HttpOnly; SameSite=Strict; Secure");
}

TEST(CookieName, IsAnRfc6265Token) {
    EXPECT_TRUE(valid_cookie_name("pg_device"));
    EXPECT_TRUE(valid_cookie_name("__Host-dev"));
    EXPECT_FALSE(valid_cookie_name(""));
    EXPECT_FALSE(valid_cookie_name("a b"));
    EXPECT_FALSE(valid_cookie_name("a=b"));
    EXPECT_FALSE(valid_cookie_name("a;b"));
    EXPECT_FALSE(valid_cookie_name("a\"b"));
    EXPECT_FALSE(valid_cookie_name(std::string(65, 'a')));
}

TEST(DeviceEvents, LockAndUnlockOfADeviceNameItsScope) {
    std::string tag = "AAECAwQFBgcICQoL";  // 12 bytes, base64url
    auto j = event_json("locked|d|" + tag + "|5000");
    ASSERT_TRUE(j);
    EXPECT_NE(j->find("\"scope\":\"device\""), std::string::npos) << *j;
    EXPECT_NE(j->find("\"device\":\"00010203\""), std::string::npos) << *j;
    EXPECT_EQ(j->find(tag), std::string::npos) << "only the short label";
    auto ev = parse_event("unlocked|d|" + tag);
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev->kind, EventKind::unlocked_guard);
    EXPECT_EQ(ev->tag, tag);
    StoreCall c = make_unlock_device("pg:", "pg:{d:" + tag + "}");
    ASSERT_EQ(c.args.size(), 2u);
    EXPECT_EQ(c.args[1], "unlocked|d|" + tag);
}

TEST(DeviceCookies, OnlyTokenLengthValuesCountTowardTheLimit) {
    std::string token(kDeviceTokenChars, 'A');
    std::string header;
    for (int i = 0; i < 40; i++) {
        header += "dev=junk" + std::to_string(i) + "; ";
    }
    header += "dev=" + token;
    std::vector<std::string_view> out;
    cookie_values(header, "dev", out, kDeviceCookiesChecked, kDeviceTokenChars);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0], token);
}

TEST(DeviceCookie, HeaderIsVariableAsNginxReadsHttpNames) {
    EXPECT_TRUE(header_is_variable("X-Account", "x_account"));
    EXPECT_TRUE(header_is_variable("x-ACCOUNT", "x_account"));
    EXPECT_TRUE(header_is_variable("X_Account", "x_account"));
    EXPECT_FALSE(header_is_variable("X-Accounts", "x_account"));
    EXPECT_FALSE(header_is_variable("X-Acc", "x_account"));
}
