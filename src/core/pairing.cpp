#include "pairing.hpp"

#include "json.hpp"
#include "encoding.hpp"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <charconv>
#include <memory>
#include <stdexcept>

#include "duration.hpp"

namespace pairguard {

namespace {

bool parse_count(std::string_view v, int64_t& out) {
    if (v.empty()) {
        return false;
    }
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
    return ec == std::errc() && p == v.data() + v.size() && out >= 1 && out <= kPairingCountLimit;
}

std::string_view trim(std::string_view s) {
    const char* ws = " \t\r\n\v\f";
    size_t b = s.find_first_not_of(ws);
    if (b == std::string_view::npos) {
        return {};
    }
    size_t e = s.find_last_not_of(ws);
    return s.substr(b, e - b + 1);
}


// For text read back from Redis: anything that is not well-formed UTF-8 or is
// a control character becomes U+FFFD, so that a JSON answer is always valid.
std::string sanitize(std::string_view s) {
    if (utf8_valid(s, true)) {
        return std::string(s);
    }
    std::string out;
    for (size_t i = 0; i < s.size();) {
        size_t len = 1;
        auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
        }
        if (i + len <= s.size() && utf8_valid(s.substr(i, len), true)) {
            out.append(s.substr(i, len));
            i += len;
        } else {
            out.append("\xef\xbf\xbd");
            i++;
        }
    }
    return out;
}

json_t* jstr(std::string_view s) {
    std::string clean = sanitize(s);
    return json_stringn(clean.data(), clean.size());
}

std::string hex8(const uint8_t* p) {
    static const char hex[] = "0123456789abcdef";
    std::string out;
    for (size_t i = 0; i < 4; i++) {
        out.push_back(hex[p[i] >> 4]);
        out.push_back(hex[p[i] & 0xf]);
    }
    return out;
}

std::string b64(const KeyTag& t) {
    return base64url(t.data(), t.size());
}

int64_t ceil_seconds(int64_t ms) {
    return ms <= 0 ? 0 : (ms + 999) / 1000;
}

const Reply* element(const Reply& r, size_t i, Reply::Type type) {
    if (r.type != Reply::Type::array || i >= r.elements.size() || r.elements[i].type != type) {
        return nullptr;
    }
    return &r.elements[i];
}

// A JSON object stored by a script.
bool get_number(json_t* obj, const char* key, int64_t& out) {
    json_t* v = json_object_get(obj, key);
    if (json_is_integer(v)) {
        out = json_integer_value(v);
        return true;
    }
    if (json_is_real(v)) {
        out = static_cast<int64_t>(json_real_value(v));
        return true;
    }
    return false;
}

JsonPtr load_body(std::string_view body, std::string& error) {
    json_error_t err;
    JsonPtr j(json_loadb(body.data(), body.size(), JSON_REJECT_DUPLICATES, &err));
    if (!j || !json_is_object(j.get())) {
        error = "the body is not a JSON object";
        return nullptr;
    }
    return j;
}

// A required string field; `integer_ok` also takes a JSON integer (numeric
// user ids, as Telegram has) as its decimal text.
std::string body_field(json_t* obj, const char* name, bool integer_ok, std::string& out) {
    json_t* v = json_object_get(obj, name);
    if (v == nullptr || json_is_null(v)) {
        return "\"" + std::string(name) + "\" is missing";
    }
    if (json_is_string(v)) {
        out.assign(json_string_value(v), json_string_length(v));
        return {};
    }
    if (integer_ok && json_is_integer(v)) {
        out = std::to_string(json_integer_value(v));
        return {};
    }
    return "\"" + std::string(name) + "\" is not a string";
}

}  // namespace

// ---- policy ----

std::string parse_pairing_policy_args(const std::vector<std::string_view>& args, PairingLimits& out) {
    std::vector<std::string_view> seen;
    for (std::string_view arg : args) {
        size_t eq = arg.find('=');
        if (eq == std::string_view::npos) {
            return invalid_parameter(arg);
        }
        std::string_view name = arg.substr(0, eq);
        std::string_view value = arg.substr(eq + 1);
        if (std::find(seen.begin(), seen.end(), name) != seen.end()) {
            return "duplicate parameter \"" + std::string(arg) + "\"";
        }
        seen.push_back(name);

        if (name == "code_ttl" || name == "request_interval" || name == "lockout") {
            auto ms = parse_duration_ms(value);
            if (!ms || *ms <= 0) {
                return invalid_parameter(arg);
            }
            (name == "code_ttl" ? out.code_ttl_ms : name == "lockout" ? out.lockout_ms : out.request_interval_ms) = *ms;
        } else if (name == "max_pending" || name == "max_failures" || name == "code_max_failures") {
            int64_t n = 0;
            if (!parse_count(value, n)) {
                return invalid_parameter(arg);
            }
            (name == "max_pending" ? out.max_pending : name == "max_failures" ? out.max_failures
                                                                              : out.code_max_failures) = n;
        } else if (name == "platforms") {
            out.platforms.clear();
            size_t start = 0;
            while (start <= value.size()) {
                size_t comma = value.find(',', start);
                size_t len = comma == std::string_view::npos ? value.npos : comma - start;
                std::string_view one = value.substr(start, len);
                auto p = normalize_platform(one);
                if (!p || one != *p
                    || std::find(out.platforms.begin(), out.platforms.end(), *p) != out.platforms.end()
                    || out.platforms.size() == kMaxPlatforms) {
                    return invalid_parameter(arg);
                }
                out.platforms.push_back(*p);
                if (comma == std::string_view::npos) {
                    break;
                }
                start = comma + 1;
            }
        } else {
            return invalid_parameter(arg);
        }
    }
    return {};
}

bool platform_allowed(const PairingLimits& limits, std::string_view platform) {
    return limits.platforms.empty()
           || std::find(limits.platforms.begin(), limits.platforms.end(), platform) != limits.platforms.end();
}

// ---- codes ----

std::string code_from_bytes(const uint8_t (&bytes)[kCodeLength]) {
    static_assert(kCodeAlphabet.size() == 32, "the alphabet has 32 symbols");
    // 256 % 32 == 0: each symbol has exactly 8 of the 256 byte values, so
    // keeping the low 5 bits of a uniform byte is a uniform symbol. No
    // rejection sampling is needed and there is no modulo bias.
    std::string code(kCodeLength, '\0');
    for (size_t i = 0; i < kCodeLength; i++) {
        code[i] = kCodeAlphabet[bytes[i] & 31];
    }
    return code;
}

std::string generate_code() {
    uint8_t bytes[kCodeLength];
    if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
        throw std::runtime_error("RAND_bytes() failed");
    }
    std::string code = code_from_bytes(bytes);
    OPENSSL_cleanse(bytes, sizeof(bytes));
    return code;
}

std::optional<std::string> normalize_code(std::string_view input) {
    std::string code;
    for (char c : input) {
        if (c == ' ' || c == '-') {
            continue;
        }
        if (c >= 'a' && c <= 'z') {
            c = static_cast<char>(c - 'a' + 'A');
        }
        if (kCodeAlphabet.find(c) == std::string_view::npos || code.size() == kCodeLength) {
            return std::nullopt;
        }
        code.push_back(c);
    }
    if (code.size() != kCodeLength) {
        return std::nullopt;
    }
    return code;
}

// ---- identities ----

std::optional<std::string> normalize_platform(std::string_view raw) {
    std::string_view t = trim(raw);
    if (t.empty() || t.size() > kPlatformMaxBytes) {
        return std::nullopt;
    }
    std::string out;
    for (char c : t) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-')) {
            return std::nullopt;
        }
        out.push_back(c);
    }
    return out;
}

namespace {

bool all_digits(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return (x >= 'A' && x <= 'Z' ? x - 'A' + 'a' : x) == y;
           });
}

// A phone-number JID or number is the bare digits; anything else (groups,
// "@lid" ids, names) stays as it is.
std::string whatsapp_user(std::string_view id) {
    std::string_view v = id;
    size_t at = v.find('@');
    if (at != std::string_view::npos) {
        std::string_view domain = v.substr(at + 1);
        if (!iequals(domain, "s.whatsapp.net") && !iequals(domain, "c.us")) {
            return std::string(id);
        }
        v = v.substr(0, at);
        size_t colon = v.find(':');
        if (colon != std::string_view::npos && all_digits(v.substr(colon + 1))) {
            v = v.substr(0, colon);  // multi-device JID: "NUMBER:DEVICE@s.whatsapp.net"
        }
    }
    if (!v.empty() && v[0] == '+') {
        v.remove_prefix(1);
    }
    return all_digits(v) ? std::string(v) : std::string(id);
}

}  // namespace

std::optional<std::string> normalize_user_id(std::string_view platform, std::string_view raw) {
    std::string_view t = trim(raw);
    if (t.empty() || t.size() > kUserIdMaxBytes || !utf8_valid(t, true)) {
        return std::nullopt;
    }
    if (platform == "whatsapp") {
        return whatsapp_user(t);
    }
    return std::string(t);
}

std::optional<std::string> normalize_user_name(std::string_view raw) {
    std::string_view t = trim(raw);
    if (t.size() > kUserNameMaxBytes || !utf8_valid(t, true)) {
        return std::nullopt;
    }
    return std::string(t);
}

// ---- layout ----

PlatformKeys platform_keys(const KeyDeriver& keys, std::string_view prefix, std::string_view platform) {
    PlatformKeys k;
    k.tag = platform_tag(keys, platform);
    k.base.append(prefix).append("{p:").append(k.tag).push_back('}');
    k.pending = k.base + ":pending";
    k.approved = k.base + ":approved";
    k.fail = k.base + ":fail";
    k.lock = k.base + ":lock";
    return k;
}

std::string platform_tag(const KeyDeriver& keys, std::string_view platform) {
    return b64(keys.tag("p", platform, ""));
}

std::string user_hash(const KeyDeriver& keys, std::string_view platform, std::string_view user_id) {
    return b64(keys.tag("u", platform, user_id));
}

std::string code_hash(const KeyDeriver& keys, std::string_view platform, std::string_view code) {
    std::string buf;
    buf.append("c").push_back('\0');
    buf.append(platform).push_back('\0');
    buf.append(code);
    auto mac = keys.mac(buf);
    OPENSSL_cleanse(buf.data(), buf.size());
    return base64url(mac.data(), mac.size());
}

std::string code_id(std::string_view hash) {
    std::string raw;
    if (hash.size() < 8 || !base64url_decode(hash.substr(0, 8), raw) || raw.size() < 4) {
        return {};
    }
    return hex8(reinterpret_cast<const uint8_t*>(raw.data()));
}

std::string platforms_key(std::string_view prefix) {
    return std::string(prefix) + "pairing:platforms";
}

std::string events_channel(std::string_view prefix) {
    return std::string(prefix) + "events";
}

std::optional<PairingEvent> parse_event(std::string_view message) {
    size_t a = message.find('|');
    size_t b = a == std::string_view::npos ? a : message.find('|', a + 1);
    if (b == std::string_view::npos || message.find('|', b + 1) != std::string_view::npos) {
        return std::nullopt;
    }
    std::string_view kind = message.substr(0, a);
    std::string_view second = message.substr(a + 1, b - a - 1);
    std::string_view third = message.substr(b + 1);
    // platform and user tags are 22 characters; a guard key's tag is
    // whatever its key carries between the braces
    auto is_tag = [](std::string_view s, size_t min, size_t max) {
        std::string raw;
        return s.size() >= min && s.size() <= max && base64url_decode(s, raw);
    };
    if (kind == "approved" || kind == "revoked") {
        if (!is_tag(second, 22, 22) || !is_tag(third, 22, 22)) {
            return std::nullopt;
        }
        return PairingEvent{kind == "approved" ? EventKind::approved : EventKind::revoked, std::string(second),
                            std::string(third)};
    }
    // a trusted device's key ("d") is forgotten like a guard key
    if (kind == "unlocked"
        && ((second == "p" && is_tag(third, 22, 22)) || ((second == "g" || second == "d") && is_tag(third, 8, 43)))) {
        return PairingEvent{second == "p" ? EventKind::unlocked_platform : EventKind::unlocked_guard,
                            std::string(third), {}};
    }
    return std::nullopt;
}

// ---- calls ----

StoreCall make_register(std::string_view prefix, std::string_view platform) {
    return {&pairing_script(PairingOp::register_platform), {platforms_key(prefix)}, {std::string(platform)}};
}

StoreCall make_platforms(std::string_view prefix) {
    return {&pairing_script(PairingOp::platforms), {platforms_key(prefix)}, {}};
}

std::optional<std::vector<std::string>> decode_platforms(const Reply& reply) {
    if (reply.type != Reply::Type::array) {
        return std::nullopt;
    }
    std::vector<std::string> out;
    for (const Reply& e : reply.elements) {
        if (e.type != Reply::Type::string) {
            return std::nullopt;
        }
        auto p = normalize_platform(e.str);
        if (p && *p == e.str) {
            out.push_back(*p);
        }
    }
    std::sort(out.begin(), out.end());
    return out;
}

StoreCall make_request(const KeyDeriver& keys, std::string_view prefix, const PairingLimits& limits,
                       const PairingRequest& req, std::string_view code) {
    PlatformKeys pk = platform_keys(keys, prefix, req.platform);
    std::string uh = user_hash(keys, req.platform, req.user_id);
    StoreCall c;
    c.script = &pairing_script(PairingOp::request);
    c.keys = {pk.pending, pk.rate(uh), pk.lock};
    c.args = {code_hash(keys, req.platform, code),
              uh,
              req.user_id,
              req.user_name,
              std::to_string(limits.code_ttl_ms),
              std::to_string(limits.max_pending),
              std::to_string(limits.request_interval_ms)};
    return c;
}

RequestResult decode_request(const Reply& reply) {
    RequestResult r;
    const Reply* st = element(reply, 0, Reply::Type::string);
    const Reply* n = element(reply, 1, Reply::Type::integer);
    if (st == nullptr || n == nullptr || n->integer < 0) {
        return r;
    }
    if (st->str == "ok") {
        r.status = RequestStatus::ok;
        r.expires_in_ms = n->integer;
    } else if (st->str == "rate_limited") {
        r.status = RequestStatus::rate_limited;
        r.retry_ms = n->integer;
    } else if (st->str == "too_many_pending") {
        r.status = RequestStatus::too_many_pending;
        r.retry_ms = n->integer;
    } else if (st->str == "locked") {
        r.status = RequestStatus::locked;
        r.retry_ms = n->integer;
    } else if (st->str == "collision") {
        r.status = RequestStatus::collision;
    }
    return r;
}

StoreCall make_approve(const KeyDeriver& keys, std::string_view prefix, const PairingLimits& limits,
                       std::string_view platform, std::string_view code) {
    PlatformKeys pk = platform_keys(keys, prefix, platform);
    StoreCall c;
    c.script = &pairing_script(PairingOp::approve);
    c.keys = {pk.pending, pk.approved, pk.fail, pk.lock};
    // wrong approvals are remembered for one code lifetime after the last one
    c.args = {code_hash(keys, platform, code),
              std::to_string(limits.max_failures),
              std::to_string(limits.lockout_ms),
              std::to_string(limits.code_max_failures),
              std::to_string(limits.code_ttl_ms),
              events_channel(prefix),
              "approved|" + pk.tag + "|"};
    return c;
}

ApproveResult decode_approve(const Reply& reply) {
    ApproveResult r;
    const Reply* st = element(reply, 0, Reply::Type::string);
    if (st == nullptr) {
        return r;
    }
    if (st->str == "ok") {
        const Reply* user = element(reply, 1, Reply::Type::string);
        const Reply* name = element(reply, 2, Reply::Type::string);
        if (user == nullptr || name == nullptr || user->str.empty()) {
            return r;
        }
        r.user_id = user->str;
        r.user_name = name->str;
        r.status = ApproveStatus::ok;
    } else if (st->str == "locked") {
        const Reply* n = element(reply, 1, Reply::Type::integer);
        if (n == nullptr || n->integer < 0) {
            return r;
        }
        r.retry_ms = n->integer;
        r.status = ApproveStatus::locked;
    } else if (st->str == "invalid_code") {
        const Reply* burned = element(reply, 1, Reply::Type::integer);
        const Reply* lock = element(reply, 2, Reply::Type::integer);
        if (burned == nullptr || lock == nullptr || burned->integer < 0 || lock->integer < 0) {
            return r;
        }
        r.burned = burned->integer;
        r.lock_started_ms = lock->integer;
        r.status = ApproveStatus::invalid_code;
    }
    return r;
}

StoreCall make_pending(const KeyDeriver& keys, std::string_view prefix, std::string_view platform) {
    return {&pairing_script(PairingOp::pending), {platform_keys(keys, prefix, platform).pending}, {}};
}

std::optional<std::vector<PendingEntry>> decode_pending(const Reply& reply, std::string_view platform) {
    const Reply* now = element(reply, 0, Reply::Type::integer);
    if (now == nullptr || reply.elements.size() % 2 != 1) {
        return std::nullopt;
    }
    std::vector<PendingEntry> out;
    for (size_t i = 1; i < reply.elements.size(); i += 2) {
        const Reply* field = element(reply, i, Reply::Type::string);
        const Reply* value = element(reply, i + 1, Reply::Type::string);
        if (field == nullptr || value == nullptr) {
            return std::nullopt;
        }
        JsonPtr j = json_load_object(value->str);
        PendingEntry e;
        int64_t expires = 0;
        if (!j || !get_number(j.get(), "created_ms", e.created_ms) || !get_number(j.get(), "expires_ms", expires)) {
            return std::nullopt;
        }
        e.platform = std::string(platform);
        e.id = code_id(field->str);
        e.user_id = sanitize(json_get_string(j.get(), "user_id"));
        e.user_name = sanitize(json_get_string(j.get(), "user_name"));
        e.age_seconds = std::max<int64_t>(0, (now->integer - e.created_ms) / 1000);
        e.expires_in = ceil_seconds(expires - now->integer);
        out.push_back(std::move(e));
    }
    std::sort(out.begin(), out.end(), [](const PendingEntry& a, const PendingEntry& b) {
        return a.created_ms != b.created_ms ? a.created_ms < b.created_ms : a.id < b.id;
    });
    return out;
}

StoreCall make_clear(const KeyDeriver& keys, std::string_view prefix, std::string_view platform) {
    return {&pairing_script(PairingOp::clear), {platform_keys(keys, prefix, platform).pending}, {}};
}

std::optional<int64_t> decode_clear(const Reply& reply) {
    if (reply.type != Reply::Type::integer || reply.integer < 0) {
        return std::nullopt;
    }
    return reply.integer;
}

StoreCall make_approved(const KeyDeriver& keys, std::string_view prefix, std::string_view platform) {
    return {&pairing_script(PairingOp::approved), {platform_keys(keys, prefix, platform).approved}, {}};
}

std::optional<std::vector<ApprovedEntry>> decode_approved(const Reply& reply, std::string_view platform) {
    if (reply.type != Reply::Type::array || reply.elements.size() % 2 != 0) {
        return std::nullopt;
    }
    std::vector<std::pair<int64_t, ApprovedEntry>> rows;
    for (size_t i = 0; i < reply.elements.size(); i += 2) {
        const Reply* user = element(reply, i, Reply::Type::string);
        const Reply* value = element(reply, i + 1, Reply::Type::string);
        if (user == nullptr || value == nullptr) {
            return std::nullopt;
        }
        JsonPtr j = json_load_object(value->str);
        int64_t ms = 0;
        if (!j || !get_number(j.get(), "approved_ms", ms)) {
            return std::nullopt;
        }
        ApprovedEntry e;
        e.platform = std::string(platform);
        e.user_id = sanitize(user->str);
        e.user_name = sanitize(json_get_string(j.get(), "user_name"));
        e.approved_at = ms / 1000;
        rows.emplace_back(ms, std::move(e));
    }
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
        return a.first != b.first ? a.first < b.first : a.second.user_id < b.second.user_id;
    });
    std::vector<ApprovedEntry> out;
    for (auto& r : rows) {
        out.push_back(std::move(r.second));
    }
    return out;
}

StoreCall make_revoke(const KeyDeriver& keys, std::string_view prefix, std::string_view platform,
                      std::string_view user_id) {
    PlatformKeys pk = platform_keys(keys, prefix, platform);
    return {&pairing_script(PairingOp::revoke),
            {pk.approved},
            {std::string(user_id), events_channel(prefix),
             "revoked|" + pk.tag + "|" + user_hash(keys, platform, user_id)}};
}

std::optional<bool> decode_revoke(const Reply& reply) {
    if (reply.type != Reply::Type::integer || (reply.integer != 0 && reply.integer != 1)) {
        return std::nullopt;
    }
    return reply.integer == 1;
}

StoreCall make_check(const KeyDeriver& keys, std::string_view prefix, std::string_view platform,
                     std::string_view user_id) {
    return {&pairing_script(PairingOp::check),
            {platform_keys(keys, prefix, platform).approved},
            {std::string(user_id)}};
}

PairedCheck decode_check(const Reply& reply) {
    PairedCheck r;
    if (reply.type == Reply::Type::nil) {
        r.valid = true;
        return r;
    }
    if (reply.type != Reply::Type::string) {
        return r;
    }
    JsonPtr j = json_load_object(reply.str);
    if (!j) {
        return r;
    }
    r.valid = true;
    r.approved = true;
    r.user_name = sanitize(json_get_string(j.get(), "user_name"));
    return r;
}

StoreCall make_lock_status(const KeyDeriver& keys, std::string_view prefix, std::string_view platform) {
    PlatformKeys pk = platform_keys(keys, prefix, platform);
    return {&pairing_script(PairingOp::lock_status), {pk.lock, pk.fail}, {}};
}

LockStatus decode_lock_status(const Reply& reply) {
    LockStatus r;
    const Reply* left = element(reply, 0, Reply::Type::integer);
    const Reply* fails = element(reply, 1, Reply::Type::integer);
    if (left == nullptr || fails == nullptr || left->integer < 0 || fails->integer < 0) {
        return r;
    }
    r.valid = true;
    r.retry_ms = left->integer;
    r.failures = fails->integer;
    return r;
}

StoreCall make_unlock_platform(const KeyDeriver& keys, std::string_view prefix, std::string_view platform) {
    PlatformKeys pk = platform_keys(keys, prefix, platform);
    return {&pairing_script(PairingOp::unlock), {pk.lock, pk.fail}, {events_channel(prefix), "unlocked|p|" + pk.tag}};
}

StoreCall make_unlock_guard(const KeyDeriver& keys, std::string_view prefix, std::string_view policy,
                            std::string_view key) {
    std::string store_key = guard_store_key(prefix, keys.tag("g", policy, key));
    return {&pairing_script(PairingOp::unlock),
            {store_key},
            {events_channel(prefix), "unlocked|g|" + hash_tag(store_key)}};
}

StoreCall make_unlock_device(std::string_view prefix, std::string_view device_key) {
    std::string tag = hash_tag(device_key);
    return {&pairing_script(PairingOp::unlock),
            {std::string(device_key)},
            {events_channel(prefix), "unlocked|d|" + tag.substr(tag.rfind(':') + 1)}};
}

std::string hash_tag(std::string_view key) {
    size_t open = key.find('{');
    size_t close = open == std::string_view::npos ? open : key.find('}', open + 1);
    if (close == std::string_view::npos) {
        return {};
    }
    return std::string(key.substr(open + 1, close - open - 1));
}

std::optional<int64_t> decode_unlock(const Reply& reply) {
    if (reply.type != Reply::Type::integer || reply.integer < 0) {
        return std::nullopt;
    }
    return reply.integer;
}

// ---- bodies ----

namespace {

// The "platform" field of a request or approve body, normalised.
std::string body_platform(json_t* j, std::optional<std::string>& out) {
    std::string raw;
    std::string error = body_field(j, "platform", false, raw);
    if (!error.empty()) {
        return error;
    }
    out = normalize_platform(raw);
    if (!out) {
        return "\"platform\" must be 1-64 characters of a-z, 0-9, \"_\", \".\" and \"-\"";
    }
    return {};
}

}  // namespace

std::string parse_request_body(std::string_view body, PairingRequest& out) {
    std::string error;
    JsonPtr j = load_body(body, error);
    if (!j) {
        return error;
    }
    std::string raw;
    std::optional<std::string> platform;
    if (!(error = body_platform(j.get(), platform)).empty()) {
        return error;
    }
    if (!(error = body_field(j.get(), "user_id", true, raw)).empty()) {
        return error;
    }
    auto user = normalize_user_id(*platform, raw);
    if (!user) {
        return "\"user_id\" must be 1-256 bytes of text without control characters";
    }
    std::optional<std::string> name = std::string();
    json_t* n = json_object_get(j.get(), "user_name");
    if (n != nullptr && !json_is_null(n)) {
        if (!json_is_string(n)) {
            return "\"user_name\" is not a string";
        }
        name = normalize_user_name(std::string_view(json_string_value(n), json_string_length(n)));
        if (!name) {
            return "\"user_name\" must be at most 256 bytes of text without control characters";
        }
    }
    out.platform = std::move(*platform);
    out.user_id = std::move(*user);
    out.user_name = std::move(*name);
    return {};
}

std::string parse_approve_body(std::string_view body, ApproveInput& out) {
    std::string error;
    JsonPtr j = load_body(body, error);
    if (!j) {
        return error;
    }
    std::optional<std::string> platform;
    if (!(error = body_platform(j.get(), platform)).empty()) {
        return error;
    }
    if (!(error = body_field(j.get(), "code", false, out.code)).empty()) {
        return error;
    }
    out.platform = std::move(*platform);
    return {};
}

std::string render_code(std::string_view code, int64_t expires_in_s) {
    JsonPtr j(json_object());
    json_set(j.get(), "code", jstr(code));
    json_set(j.get(), "expires_in", json_integer(expires_in_s));
    return json_dump(j);
}

std::string render_user(std::string_view platform, std::string_view user_id, std::string_view user_name) {
    JsonPtr j(json_object());
    json_set(j.get(), "platform", jstr(platform));
    json_set(j.get(), "user_id", jstr(user_id));
    json_set(j.get(), "user_name", jstr(user_name));
    return json_dump(j);
}

std::string render_pending(const std::vector<PendingEntry>& entries) {
    JsonPtr j(json_object());
    json_t* list = json_array();
    json_set(j.get(), "pending", list);
    for (const PendingEntry& e : entries) {
        json_t* o = json_object();
        if (o == nullptr || json_array_append_new(list, o) != 0) {
            throw std::runtime_error("out of memory building JSON");
        }
        json_set(o, "platform", jstr(e.platform));
        json_set(o, "id", jstr(e.id));
        json_set(o, "user_id", jstr(e.user_id));
        json_set(o, "user_name", jstr(e.user_name));
        json_set(o, "age_seconds", json_integer(e.age_seconds));
        json_set(o, "expires_in", json_integer(e.expires_in));
    }
    return json_dump(j);
}

std::string render_cleared(int64_t n) {
    return "{\"cleared\":" + std::to_string(n) + "}";
}

std::string render_approved(const std::vector<ApprovedEntry>& entries) {
    JsonPtr j(json_object());
    json_t* list = json_array();
    json_set(j.get(), "approved", list);
    for (const ApprovedEntry& e : entries) {
        json_t* o = json_object();
        if (o == nullptr || json_array_append_new(list, o) != 0) {
            throw std::runtime_error("out of memory building JSON");
        }
        json_set(o, "platform", jstr(e.platform));
        json_set(o, "user_id", jstr(e.user_id));
        json_set(o, "user_name", jstr(e.user_name));
        json_set(o, "approved_at", json_integer(e.approved_at));
    }
    return json_dump(j);
}

std::string render_revoked() {
    return "{\"revoked\":true}";
}

std::string render_error(std::string_view code) {
    JsonPtr j(json_object());
    json_set(j.get(), "error", jstr(code));
    return json_dump(j);
}

std::string render_error(std::string_view code, int64_t retry_after_s) {
    JsonPtr j(json_object());
    json_set(j.get(), "error", jstr(code));
    json_set(j.get(), "retry_after", json_integer(retry_after_s));
    return json_dump(j);
}

std::string render_invalid_request(std::string_view message) {
    JsonPtr j(json_object());
    json_set(j.get(), "error", jstr("invalid_request"));
    json_set(j.get(), "message", jstr(message));
    return json_dump(j);
}

// ---- answers ----

namespace {

HttpAnswer refusal(int status, const char* code, int64_t retry_ms) {
    int64_t s = retry_after_seconds(retry_ms);
    return {status, render_error(code, s), s};
}

}  // namespace

HttpAnswer answer_request(const RequestResult& r, std::string_view code) {
    switch (r.status) {
    case RequestStatus::ok: return {201, render_code(code, ceil_seconds(r.expires_in_ms)), 0};
    case RequestStatus::rate_limited: return refusal(429, "rate_limited", r.retry_ms);
    case RequestStatus::too_many_pending: return refusal(429, "too_many_pending", r.retry_ms);
    case RequestStatus::locked: return refusal(429, "locked", r.retry_ms);
    case RequestStatus::collision:
    case RequestStatus::invalid: break;
    }
    return {500, render_error("store_error"), 0};
}

HttpAnswer answer_approve(const ApproveResult& r, std::string_view platform) {
    switch (r.status) {
    case ApproveStatus::ok: return {200, render_user(platform, r.user_id, r.user_name), 0};
    case ApproveStatus::invalid_code: return {404, render_error("invalid_code"), 0};
    case ApproveStatus::locked: return refusal(429, "locked", r.retry_ms);
    case ApproveStatus::invalid: break;
    }
    return {500, render_error("store_error"), 0};
}

HttpAnswer answer_revoke(std::optional<bool> r) {
    if (!r) {
        return {500, render_error("store_error"), 0};
    }
    return *r ? HttpAnswer{200, render_revoked(), 0} : HttpAnswer{404, render_error("not_found"), 0};
}

HttpAnswer answer_not_paired() {
    return {403, render_error("not_paired"), 0};
}

}  // namespace pairguard
