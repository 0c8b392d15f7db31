#include <gtest/gtest.h>

#include "body.hpp"

#include <string>

using namespace pairguard;

namespace {

const char* kForm = "application/x-www-form-urlencoded";

// A multipart/form-data body with boundary "XyZ": each part is its header
// lines and content, joined with CRLF as a browser would.
std::string multipart(std::initializer_list<std::pair<std::string, std::string>> parts,
                      const std::string& boundary = "XyZ") {
    std::string out;
    for (const auto& [headers, content] : parts) {
        out += "--" + boundary + "\r\n" + headers + "\r\n\r\n" + content + "\r\n";
    }
    return out + "--" + boundary + "--\r\n";
}

std::string text_part(const std::string& name) {
    return "Content-Disposition: form-data; name=\"" + name + "\"";
}

}  // namespace

// ---- JSON ----

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
    EXPECT_FALSE(b.duplicated("pairing_code"));
}

TEST(Body, MovedFieldsKeepEverything) {
    // the glue keeps a request's fields in a std::optional, assigned once;
    // the values are wiped when they go, never when they move
    BodyFields a = parse_body_fields("application/json", R"({"account":"alice","c":"1","c":"2","s":[1]})");
    BodyFields b = parse_body_fields("application/x-www-form-urlencoded", "pin=4321");
    b = std::move(a);
    EXPECT_EQ(b.status, BodyStatus::ok);
    EXPECT_EQ(b.get("account"), "alice");
    EXPECT_EQ(b.get("pin"), "");
    EXPECT_TRUE(b.duplicated("c"));
    EXPECT_TRUE(b.ambiguous("s"));
    BodyFields c(std::move(b));
    EXPECT_EQ(c.get("account"), "alice");
    EXPECT_TRUE(c.duplicated("c"));
}

TEST(Body, PlusJsonTypesAreJson) {
    BodyFields b = parse_body_fields("application/merge-patch+json", R"({"a":"1"})");
    ASSERT_EQ(b.status, BodyStatus::ok);
    EXPECT_EQ(b.get("a"), "1");
}

TEST(Body, MalformedJsonIsInvalid) {
    EXPECT_EQ(parse_body_fields("application/json", "{\"a\":").status, BodyStatus::invalid);
    EXPECT_EQ(parse_body_fields("application/json", "[1,2]").status, BodyStatus::invalid);
    EXPECT_EQ(parse_body_fields("application/json", "\"a\"").status, BodyStatus::invalid);
    EXPECT_EQ(parse_body_fields("application/json", "{} x").status, BodyStatus::invalid);
    EXPECT_EQ(parse_body_fields("application/json", "  ").status, BodyStatus::invalid);
}

TEST(Body, DuplicateJsonKeysAreRecordedNotRefused) {
    // an upstream may read the other copy: the glue refuses when a key uses it
    BodyFields b = parse_body_fields("application/json", R"({"c":"1","d":"x","c":"2"})");
    ASSERT_EQ(b.status, BodyStatus::ok);
    EXPECT_TRUE(b.duplicated("c"));
    EXPECT_FALSE(b.duplicated("d"));
    EXPECT_EQ(b.get("d"), "x");
}

TEST(Body, JsonDuplicatesAreFoundWhateverTheValueType) {
    EXPECT_TRUE(parse_body_fields("application/json", R"({"c":null,"c":"2"})").duplicated("c"));
    EXPECT_TRUE(parse_body_fields("application/json", R"({"c":{"x":1},"c":[1]})").duplicated("c"));
}

TEST(Body, JsonDuplicatesCompareDecodedNames) {
    // "\u0061ccount" is "account": jansson (and every upstream) decodes it
    BodyFields b = parse_body_fields("application/json", R"({"account":"a","\u0061ccount":"b"})");
    ASSERT_EQ(b.status, BodyStatus::ok);
    EXPECT_TRUE(b.duplicated("account"));
}

TEST(Body, NestedRepeatsAreNotTopLevelDuplicates) {
    BodyFields b = parse_body_fields(
        "application/json", R"({"a":{"c":1,"c":2},"l":[{"c":1},{"c":2}],"s":"\"c\":","c":"top"})");
    ASSERT_EQ(b.status, BodyStatus::ok);
    EXPECT_FALSE(b.duplicated("c"));
    EXPECT_EQ(b.get("c"), "top");
    EXPECT_FALSE(b.duplicated("a"));
}

TEST(Body, JsonStringValuesThatLookLikeNamesAreNotNames) {
    BodyFields b = parse_body_fields("application/json", R"({"x":"c","y":"c , \"c\"","c":"1"})");
    ASSERT_EQ(b.status, BodyStatus::ok);
    EXPECT_FALSE(b.duplicated("c"));
    EXPECT_EQ(b.get("c"), "1");
}

// ---- urlencoded forms ----

TEST(Body, FormFieldsAreDecoded) {
    BodyFields b = parse_body_fields(kForm, "pairing_code=12%2034&name=a+b&empty=&flag");
    ASSERT_EQ(b.status, BodyStatus::ok);
    EXPECT_EQ(b.get("pairing_code"), "12 34");
    EXPECT_EQ(b.get("name"), "a b");
    EXPECT_EQ(b.get("empty"), "");
    EXPECT_FALSE(b.duplicated("pairing_code"));
}

TEST(Body, RepeatedFormNamesAreDuplicates) {
    BodyFields b = parse_body_fields(kForm, "account=random&other=1&account=victim");
    ASSERT_EQ(b.status, BodyStatus::ok);
    EXPECT_TRUE(b.duplicated("account"));
    EXPECT_FALSE(b.duplicated("other"));
    EXPECT_EQ(b.get("other"), "1");
}

TEST(Body, FormDuplicatesCompareDecodedNames) {
    EXPECT_TRUE(parse_body_fields(kForm, "account=a&%61ccount=b").duplicated("account"));
    EXPECT_TRUE(parse_body_fields(kForm, "a+b=1&a%20b=2").duplicated("a b"));
    EXPECT_TRUE(parse_body_fields(kForm, "account=&account").duplicated("account"));
}

// A key value a backend may read out of an array or an object: `["bob"]` is
// "bob" to a JavaScript string conversion, `{"$eq":"bob"}` to MongoDB,
// `account[]=bob` an array named account to PHP, Rails and qs.
TEST(Body, ArraysAndObjectsAreNoKeyValue) {
    BodyFields b = parse_body_fields("application/json",
                                     R"({"account":["bob"],"user":{"$eq":"bob"},"n":null,"s":"x","i":1})");
    ASSERT_EQ(b.status, BodyStatus::ok);
    EXPECT_TRUE(b.ambiguous("account"));
    EXPECT_TRUE(b.ambiguous("user"));
    EXPECT_FALSE(b.duplicated("account"));  // not repeated: structured
    EXPECT_EQ(b.get("account"), "");
    EXPECT_FALSE(b.ambiguous("n"));  // null: absent
    EXPECT_FALSE(b.ambiguous("s"));
    EXPECT_FALSE(b.ambiguous("i"));
    EXPECT_EQ(b.get("i"), "1");
    EXPECT_FALSE(b.ambiguous("other"));
}

TEST(Body, BracketSpellingsAreAnotherSpellingOfTheName) {
    EXPECT_TRUE(parse_body_fields(kForm, "account[]=bob").ambiguous("account"));
    EXPECT_TRUE(parse_body_fields(kForm, "account%5B%5D=bob").ambiguous("account"));
    EXPECT_TRUE(parse_body_fields(kForm, "account[x]=bob").ambiguous("account"));
    EXPECT_TRUE(parse_body_fields(kForm, "account=bob&Account[0]=eve").ambiguous("account"));
    EXPECT_TRUE(parse_body_fields("application/json", R"({"account[]":"bob"})").ambiguous("account"));
    EXPECT_TRUE(parse_body_fields("multipart/form-data; boundary=XyZ", multipart({{text_part("account[]"), "bob"}}))
                    .ambiguous("account"));
    // PHP reads an unclosed '[' as '_'
    EXPECT_TRUE(parse_body_fields(kForm, "account[x=bob").ambiguous("account_x"));
    EXPECT_EQ(canonical_field_name("account[]"), "account");
    EXPECT_EQ(canonical_field_name(" Account[a][b]"), "account");
    EXPECT_EQ(canonical_field_name("a.b[c"), "a_b_c");
    // a name with brackets, used as it is, is no other spelling of itself
    BodyFields b = parse_body_fields(kForm, "user[name]=bob");
    EXPECT_FALSE(b.ambiguous("user[name]"));
    EXPECT_EQ(b.get("user[name]"), "bob");
    EXPECT_FALSE(parse_body_fields(kForm, "account=bob&accounts[]=x").ambiguous("account"));
}

TEST(Body, FormThatLooksLikeJsonIsInvalid) {
    // a form encoder escapes '{': an upstream that ignores the Content-Type reads JSON here
    EXPECT_EQ(parse_body_fields(kForm, R"({"account":"victim"})").status, BodyStatus::invalid);
    EXPECT_EQ(parse_body_fields(kForm, " [1]").status, BodyStatus::invalid);
    EXPECT_EQ(parse_body_fields(kForm, "a=%7B").status, BodyStatus::ok);
}

TEST(Body, FormDecodeKeepsBrokenEscapes) {
    EXPECT_EQ(form_decode("%zz%4"), "%zz%4");
    EXPECT_EQ(form_decode("%41%42"), "AB");
}

// ---- no Content-Type ----

TEST(Body, NoContentTypeSniffsJsonOrForm) {
    EXPECT_EQ(parse_body_fields("", "  {\"a\":\"1\"}").get("a"), "1");
    EXPECT_EQ(parse_body_fields("", "a=2").get("a"), "2");
    EXPECT_EQ(parse_body_fields("  ", "a=3").get("a"), "3");
    EXPECT_TRUE(parse_body_fields("", "a=2&a=3").duplicated("a"));
    EXPECT_TRUE(parse_body_fields("", R"({"a":1,"a":2})").duplicated("a"));
    EXPECT_EQ(parse_body_fields("", "{a:1}").status, BodyStatus::invalid);
}

TEST(Body, NoContentTypeAndNotAFormIsUnsupported) {
    EXPECT_EQ(parse_body_fields("", "hello world").status, BodyStatus::unsupported);
    EXPECT_EQ(parse_body_fields("", "a=1\n").status, BodyStatus::unsupported);
    EXPECT_EQ(parse_body_fields("", "a=\xc3\xa9").status, BodyStatus::unsupported);
}

// ---- other types, empty bodies ----

TEST(Body, OtherTypesAreUnsupported) {
    for (const char* type : {"text/plain", "application/octet-stream", "multipart/mixed; boundary=x",
                             "application/xml", "text/json", "; boundary=x"}) {
        BodyFields b = parse_body_fields(type, "a=1");
        EXPECT_EQ(b.status, BodyStatus::unsupported) << type;
        EXPECT_EQ(b.get("a"), "") << type;
    }
}

TEST(Body, EmptyBodyIsOkWithNoFieldsWhateverTheType) {
    for (const char* type : {"", "application/json", kForm, "multipart/form-data", "text/plain"}) {
        BodyFields b = parse_body_fields(type, "");
        EXPECT_EQ(b.status, BodyStatus::ok) << type;
        EXPECT_EQ(b.get("a"), "") << type;
        EXPECT_FALSE(b.duplicated("a")) << type;
    }
    EXPECT_EQ(BodyFields().status, BodyStatus::ok);
}

// ---- multipart/form-data ----

TEST(Body, MultipartTextPartsAreFields) {
    std::string body = multipart({{text_part("account"), "alice"}, {text_part("note"), "two\r\nlines"}});
    BodyFields b = parse_body_fields("multipart/form-data; boundary=XyZ", body);
    ASSERT_EQ(b.status, BodyStatus::ok);
    EXPECT_EQ(b.get("account"), "alice");
    EXPECT_EQ(b.get("note"), "two\r\nlines");
    EXPECT_FALSE(b.duplicated("account"));
}

TEST(Body, MultipartQuotedBoundaryAndOddSpelling) {
    std::string body = multipart({{"content-disposition: FORM-DATA; name=account", "bob"}}, "a'b(c)+_,-./:=?");
    BodyFields b = parse_body_fields(R"(Multipart/Form-Data ; charset=utf-8; BOUNDARY="a'b(c)+_,-./:=?")", body);
    ASSERT_EQ(b.status, BodyStatus::ok);
    EXPECT_EQ(b.get("account"), "bob");
}

TEST(Body, MultipartBoundaryWithSpaceMustBeQuoted) {
    std::string body = multipart({{text_part("a"), "1"}}, "x y");
    EXPECT_EQ(parse_body_fields(R"(multipart/form-data; boundary="x y")", body).get("a"), "1");
    EXPECT_EQ(parse_body_fields("multipart/form-data; boundary=x y", body).status, BodyStatus::invalid);
}

TEST(Body, MultipartFilePartIsNotAField) {
    std::string body = multipart(
        {{"Content-Disposition: form-data; name=\"upload\"; filename=\"a.txt\"\r\nContent-Type: text/plain", "data"},
         {text_part("account"), "carol"}});
    BodyFields b = parse_body_fields("multipart/form-data; boundary=XyZ", body);
    ASSERT_EQ(b.status, BodyStatus::ok);
    EXPECT_EQ(b.get("upload"), "");
    EXPECT_EQ(b.get("account"), "carol");
}

TEST(Body, MultipartEmptyFilenameIsReadAsText) {
    // some frameworks read a part with filename="" as a text field
    std::string body = multipart({{"Content-Disposition: form-data; name=\"account\"; filename=\"\"", "dave"}});
    EXPECT_EQ(parse_body_fields("multipart/form-data; boundary=XyZ", body).get("account"), "dave");
}

TEST(Body, RepeatedMultipartNamesAreDuplicates) {
    std::string body = multipart({{text_part("account"), "random"}, {text_part("x"), "1"}, {text_part("account"), "victim"}});
    BodyFields b = parse_body_fields("multipart/form-data; boundary=XyZ", body);
    ASSERT_EQ(b.status, BodyStatus::ok);
    EXPECT_TRUE(b.duplicated("account"));
    EXPECT_FALSE(b.duplicated("x"));
}

TEST(Body, AFilePartRepeatingATextNameIsADuplicate) {
    std::string body = multipart(
        {{text_part("account"), "random"},
         {"Content-Disposition: form-data; name=\"account\"; filename=\"v.txt\"", "victim"}});
    EXPECT_TRUE(parse_body_fields("multipart/form-data; boundary=XyZ", body).duplicated("account"));
}

TEST(Body, MultipartAllowedExtras) {
    // transport padding after a delimiter, an epilogue, an explicit 8bit encoding, no parts at all
    std::string body = "--XyZ  \r\n" + text_part("a") + "\r\nContent-Transfer-Encoding: 8bit\r\n\r\n1\r\n--XyZ--\r\nbye";
    EXPECT_EQ(parse_body_fields("multipart/form-data; boundary=XyZ", body).get("a"), "1");
    EXPECT_EQ(parse_body_fields("multipart/form-data; boundary=XyZ", "--XyZ--").status, BodyStatus::ok);
}

TEST(Body, MalformedMultipartIsInvalid) {
    const std::string ct = "multipart/form-data; boundary=XyZ";
    const std::string good = multipart({{text_part("a"), "1"}});
    ASSERT_EQ(parse_body_fields(ct, good).status, BodyStatus::ok);

    struct Case {
        const char* what;
        std::string type, body;
    } cases[] = {
        {"no boundary", "multipart/form-data", good},
        {"empty boundary", "multipart/form-data; boundary=", good},
        {"unterminated quoted boundary", "multipart/form-data; boundary=\"XyZ", good},
        {"two boundaries", "multipart/form-data; boundary=XyZ; boundary=Q", good},
        {"another boundary", "multipart/form-data; boundary=Other", good},
        {"no closing delimiter", ct, "--XyZ\r\n" + text_part("a") + "\r\n\r\n1\r\n"},
        {"truncated", ct, good.substr(0, good.size() - 6)},
        {"a preamble", ct, "hello\r\n" + good},
        {"LF line ends", ct, "--XyZ\n" + text_part("a") + "\n\n1\n--XyZ--\n"},
        {"boundary inside content", ct, multipart({{text_part("a"), "x--XyZ"}})},
        {"parts after the close", ct, good + "--XyZ\r\n" + text_part("b") + "\r\n\r\n2\r\n--XyZ--"},
        {"no Content-Disposition", ct, multipart({{"Content-Type: text/plain", "1"}})},
        {"no header block", ct, "--XyZ\r\n\r\n1\r\n--XyZ--"},
        {"headers without an end", ct, "--XyZ\r\n" + text_part("a") + "\r\n--XyZ--"},
        {"two Content-Dispositions", ct, multipart({{text_part("a") + "\r\n" + text_part("b"), "1"}})},
        {"not form-data", ct, multipart({{"Content-Disposition: attachment; name=\"a\"", "1"}})},
        {"no name", ct, multipart({{"Content-Disposition: form-data; filename=\"f\"", "1"}})},
        {"name twice", ct, multipart({{"Content-Disposition: form-data; name=\"a\"; name=\"b\"", "1"}})},
        {"name*", ct, multipart({{"Content-Disposition: form-data; name=\"a\"; name*=UTF-8''b", "1"}})},
        {"backslash in a name", ct, multipart({{R"(Content-Disposition: form-data; name="a\"; x=")", "1"}})},
        {"unterminated name", ct, multipart({{"Content-Disposition: form-data; name=\"a", "1"}})},
        {"folded header", ct, multipart({{"Content-Disposition: form-data;\r\n name=\"a\"", "1"}})},
        {"header without colon", ct, multipart({{text_part("a") + "\r\nX-Junk", "1"}})},
        {"quoted-printable", ct, multipart({{text_part("a") + "\r\nContent-Transfer-Encoding: quoted-printable", "=41"}})},
        {"base64", ct, multipart({{text_part("a") + "\r\nContent-Transfer-Encoding: base64", "QQ=="}})},
        {"junk after a delimiter", ct, "--XyZjunk\r\n" + text_part("a") + "\r\n\r\n1\r\n--XyZ--"},
        {"JSON sent as multipart", ct, R"({"a":"1"})"},
    };
    for (const Case& c : cases) {
        BodyFields b = parse_body_fields(c.type, c.body);
        EXPECT_EQ(b.status, BodyStatus::invalid) << c.what;
        EXPECT_EQ(b.get("a"), "") << c.what;
    }
}

namespace {
// Whether a list is ambiguous for NAME when nginx reads `nginx_raw` (the
// raw text of $cookie_NAME / $arg_NAME; nullopt: nothing).
std::string decoded(std::string_view raw, PairList kind) {
    std::string out;
    pair_key_value(raw, kind, out);
    return out;
}
bool ambiguous_in(std::string_view list, PairList kind, std::string_view name,
                  std::optional<std::string_view> nginx_raw) {
    std::optional<std::string> nginx;
    NameCopies c;
    if (nginx_raw) {
        nginx = decoded(*nginx_raw, kind);
        c.differs = kind == PairList::cookie && !plain_cookie_value(*nginx_raw);
    }
    scan_name_copies(list, kind, name, nginx, c);
    return c.ambiguous(nginx.has_value());
}
constexpr PairList kCookie = PairList::cookie;
constexpr PairList kQuery = PairList::query;
}  // namespace

TEST(NameCopies, OneCopyNginxReadsIsClear) {
    EXPECT_FALSE(ambiguous_in("sid=1; other=2", kCookie, "sid", "1"));
    EXPECT_FALSE(ambiguous_in("theme=dark", kCookie, "sid", std::nullopt));  // absent
    EXPECT_FALSE(ambiguous_in("", kQuery, "user", std::nullopt));
    EXPECT_FALSE(ambiguous_in(" sid = 1 ;xsid=2;sidx=3", kCookie, "sid", "1 "));
    // JWTs and base64 are plain cookie values
    EXPECT_FALSE(ambiguous_in("sid=eyJhbGciOi.eyJzdWIi.c2ln-_; ga=GA1.2.3", kCookie, "sid", "eyJhbGciOi.eyJzdWIi.c2ln-_"));
    EXPECT_FALSE(ambiguous_in("sid=ab+/cd==", kCookie, "sid", "ab+/cd=="));
    EXPECT_FALSE(ambiguous_in("a=1&User=bob", kQuery, "user", "bob"));
    EXPECT_FALSE(ambiguous_in("sid=\"abc\"", kCookie, "sid", "\"abc\""));
}

TEST(NameCopies, CopiesWithDifferentValuesAreAmbiguous) {
    EXPECT_TRUE(ambiguous_in("sid=random; sid=victim", kCookie, "sid", "random"));
    EXPECT_TRUE(ambiguous_in("sid=random, SID=victim", kCookie, "sid", "random, SID=victim"));
    EXPECT_TRUE(ambiguous_in("user=random&user=victim", kQuery, "user", "random"));
    EXPECT_TRUE(ambiguous_in("user=victim&user", kQuery, "user", "victim"));
    // a browser sending a host-only and a domain cookie of one value
    EXPECT_FALSE(ambiguous_in("sid=same; sid=same", kCookie, "sid", "same"));
    // accumulated over several Cookie headers
    NameCopies c;
    std::optional<std::string> nginx("random");
    scan_name_copies("sid=random", kCookie, "sid", nginx, c);
    EXPECT_FALSE(c.ambiguous(true));
    scan_name_copies("other=1; sid=victim", kCookie, "sid", nginx, c);
    EXPECT_TRUE(c.ambiguous(true));
}

TEST(NameCopies, WhatNginxSplitsDifferentlyIsAmbiguous) {
    // nginx ends a cookie value at ';' only: "victim,xN" is its value here
    EXPECT_TRUE(ambiguous_in("sid=victim,xN; sid=victim", kCookie, "sid", "victim,xN"));
    // nginx skips spaces, not tabs: it reads nothing, a backend reads victim
    EXPECT_TRUE(ambiguous_in("a=1;\tsid=victim", kCookie, "sid", std::nullopt));
    EXPECT_TRUE(ambiguous_in("sid\t=victim", kCookie, "sid", std::nullopt));
    // ';' separates query arguments for Rack 2, Perl CGI, older Python
    EXPECT_TRUE(ambiguous_in("user=r1&a=1;user=victim", kQuery, "user", "r1"));
    EXPECT_TRUE(ambiguous_in("a=1;user=victim", kQuery, "user", std::nullopt));
}

TEST(NameCopies, SpellingsNginxDoesNotReadAreAmbiguous) {
    // PHP decodes names and reads ". [" as "_": nginx reads nothing here
    EXPECT_TRUE(ambiguous_in("%73id=victim", kCookie, "sid", std::nullopt));
    EXPECT_TRUE(ambiguous_in("session.id=victim; session_id=random", kCookie, "session_id", "random"));
    EXPECT_TRUE(ambiguous_in("us%65r=victim", kQuery, "user", std::nullopt));
    EXPECT_TRUE(ambiguous_in("user[]=victim", kQuery, "user", std::nullopt));
    // the same value under both spellings is one value
    EXPECT_FALSE(ambiguous_in("user=bob&us%65r=bob", kQuery, "user", "bob"));
}

TEST(NameCopies, CookieValuesBackendsReadDifferentlyAreAmbiguous) {
    // Python unescapes, strips non-ASCII blanks, ends a pair at a space;
    // Node drops a lone leading quote
    EXPECT_TRUE(ambiguous_in("sid=\"v\\151ctim\"", kCookie, "sid", "\"v\\151ctim\""));
    EXPECT_TRUE(ambiguous_in("sid=victim\x0b", kCookie, "sid", "victim\x0b"));
    EXPECT_TRUE(ambiguous_in("sid=victim\xa0", kCookie, "sid", "victim\xa0"));
    EXPECT_TRUE(ambiguous_in("sid=decoy1 sid=victim", kCookie, "sid", "decoy1 sid=victim"));
    EXPECT_TRUE(ambiguous_in("sid=\"victimZ", kCookie, "sid", "\"victimZ"));
    // a name with junk around it that a backend trims is another copy
    EXPECT_TRUE(ambiguous_in("sid=decoy2; sid\x1c=victim", kCookie, "sid", "decoy2"));
    EXPECT_TRUE(ambiguous_in("sid\xa0=victim; sid=decoy5", kCookie, "sid", "decoy5"));
    EXPECT_FALSE(ambiguous_in("sid=\"quoted\"", kCookie, "sid", "\"quoted\""));
}

TEST(NameCopies, ValuesAreKeyedDecoded) {
    EXPECT_EQ(decoded("%76ictim", kQuery), "victim");
    EXPECT_EQ(decoded("v%69ctim", kQuery), "victim");
    EXPECT_EQ(decoded("a+b", kQuery), "a b");
    EXPECT_EQ(decoded("\"%76ictim\" ", kCookie), "victim");
    EXPECT_EQ(decoded("victim ", kCookie), "victim");
    // one value spelled two ways is one value
    EXPECT_FALSE(ambiguous_in("user=victim&user=%76ictim", kQuery, "user", "victim"));
}

TEST(Body, JsonNumbersHaveOneSpelling) {
    for (const char* text : {R"({"a":100})", R"({"a":100.0})", R"({"a":1e2})", R"({"a":1.00E+2})"}) {
        BodyFields b = parse_body_fields("application/json", text);
        EXPECT_EQ(b.get("a"), "100") << text;
        EXPECT_FALSE(b.ambiguous("a")) << text;
    }
    EXPECT_EQ(parse_body_fields("application/json", R"({"a":-0})").get("a"), "0");
    EXPECT_EQ(parse_body_fields("application/json", R"({"a":-0.0})").get("a"), "0");
    EXPECT_TRUE(parse_body_fields("application/json", R"({"a":1.5})").ambiguous("a"));
    EXPECT_TRUE(parse_body_fields("application/json", R"({"a":1e300})").ambiguous("a"));
    EXPECT_TRUE(parse_body_fields("application/json", R"({"a":9007199254740993})").ambiguous("a"));
    EXPECT_EQ(parse_body_fields("application/json", R"({"a":9007199254740992})").get("a"), "9007199254740992");
    EXPECT_EQ(parse_body_fields("application/json", R"({"a":true})").get("a"), "true");
}
