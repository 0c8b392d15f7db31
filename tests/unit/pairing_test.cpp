#include <gtest/gtest.h>

#include <jansson.h>

#include <array>
#include <set>

#include "pairing.hpp"

using namespace pairguard;

namespace {

const std::string kSecret = "0123456789abcdef0123456789abcdef";
const std::string kPrefix = "pairguard:";

std::string parse_err(std::vector<std::string_view> args) {
    PairingLimits l;
    return parse_pairing_policy_args(args, l);
}

Reply arr(std::vector<Reply> e) {
    return Reply::of_array(std::move(e));
}
Reply str(std::string s) {
    return Reply::of_string(std::move(s));
}
Reply num(int64_t v) {
    return Reply::of_integer(v);
}

// Parses a JSON body for checks that do not depend on key order.
std::string field(const std::string& json, const char* key) {
    json_error_t err;
    json_t* j = json_loads(json.c_str(), 0, &err);
    if (j == nullptr) {
        return "<unparsable>";
    }
    json_t* v = json_object_get(j, key);
    std::string out = v == nullptr ? "<absent>" : json_is_string(v) ? json_string_value(v) : "<not a string>";
    json_decref(j);
    return out;
}

}  // namespace

// ---- policy ----

TEST(PairingPolicy, DefaultsAreTheSeedsThresholds) {
    PairingLimits l;
    EXPECT_EQ(parse_pairing_policy_args({}, l), "");
    EXPECT_EQ(l.code_ttl_ms, 3600000);
    EXPECT_EQ(l.max_pending, 3);
    EXPECT_EQ(l.request_interval_ms, 600000);
    EXPECT_EQ(l.max_failures, 5);
    EXPECT_EQ(l.lockout_ms, 3600000);
    EXPECT_EQ(l.code_max_failures, 5);
    EXPECT_TRUE(l.platforms.empty());
}

TEST(PairingPolicy, ParsesEveryParameter) {
    PairingLimits l;
    EXPECT_EQ(parse_pairing_policy_args({"code_ttl=30m", "max_pending=10", "request_interval=1m", "max_failures=10",
                                         "lockout=5m", "code_max_failures=3", "platforms=telegram,whatsapp"},
                                        l),
              "");
    EXPECT_EQ(l.code_ttl_ms, 1800000);
    EXPECT_EQ(l.max_pending, 10);
    EXPECT_EQ(l.request_interval_ms, 60000);
    EXPECT_EQ(l.max_failures, 10);
    EXPECT_EQ(l.lockout_ms, 300000);
    EXPECT_EQ(l.code_max_failures, 3);
    EXPECT_EQ(l.platforms, (std::vector<std::string>{"telegram", "whatsapp"}));
    EXPECT_TRUE(platform_allowed(l, "whatsapp"));
    EXPECT_FALSE(platform_allowed(l, "signal"));
    EXPECT_TRUE(platform_allowed(PairingLimits{}, "signal"));
}

TEST(PairingPolicy, RefusesBadParametersInNginxStyle) {
    EXPECT_EQ(parse_err({"code_ttl=soon"}), "invalid parameter \"code_ttl=soon\"");
    EXPECT_EQ(parse_err({"code_ttl=0"}), "invalid parameter \"code_ttl=0\"");
    EXPECT_EQ(parse_err({"max_pending=0"}), "invalid parameter \"max_pending=0\"");
    EXPECT_EQ(parse_err({"max_failures=1001"}), "invalid parameter \"max_failures=1001\"");
    EXPECT_EQ(parse_err({"max_failures=-1"}), "invalid parameter \"max_failures=-1\"");
    EXPECT_EQ(parse_err({"lockout"}), "invalid parameter \"lockout\"");
    EXPECT_EQ(parse_err({"colour=red"}), "invalid parameter \"colour=red\"");
    EXPECT_EQ(parse_err({"platforms=Telegram"}), "invalid parameter \"platforms=Telegram\"");
    EXPECT_EQ(parse_err({"platforms=a,,b"}), "invalid parameter \"platforms=a,,b\"");
    EXPECT_EQ(parse_err({"platforms="}), "invalid parameter \"platforms=\"");
    EXPECT_EQ(parse_err({"platforms=a,b,a"}), "invalid parameter \"platforms=a,b,a\"");
    EXPECT_EQ(parse_err({"lockout=1h", "lockout=2h"}), "duplicate parameter \"lockout=2h\"");
}

TEST(PairingPolicy, PlatformListIsBounded) {
    // a listing without ?platform= runs one script per configured platform
    std::string list = "platforms=p0";
    for (size_t i = 1; i < kMaxPlatforms; i++) {
        list += ",p" + std::to_string(i);
    }
    PairingLimits l;
    ASSERT_EQ(parse_pairing_policy_args({list}, l), "");
    EXPECT_EQ(l.platforms.size(), kMaxPlatforms);
    list += ",one_more";
    EXPECT_EQ(parse_err({list}), "invalid parameter \"" + list + "\"");
}

TEST(PairingPolicy, PlatformAllowed) {
    PairingLimits any;
    EXPECT_TRUE(platform_allowed(any, "irc"));
    PairingLimits listed;
    ASSERT_EQ(parse_pairing_policy_args({"platforms=telegram,whatsapp"}, listed), "");
    EXPECT_TRUE(platform_allowed(listed, "whatsapp"));
    EXPECT_FALSE(platform_allowed(listed, "irc"));
}

// ---- codes ----

TEST(PairingCode, EightSymbolsOfTheUnambiguousAlphabet) {
    EXPECT_EQ(kCodeAlphabet.size(), 32u);
    for (char c : std::string("0O1I")) {
        EXPECT_EQ(kCodeAlphabet.find(c), std::string_view::npos) << c;
    }
    for (int i = 0; i < 1000; i++) {
        std::string code = generate_code();
        ASSERT_EQ(code.size(), 8u);
        for (char c : code) {
            ASSERT_NE(kCodeAlphabet.find(c), std::string_view::npos) << code;
        }
    }
}

TEST(PairingCode, EveryByteValueMapsAndEachSymbolHasExactlyEightPreimages) {
    // 256 % 32 == 0: the low five bits of a uniform byte are uniform.
    std::array<int, 32> hits{};
    for (int b = 0; b < 256; b++) {
        uint8_t bytes[kCodeLength] = {static_cast<uint8_t>(b)};
        char c = code_from_bytes(bytes)[0];
        hits[kCodeAlphabet.find(c)]++;
    }
    for (int h : hits) {
        EXPECT_EQ(h, 8);
    }
    uint8_t first[kCodeLength] = {0, 31, 32, 255, 8, 23, 24, 63};
    EXPECT_EQ(code_from_bytes(first), "A9A9JZ29");
}

TEST(PairingCode, GeneratorShowsNoBiasPerPosition) {
    constexpr int kCodes = 200000;
    std::array<std::array<int, 32>, kCodeLength> counts{};
    for (int i = 0; i < kCodes; i++) {
        std::string code = generate_code();
        for (size_t p = 0; p < kCodeLength; p++) {
            counts[p][kCodeAlphabet.find(code[p])]++;
        }
    }
    const double expected = kCodes / 32.0;
    for (size_t p = 0; p < kCodeLength; p++) {
        double chi2 = 0;
        for (int n : counts[p]) {
            chi2 += (n - expected) * (n - expected) / expected;
        }
        // 31 degrees of freedom: mean 31, sd ~7.9; 110 is ~10 sd out, so an
        // unbiased generator never fails while a modulo-biased one
        // (e.g. byte % 30 over 32 symbols) lands in the thousands
        EXPECT_LT(chi2, 110.0) << "position " << p;
    }
}

TEST(PairingCode, ApprovalInputIgnoresCaseSpacesAndDashes) {
    EXPECT_EQ(normalize_code("ABCD2345"), "ABCD2345");
    EXPECT_EQ(normalize_code("abcd-2345"), "ABCD2345");
    EXPECT_EQ(normalize_code(" ab cd - 23 45 "), "ABCD2345");
    EXPECT_EQ(normalize_code("ABCD234"), std::nullopt);     // short
    EXPECT_EQ(normalize_code("ABCD23456"), std::nullopt);   // long
    EXPECT_EQ(normalize_code("ABCD2340"), std::nullopt);    // 0 is not in the alphabet
    EXPECT_EQ(normalize_code("ABCDO345"), std::nullopt);    // nor O
    EXPECT_EQ(normalize_code("ABCD\t2345"), std::nullopt);  // only spaces and dashes are ignored
    EXPECT_EQ(normalize_code(""), std::nullopt);
}

// ---- identities ----

TEST(PairingIdentity, PlatformNames) {
    EXPECT_EQ(normalize_platform("telegram"), "telegram");
    EXPECT_EQ(normalize_platform(" WhatsApp "), "whatsapp");
    EXPECT_EQ(normalize_platform("my-bot_2.test"), "my-bot_2.test");
    EXPECT_EQ(normalize_platform(""), std::nullopt);
    EXPECT_EQ(normalize_platform("a b"), std::nullopt);
    EXPECT_EQ(normalize_platform("a/b"), std::nullopt);
    EXPECT_EQ(normalize_platform(std::string(64, 'a')), std::string(64, 'a'));
    EXPECT_EQ(normalize_platform(std::string(65, 'a')), std::nullopt);
}

TEST(PairingIdentity, UserIdsAreTrimmedAndValidated) {
    EXPECT_EQ(normalize_user_id("telegram", "  12345 \n"), "12345");
    EXPECT_EQ(normalize_user_id("telegram", "+15551234567"), "+15551234567");  // only whatsapp folds
    EXPECT_EQ(normalize_user_id("telegram", "J\xc3\xbcrgen"), "J\xc3\xbcrgen");
    EXPECT_EQ(normalize_user_id("telegram", ""), std::nullopt);
    EXPECT_EQ(normalize_user_id("telegram", "   "), std::nullopt);
    EXPECT_EQ(normalize_user_id("telegram", "a\x01" "b"), std::nullopt);
    EXPECT_EQ(normalize_user_id("telegram", "a\nb"), std::nullopt);
    EXPECT_EQ(normalize_user_id("telegram", "a\xc2\x85" "b"), std::nullopt);  // C1 control
    EXPECT_EQ(normalize_user_id("telegram", "\xff"), std::nullopt);           // not UTF-8
    EXPECT_EQ(normalize_user_id("telegram", "\xc0\xaf"), std::nullopt);       // overlong
    EXPECT_EQ(normalize_user_id("telegram", "\xe2\x82"), std::nullopt);       // truncated
    EXPECT_EQ(normalize_user_id("telegram", std::string(256, 'x')), std::string(256, 'x'));
    EXPECT_EQ(normalize_user_id("telegram", std::string(257, 'x')), std::nullopt);
}

TEST(PairingIdentity, WhatsappFormsOfOneNumberAreOneUser) {
    for (const char* form : {"+15551234567", "15551234567", "15551234567@s.whatsapp.net", "15551234567@c.us",
                             " 15551234567@C.US ", "15551234567:12@s.whatsapp.net", "+15551234567@s.whatsapp.net"}) {
        EXPECT_EQ(normalize_user_id("whatsapp", form), "15551234567") << form;
    }
    // not phone numbers: kept as they are
    EXPECT_EQ(normalize_user_id("whatsapp", "120363041234567890@g.us"), "120363041234567890@g.us");
    EXPECT_EQ(normalize_user_id("whatsapp", "98765@lid"), "98765@lid");
    EXPECT_EQ(normalize_user_id("whatsapp", "alice"), "alice");
    EXPECT_EQ(normalize_user_id("whatsapp", "+"), "+");
}

TEST(PairingIdentity, UserNames) {
    EXPECT_EQ(normalize_user_name(""), "");
    EXPECT_EQ(normalize_user_name(" Alice "), "Alice");
    EXPECT_EQ(normalize_user_name("Al\x1b[31mice"), std::nullopt);
    EXPECT_EQ(normalize_user_name(std::string(257, 'x')), std::nullopt);
}

// ---- layout ----

TEST(PairingKeys, EveryKeyOfAPlatformSharesOneHashTag) {
    KeyDeriver d(kSecret);
    PlatformKeys k = platform_keys(d, kPrefix, "whatsapp");
    EXPECT_EQ(k.tag.size(), 22u);
    std::string tagged = kPrefix + "{p:" + k.tag + "}";
    EXPECT_EQ(k.base, tagged);
    EXPECT_EQ(k.pending, tagged + ":pending");
    EXPECT_EQ(k.approved, tagged + ":approved");
    EXPECT_EQ(k.fail, tagged + ":fail");
    EXPECT_EQ(k.lock, tagged + ":lock");
    std::string uh = user_hash(d, "whatsapp", "15551234567");
    EXPECT_EQ(uh.size(), 22u);
    EXPECT_EQ(k.rate(uh), tagged + ":rate:" + uh);
    EXPECT_NE(platform_keys(d, kPrefix, "telegram").tag, k.tag);
    EXPECT_EQ(platforms_key(kPrefix), "pairguard:pairing:platforms");
    EXPECT_EQ(events_channel(kPrefix), "pairguard:events");
}

TEST(PairingKeys, CodeHashIsTheFullHmacAndIdIsItsFirstFourBytes) {
    KeyDeriver d(kSecret);
    std::string h = code_hash(d, "telegram", "ABCD2345");
    EXPECT_EQ(h.size(), 43u);
    std::string msg = std::string("c") + '\0' + "telegram" + '\0' + "ABCD2345";
    auto mac = d.mac(msg);
    EXPECT_EQ(h, base64url(mac.data(), mac.size()));
    char hex[9];
    snprintf(hex, sizeof(hex), "%02x%02x%02x%02x", mac[0], mac[1], mac[2], mac[3]);
    EXPECT_EQ(code_id(h), hex);
    EXPECT_NE(code_hash(d, "whatsapp", "ABCD2345"), h);  // bound to the platform
    EXPECT_EQ(code_id("!!"), "");
}

TEST(PairingKeys, NoRawCodeOrUserInAnyKeyOrArgumentButTheNeededOnes) {
    KeyDeriver d(kSecret);
    PairingLimits limits;
    PairingRequest req{"whatsapp", "15551234567", "Alice"};
    StoreCall c = make_request(d, kPrefix, limits, req, "ABCD2345");
    ASSERT_EQ(c.script, &pairing_script(PairingOp::request));
    for (const std::string& k : c.keys) {
        EXPECT_EQ(k.find("ABCD2345"), std::string::npos) << k;
        EXPECT_EQ(k.find("15551234567"), std::string::npos) << k;
        EXPECT_EQ(k.find("whatsapp"), std::string::npos) << k;
    }
    for (const std::string& a : c.args) {
        EXPECT_EQ(a.find("ABCD2345"), std::string::npos) << a;
    }
    // the user id itself is an argument: the approved list shows it
    EXPECT_EQ(c.args[2], "15551234567");

    StoreCall a = make_approve(d, kPrefix, limits, "whatsapp", "ABCD2345");
    ASSERT_EQ(a.keys.size(), 4u);
    for (const std::string& s : a.keys) {
        EXPECT_EQ(s.find("ABCD2345"), std::string::npos) << s;
    }
    for (const std::string& s : a.args) {
        EXPECT_EQ(s.find("ABCD2345"), std::string::npos) << s;
    }
    EXPECT_EQ(a.args[0], c.args[0]);  // request and approve agree on the code's field
}

TEST(PairingKeys, RequestCallArguments) {
    KeyDeriver d(kSecret);
    PairingLimits limits;
    limits.code_ttl_ms = 1800000;
    limits.max_pending = 7;
    limits.request_interval_ms = 60000;
    StoreCall c = make_request(d, kPrefix, limits, PairingRequest{"telegram", "42", "Bob"}, "ABCD2345");
    PlatformKeys k = platform_keys(d, kPrefix, "telegram");
    std::string uh = user_hash(d, "telegram", "42");
    EXPECT_EQ(c.keys, (std::vector<std::string>{k.pending, k.rate(uh), k.lock}));
    EXPECT_EQ(c.args, (std::vector<std::string>{code_hash(d, "telegram", "ABCD2345"), uh, "42", "Bob", "1800000",
                                                "7", "60000"}));
}

TEST(PairingKeys, RevokeAndApproveEventsNameTheUserByHashOnly) {
    KeyDeriver d(kSecret);
    StoreCall r = make_revoke(d, kPrefix, "whatsapp", "15551234567");
    PlatformKeys k = platform_keys(d, kPrefix, "whatsapp");
    EXPECT_EQ(r.keys, std::vector<std::string>{k.approved});
    EXPECT_EQ(r.args[1], "pairguard:events");
    std::string uh = user_hash(d, "whatsapp", "15551234567");
    EXPECT_EQ(r.args[2], "revoked|" + k.tag + "|" + uh);
    auto ev = parse_event(r.args[2]);
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev->kind, EventKind::revoked);
    EXPECT_EQ(ev->tag, k.tag);
    EXPECT_EQ(ev->user_hash, uh);

    StoreCall a = make_approve(d, kPrefix, PairingLimits{}, "whatsapp", "ABCD2345");
    EXPECT_EQ(a.args[6], "approved|" + k.tag + "|");
    ev = parse_event(a.args[6] + uh);
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev->kind, EventKind::approved);

    StoreCall u = make_unlock_platform(d, kPrefix, "whatsapp");
    EXPECT_EQ(u.keys, (std::vector<std::string>{k.lock, k.fail}));
    ev = parse_event(u.args[1]);
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev->kind, EventKind::unlocked_platform);
    EXPECT_EQ(ev->tag, k.tag);

    StoreCall g = make_unlock_guard(d, kPrefix, "claim_ip", "10.0.0.1");
    EXPECT_EQ(g.keys, std::vector<std::string>{guard_store_key(kPrefix, d.tag("g", "claim_ip", "10.0.0.1"))});
    ev = parse_event(g.args[1]);
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev->kind, EventKind::unlocked_guard);
    EXPECT_EQ(g.keys[0], kPrefix + "{" + ev->tag + "}");
    EXPECT_EQ(hash_tag(k.pending), "p:" + k.tag);

    EXPECT_FALSE(parse_event("approved|x|y"));
    EXPECT_FALSE(parse_event("approved|" + k.tag));
    EXPECT_FALSE(parse_event("hello|" + k.tag + "|" + uh));
    EXPECT_FALSE(parse_event("approved|" + k.tag + "|" + uh + "|more"));
}

TEST(PairingKeys, AliasesShareTheRateMarker) {
    KeyDeriver d(kSecret);
    PairingLimits limits;
    auto rate_key = [&](const char* raw) {
        PairingRequest req{"whatsapp", *normalize_user_id("whatsapp", raw), ""};
        return make_request(d, kPrefix, limits, req, "ABCD2345").keys[1];
    };
    EXPECT_EQ(rate_key("+15551234567"), rate_key("15551234567@c.us"));
    EXPECT_EQ(rate_key("+15551234567"), rate_key("15551234567@s.whatsapp.net"));
    EXPECT_NE(rate_key("+15551234567"), rate_key("+15551234568"));
}

TEST(PairingScripts, EveryOpHasItsScript) {
    std::set<std::string> shas;
    for (const StoreScript* s : pairing_scripts()) {
        EXPECT_EQ(s->sha1.size(), 40u);
        EXPECT_NE(s->source.find("redis.call"), std::string_view::npos) << s->name;
        EXPECT_EQ(s->source.find("@include"), std::string_view::npos) << s->name;
        shas.insert(s->sha1);
    }
    EXPECT_EQ(shas.size(), pairing_scripts().size());
    EXPECT_EQ(pairing_script(PairingOp::approve).name, "pair_approve");
    // the shared helpers are included where they are used
    EXPECT_NE(pairing_script(PairingOp::request).source.find("local function live_pending"), std::string_view::npos);
}

// ---- replies ----

TEST(PairingReplies, Request) {
    RequestResult r = decode_request(arr({str("ok"), num(3600000)}));
    EXPECT_EQ(r.status, RequestStatus::ok);
    EXPECT_EQ(r.expires_in_ms, 3600000);
    r = decode_request(arr({str("rate_limited"), num(1500)}));
    EXPECT_EQ(r.status, RequestStatus::rate_limited);
    EXPECT_EQ(r.retry_ms, 1500);
    EXPECT_EQ(decode_request(arr({str("too_many_pending"), num(5)})).status, RequestStatus::too_many_pending);
    EXPECT_EQ(decode_request(arr({str("locked"), num(5)})).status, RequestStatus::locked);
    EXPECT_EQ(decode_request(arr({str("collision"), num(0)})).status, RequestStatus::collision);
    EXPECT_EQ(decode_request(arr({str("what"), num(0)})).status, RequestStatus::invalid);
    EXPECT_EQ(decode_request(arr({str("ok")})).status, RequestStatus::invalid);
    EXPECT_EQ(decode_request(Reply::of_error("ERR boom")).status, RequestStatus::invalid);
    EXPECT_EQ(decode_request(Reply::nil_reply()).status, RequestStatus::invalid);
}

TEST(PairingReplies, Approve) {
    ApproveResult r = decode_approve(arr({str("ok"), str("15551234567"), str("Alice")}));
    EXPECT_EQ(r.status, ApproveStatus::ok);
    EXPECT_EQ(r.user_id, "15551234567");
    EXPECT_EQ(r.user_name, "Alice");
    r = decode_approve(arr({str("locked"), num(90000)}));
    EXPECT_EQ(r.status, ApproveStatus::locked);
    EXPECT_EQ(r.retry_ms, 90000);
    r = decode_approve(arr({str("invalid_code"), num(2), num(3600000)}));
    EXPECT_EQ(r.status, ApproveStatus::invalid_code);
    EXPECT_EQ(r.burned, 2);
    EXPECT_EQ(r.lock_started_ms, 3600000);
    EXPECT_EQ(decode_approve(arr({str("ok"), str(""), str("")})).status, ApproveStatus::invalid);
    EXPECT_EQ(decode_approve(arr({str("invalid_code"), num(0)})).status, ApproveStatus::invalid);
}

TEST(PairingReplies, PendingListing) {
    KeyDeriver d(kSecret);
    std::string h1 = code_hash(d, "telegram", "ABCD2345"), h2 = code_hash(d, "telegram", "WXYZ6789");
    int64_t now = 1700000000000;
    Reply r = arr({num(now), str(h2),
                   str(R"({"user_id":"2","user_name":"B","uh":"x","created_ms":1699999990000,"expires_ms":1700003590000,"attempts":1})"),
                   str(h1),
                   str(R"({"user_id":"1","user_name":"A","uh":"y","created_ms":1699999000500,"expires_ms":1700002600500,"attempts":0})")});
    auto list = decode_pending(r, "telegram");
    ASSERT_TRUE(list);
    ASSERT_EQ(list->size(), 2u);
    const PendingEntry& a = (*list)[0];  // oldest first
    EXPECT_EQ(a.user_id, "1");
    EXPECT_EQ(a.user_name, "A");
    EXPECT_EQ(a.platform, "telegram");
    EXPECT_EQ(a.id, code_id(h1));
    EXPECT_EQ(a.age_seconds, 999);
    EXPECT_EQ(a.expires_in, 2601);
    EXPECT_EQ((*list)[1].age_seconds, 10);
    EXPECT_EQ((*list)[1].expires_in, 3590);

    EXPECT_TRUE(decode_pending(arr({num(now)}), "t")->empty());
    EXPECT_FALSE(decode_pending(arr({num(now), str(h1)}), "t"));
    EXPECT_FALSE(decode_pending(arr({num(now), str(h1), str("not json")}), "t"));
    EXPECT_FALSE(decode_pending(arr({}), "t"));
}

TEST(PairingReplies, ApprovedListingAndCheck) {
    Reply r = arr({str("15551234567"), str(R"({"user_name":"Alice","approved_ms":1700000005000})"), str("999"),
                   str(R"({"user_name":"","approved_ms":1600000000999})")});
    auto list = decode_approved(r, "whatsapp");
    ASSERT_TRUE(list);
    ASSERT_EQ(list->size(), 2u);
    EXPECT_EQ((*list)[0].user_id, "999");
    EXPECT_EQ((*list)[0].approved_at, 1600000000);
    EXPECT_EQ((*list)[1].user_name, "Alice");
    EXPECT_EQ((*list)[1].platform, "whatsapp");
    EXPECT_FALSE(decode_approved(arr({str("x")}), "w"));

    PairedCheck c = decode_check(str(R"({"user_name":"Alice","approved_ms":1})"));
    EXPECT_TRUE(c.valid);
    EXPECT_TRUE(c.approved);
    EXPECT_EQ(c.user_name, "Alice");
    c = decode_check(Reply::nil_reply());
    EXPECT_TRUE(c.valid);
    EXPECT_FALSE(c.approved);
    EXPECT_FALSE(decode_check(Reply::of_error("ERR")).valid);
}

TEST(PairingReplies, SmallOnes) {
    EXPECT_EQ(decode_clear(num(3)), 3);
    EXPECT_FALSE(decode_clear(str("3")));
    EXPECT_EQ(decode_revoke(num(1)), true);
    EXPECT_EQ(decode_revoke(num(0)), false);
    EXPECT_FALSE(decode_revoke(num(2)));
    EXPECT_EQ(decode_unlock(num(2)), 2);
    LockStatus l = decode_lock_status(arr({num(1500), num(3)}));
    EXPECT_TRUE(l.valid);
    EXPECT_EQ(l.retry_ms, 1500);
    EXPECT_EQ(l.failures, 3);
    auto p = decode_platforms(arr({str("whatsapp"), str("telegram"), str("Bad Name")}));
    ASSERT_TRUE(p);
    EXPECT_EQ(*p, (std::vector<std::string>{"telegram", "whatsapp"}));
}

// ---- HTTP bodies ----

TEST(PairingJson, RequestBody) {
    PairingRequest r;
    EXPECT_EQ(parse_request_body(R"({"platform":"WhatsApp","user_id":" +15551234567 ","user_name":"Alice"})", r), "");
    EXPECT_EQ(r.platform, "whatsapp");
    EXPECT_EQ(r.user_id, "15551234567");
    EXPECT_EQ(r.user_name, "Alice");
    EXPECT_EQ(parse_request_body(R"({"platform":"telegram","user_id":123456789})", r), "");
    EXPECT_EQ(r.user_id, "123456789");
    EXPECT_EQ(r.user_name, "");
    EXPECT_EQ(parse_request_body(R"({"platform":"telegram","user_id":"1","user_name":null})", r), "");

    EXPECT_EQ(parse_request_body("", r), "the body is not a JSON object");
    EXPECT_EQ(parse_request_body("[1]", r), "the body is not a JSON object");
    EXPECT_EQ(parse_request_body(R"({"platform":"a","platform":"b","user_id":"1"})", r),
              "the body is not a JSON object");
    EXPECT_EQ(parse_request_body(R"({"user_id":"1"})", r), "\"platform\" is missing");
    EXPECT_EQ(parse_request_body(R"({"platform":"telegram"})", r), "\"user_id\" is missing");
    EXPECT_EQ(parse_request_body(R"({"platform":7,"user_id":"1"})", r), "\"platform\" is not a string");
    EXPECT_EQ(parse_request_body(R"({"platform":"tele gram","user_id":"1"})", r).rfind("\"platform\" must", 0), 0u);
    EXPECT_EQ(parse_request_body(R"({"platform":"t","user_id":"  "})", r).rfind("\"user_id\" must", 0), 0u);
    EXPECT_EQ(parse_request_body(R"({"platform":"t","user_id":1.5})", r), "\"user_id\" is not a string");
    EXPECT_EQ(parse_request_body(R"({"platform":"t","user_id":"1","user_name":["x"]})", r),
              "\"user_name\" is not a string");
    EXPECT_EQ(parse_request_body(R"({"platform":"t","user_id":"1","user_name":"a\nb"})", r).rfind("\"user_name\" must", 0),
              0u);
}

TEST(PairingJson, ApproveBody) {
    ApproveInput in;
    EXPECT_EQ(parse_approve_body(R"({"platform":"telegram","code":"abcd-2345"})", in), "");
    EXPECT_EQ(in.platform, "telegram");
    EXPECT_EQ(in.code, "abcd-2345");
    EXPECT_EQ(parse_approve_body(R"({"platform":"telegram"})", in), "\"code\" is missing");
    EXPECT_EQ(parse_approve_body(R"({"platform":"telegram","code":12345678})", in), "\"code\" is not a string");
}

TEST(PairingJson, Answers) {
    EXPECT_EQ(render_code("ABCD2345", 3600), R"({"code":"ABCD2345","expires_in":3600})");
    EXPECT_EQ(render_user("whatsapp", "15551234567", "Al \"the\" ice"),
              R"({"platform":"whatsapp","user_id":"15551234567","user_name":"Al \"the\" ice"})");
    EXPECT_EQ(render_pending({}), R"({"pending":[]})");
    PendingEntry p{"telegram", "1a2b3c4d", "42", "Bob", 0, 61, 3539};
    EXPECT_EQ(render_pending({p}),
              R"({"pending":[{"platform":"telegram","id":"1a2b3c4d","user_id":"42","user_name":"Bob","age_seconds":61,"expires_in":3539}]})");
    EXPECT_EQ(render_cleared(2), R"({"cleared":2})");
    EXPECT_EQ(render_approved({ApprovedEntry{"telegram", "42", "Bob", 1700000000}}),
              R"({"approved":[{"platform":"telegram","user_id":"42","user_name":"Bob","approved_at":1700000000}]})");
    EXPECT_EQ(render_revoked(), R"({"revoked":true})");
    EXPECT_EQ(render_error("not_paired"), R"({"error":"not_paired"})");
    EXPECT_EQ(render_error("locked", 60), R"({"error":"locked","retry_after":60})");
    EXPECT_EQ(field(render_invalid_request("\"user_id\" is missing"), "message"), "\"user_id\" is missing");
    // bytes that are not UTF-8 never make an answer invalid JSON
    EXPECT_EQ(field(render_user("t", "a\xff" "b", ""), "user_id"), "a\xef\xbf\xbd" "b");
}

TEST(PairingJson, HttpStatuses) {
    RequestResult ok{RequestStatus::ok, 3600000, 0};
    HttpAnswer a = answer_request(ok, "ABCD2345");
    EXPECT_EQ(a.status, 201);
    EXPECT_EQ(a.body, R"({"code":"ABCD2345","expires_in":3600})");
    EXPECT_EQ(a.retry_after, 0);
    a = answer_request(RequestResult{RequestStatus::rate_limited, 0, 1500}, "X");
    EXPECT_EQ(a.status, 429);
    EXPECT_EQ(a.body, R"({"error":"rate_limited","retry_after":2})");
    EXPECT_EQ(a.retry_after, 2);
    EXPECT_EQ(answer_request(RequestResult{RequestStatus::too_many_pending, 0, 10}, "X").body,
              R"({"error":"too_many_pending","retry_after":1})");
    EXPECT_EQ(answer_request(RequestResult{RequestStatus::locked, 0, 60000}, "X").status, 429);
    EXPECT_EQ(answer_request(RequestResult{}, "X").status, 500);

    ApproveResult ar;
    ar.status = ApproveStatus::ok;
    ar.user_id = "42";
    ar.user_name = "Bob";
    a = answer_approve(ar, "telegram");
    EXPECT_EQ(a.status, 200);
    EXPECT_EQ(a.body, R"({"platform":"telegram","user_id":"42","user_name":"Bob"})");
    ar.status = ApproveStatus::invalid_code;
    EXPECT_EQ(answer_approve(ar, "telegram").status, 404);
    EXPECT_EQ(answer_approve(ar, "telegram").body, R"({"error":"invalid_code"})");
    ar.status = ApproveStatus::locked;
    ar.retry_ms = 3599001;
    a = answer_approve(ar, "telegram");
    EXPECT_EQ(a.status, 429);
    EXPECT_EQ(a.retry_after, 3600);

    EXPECT_EQ(answer_revoke(true).status, 200);
    EXPECT_EQ(answer_revoke(false).status, 404);
    EXPECT_EQ(answer_revoke(false).body, R"({"error":"not_found"})");
    EXPECT_EQ(answer_not_paired().status, 403);
    EXPECT_EQ(answer_not_paired().body, R"({"error":"not_paired"})");
}
