#include "body.hpp"

#include <openssl/crypto.h>

#include <cmath>

#include "json.hpp"

#include <jansson.h>

#include <cctype>
#include <cstdlib>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

namespace pairguard {

namespace {

constexpr size_t kMaxBoundary = 200;  // RFC 2046 says 70; real clients stay under 70

bool is_blank(char c) {
    return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_blank(s.front())) {
        s.remove_prefix(1);
    }
    while (!s.empty() && is_blank(s.back())) {
        s.remove_suffix(1);
    }
    return s;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out;
}

// RFC 7230 token characters.
bool is_tchar(char c) {
    unsigned char u = static_cast<unsigned char>(c);
    if (std::isalnum(u)) {
        return true;
    }
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
        return true;
    default:
        return false;
    }
}

using Params = std::vector<std::pair<std::string, std::string>>;  // lower-cased name, value

// `; name=value; name="value"` after a media type or disposition type.
// nullopt when malformed. With `escapes`, a backslash in a quoted string
// quotes the next character (RFC 7230); without, a backslash is refused
// (multipart parsers disagree on it, so a name could end in different places).
std::optional<Params> parse_params(std::string_view s, bool escapes) {
    Params out;
    size_t i = 0;
    auto skip_ows = [&] {
        while (i < s.size() && is_blank(s[i])) {
            i++;
        }
    };
    for (;;) {
        skip_ows();
        if (i == s.size()) {
            return out;
        }
        if (s[i] != ';') {
            return std::nullopt;
        }
        i++;
        skip_ows();
        if (i == s.size()) {
            return out;  // a trailing ';'
        }
        size_t start = i;
        while (i < s.size() && is_tchar(s[i])) {
            i++;
        }
        if (i == start) {
            return std::nullopt;
        }
        std::string name = lower(s.substr(start, i - start));
        skip_ows();
        if (i == s.size() || s[i] != '=') {
            return std::nullopt;
        }
        i++;
        skip_ows();
        std::string value;
        if (i < s.size() && s[i] == '"') {
            i++;
            bool closed = false;
            while (i < s.size()) {
                char c = s[i++];
                if (c == '"') {
                    closed = true;
                    break;
                }
                if (c == '\\') {
                    if (!escapes || i == s.size()) {
                        return std::nullopt;
                    }
                    c = s[i++];
                }
                if (c == '\r' || c == '\n') {
                    return std::nullopt;
                }
                value.push_back(c);
            }
            if (!closed) {
                return std::nullopt;
            }
        } else {
            size_t vstart = i;
            while (i < s.size() && s[i] != ';' && !is_blank(s[i])) {
                unsigned char u = static_cast<unsigned char>(s[i]);
                if (s[i] == '"' || s[i] == '\\' || u < 0x20 || u == 0x7f) {
                    return std::nullopt;
                }
                i++;
            }
            if (i == vstart) {
                return std::nullopt;
            }
            value = std::string(s.substr(vstart, i - vstart));
        }
        for (const auto& p : out) {
            if (p.first == name) {
                return std::nullopt;  // which one would the upstream take?
            }
        }
        out.emplace_back(std::move(name), std::move(value));
    }
}

const std::string* param(const Params& ps, std::string_view name) {
    for (const auto& p : ps) {
        if (p.first == name) {
            return &p.second;
        }
    }
    return nullptr;
}

bool first_blank_is(std::string_view body, std::string_view chars) {
    for (char c : body) {
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            continue;
        }
        return chars.find(c) != std::string_view::npos;
    }
    return false;
}

bool looks_like_form(std::string_view body) {
    for (char c : body) {
        unsigned char u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7f) {
            return false;
        }
    }
    return true;
}

int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

// What the loosest common backend makes of a field name: cut at NUL, leading
// blanks dropped, cut at a '[' that a ']' follows (`NAME[]`, `NAME[x]`: an
// array or object named NAME), ASCII lower case, '.', ' ' and '[' as '_'.
std::string canonical_field_name(std::string_view name) {
    size_t nul = name.find('\0');
    if (nul != std::string_view::npos) {
        name = name.substr(0, nul);
    }
    size_t i = 0;
    while (i < name.size() && (name[i] == ' ' || name[i] == '\t' || name[i] == '\n' || name[i] == '\r'
                               || name[i] == '\v' || name[i] == '\f')) {
        i++;
    }
    size_t open = name.find('[', i);
    if (open != std::string_view::npos && name.find(']', open + 1) != std::string_view::npos) {
        name = name.substr(0, open);
    }
    std::string out;
    out.reserve(name.size() - i);
    for (; i < name.size(); i++) {
        char c = name[i];
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        } else if (c == '.' || c == ' ' || c == '[') {
            c = '_';
        }
        out.push_back(c);
    }
    return out;
}

namespace {

BodyFields invalid() {
    BodyFields out;
    out.status = BodyStatus::invalid;
    return out;
}

// Records one occurrence of `name`. Every name seen is in `fields` (as ""
// when it has no value: a file part, a JSON null); the first value is kept.
void add_field(BodyFields& out, std::string name, std::optional<std::string> value) {
    auto [sp, fresh] = out.spellings.emplace(canonical_field_name(name), name);
    if (!fresh && sp->second != name) {
        sp->second.clear();  // two spellings of one name
    }
    if (out.fields.count(name) != 0) {
        if (value) {
            OPENSSL_cleanse(value->data(), value->capacity());  // a second value is not kept
        }
        out.duplicates.insert(std::move(name));
        return;
    }
    out.fields.emplace(std::move(name), value ? std::move(*value) : std::string());
}

// ---- JSON ----

// The top-level member names of a JSON object text that jansson has already
// accepted, decoded, in order and with repeats.
std::optional<std::vector<std::string>> json_top_level_names(std::string_view text) {
    std::vector<std::string> names;
    int depth = 0;
    bool expect_name = false;
    for (size_t i = 0; i < text.size(); i++) {
        char c = text[i];
        if (c == '"') {
            size_t j = i + 1;
            while (j < text.size() && text[j] != '"') {
                j += text[j] == '\\' ? 2 : 1;
            }
            if (j >= text.size()) {
                return std::nullopt;
            }
            if (depth == 1 && expect_name) {
                json_error_t err;
                JsonPtr s(json_loadb(text.data() + i, j + 1 - i, JSON_DECODE_ANY, &err));
                if (!s || !json_is_string(s.get())) {
                    return std::nullopt;
                }
                names.emplace_back(json_string_value(s.get()), json_string_length(s.get()));
            }
            expect_name = false;
            i = j;
        } else if (c == '{' || c == '[') {
            depth++;
            expect_name = depth == 1 && c == '{';
        } else if (c == '}' || c == ']') {
            depth--;
        } else if (c == ',') {
            expect_name = depth == 1;
        }
    }
    return names;
}

BodyFields parse_json(std::string_view body) {
    // duplicates are not rejected here: only a key that uses one refuses
    JsonPtr root = json_load_object(body);
    if (!root) {
        return invalid();
    }
    auto names = json_top_level_names(body);
    if (!names) {
        return invalid();
    }
    BodyFields out;
    for (std::string& name : *names) {
        std::optional<std::string> value;
        json_t* v = json_object_get(root.get(), name.c_str());
        switch (v == nullptr ? JSON_NULL : json_typeof(v)) {
        case JSON_STRING:
            value.emplace(json_string_value(v), json_string_length(v));
            break;
        case JSON_INTEGER: {
            // its decimal text, whatever it was sent as (-0 is 0); beyond
            // 2^53 JavaScript reads neighbours as one number
            json_int_t n = json_integer_value(v);
            if (n >= -9007199254740992LL && n <= 9007199254740992LL) {
                value.emplace(std::to_string(static_cast<long long>(n)));
            } else {
                out.structured.insert(name);
            }
            break;
        }
        case JSON_REAL: {
            // 100.0 and 1e2 are 100 to JavaScript, MongoDB and most ORMs:
            // one key; a fraction or a number beyond 2^53 has no spelling
            // every backend agrees on
            double d = json_real_value(v);
            if (std::isfinite(d) && std::trunc(d) == d && std::fabs(d) <= 9007199254740992.0) {
                value.emplace(std::to_string(static_cast<long long>(d)));
            } else {
                out.structured.insert(name);
            }
            break;
        }
        case JSON_TRUE:
        case JSON_FALSE: {
            std::unique_ptr<char, decltype(&free)> text(json_dumps(v, JSON_ENCODE_ANY), &free);
            if (text) {
                value.emplace(text.get());
            }
            break;
        }
        case JSON_ARRAY:
        case JSON_OBJECT:
            out.structured.insert(name);
            break;
        default:
            break;
        }
        add_field(out, std::move(name), std::move(value));
    }
    return out;
}

// ---- application/x-www-form-urlencoded ----

BodyFields parse_form(std::string_view body) {
    if (first_blank_is(body, "{[")) {
        return invalid();
    }
    BodyFields out;
    while (!body.empty()) {
        size_t amp = body.find('&');
        std::string_view pair = body.substr(0, amp);
        body = amp == std::string_view::npos ? std::string_view() : body.substr(amp + 1);
        if (pair.empty()) {
            continue;
        }
        size_t eq = pair.find('=');
        std::string name = form_decode(pair.substr(0, eq));
        std::string value = eq == std::string_view::npos ? std::string() : form_decode(pair.substr(eq + 1));
        add_field(out, std::move(name), std::move(value));
    }
    return out;
}

// ---- multipart/form-data ----

struct Part {
    std::string name;
    bool file = false;
};

// The headers of one part (CRLF-separated lines). nullopt when malformed.
std::optional<Part> parse_part_headers(std::string_view headers) {
    std::optional<Part> part;
    bool seen_cte = false;
    while (!headers.empty()) {
        size_t eol = headers.find("\r\n");
        std::string_view line = headers.substr(0, eol);
        headers = eol == std::string_view::npos ? std::string_view() : headers.substr(eol + 2);
        if (line.empty() || is_blank(line.front())) {
            return std::nullopt;  // an empty line here, or obsolete line folding
        }
        if (line.find_first_of("\r\n") != std::string_view::npos) {
            return std::nullopt;  // a bare CR or LF
        }
        size_t colon = line.find(':');
        if (colon == std::string_view::npos || colon == 0) {
            return std::nullopt;
        }
        for (char c : line.substr(0, colon)) {
            if (!is_tchar(c)) {
                return std::nullopt;
            }
        }
        std::string name = lower(line.substr(0, colon));
        std::string_view value = trim(line.substr(colon + 1));
        if (name == "content-disposition") {
            if (part) {
                return std::nullopt;
            }
            size_t semi = value.find(';');
            if (lower(trim(value.substr(0, semi))) != "form-data" || semi == std::string_view::npos) {
                return std::nullopt;
            }
            auto ps = parse_params(value.substr(semi), false);
            if (!ps || param(*ps, "name*") != nullptr) {
                return std::nullopt;
            }
            const std::string* n = param(*ps, "name");
            if (n == nullptr) {
                return std::nullopt;
            }
            const std::string* fname = param(*ps, "filename");
            part = Part{*n, (fname != nullptr && !fname->empty()) || param(*ps, "filename*") != nullptr};
        } else if (name == "content-transfer-encoding") {
            std::string cte = lower(value);
            if (seen_cte || (cte != "7bit" && cte != "8bit" && cte != "binary")) {
                return std::nullopt;  // some parsers decode quoted-printable or base64, some do not
            }
            seen_cte = true;
        }
    }
    return part;
}

BodyFields parse_multipart(std::string_view content_type_params, std::string_view body) {
    auto ps = parse_params(content_type_params, true);
    const std::string* boundary = ps ? param(*ps, "boundary") : nullptr;
    if (boundary == nullptr || boundary->empty() || boundary->size() > kMaxBoundary) {
        return invalid();
    }
    const std::string delim = "--" + *boundary;

    // Every occurrence of the delimiter must start a line and be a real
    // delimiter: a parser that looks for the boundary anywhere and one that
    // honours only line starts then see the same parts.
    std::vector<size_t> at;
    for (size_t pos = body.find(delim); pos != std::string_view::npos; pos = body.find(delim, pos + 1)) {
        if (pos != 0 && (pos < 2 || body.compare(pos - 2, 2, "\r\n") != 0)) {
            return invalid();
        }
        at.push_back(pos);
    }
    if (at.empty() || at.front() != 0) {
        return invalid();  // no delimiter, or a preamble
    }

    BodyFields out;
    for (size_t i = 0; i < at.size(); i++) {
        size_t p = at[i] + delim.size();
        if (body.compare(p, 2, "--") == 0) {
            if (i + 1 != at.size()) {
                return invalid();  // parts after the closing delimiter
            }
            return out;
        }
        while (p < body.size() && is_blank(body[p])) {
            p++;
        }
        if (body.compare(p, 2, "\r\n") != 0 || i + 1 == at.size()) {
            return invalid();  // a delimiter line with more on it, or no closing delimiter
        }
        p += 2;
        size_t end = at[i + 1] - 2;  // the CRLF before the next delimiter belongs to it
        if (end < p) {
            return invalid();
        }
        std::string_view whole = body.substr(p, end - p);
        std::string_view headers, content;
        if (whole.compare(0, 2, "\r\n") == 0) {
            content = whole.substr(2);
        } else {
            size_t split = whole.find("\r\n\r\n");
            if (split == std::string_view::npos) {
                return invalid();
            }
            headers = whole.substr(0, split);
            content = whole.substr(split + 4);
        }
        auto part = parse_part_headers(headers);
        if (!part) {
            return invalid();
        }
        std::optional<std::string> value;
        if (!part->file) {
            value.emplace(content);
        }
        add_field(out, std::move(part->name), std::move(value));
    }
    return invalid();  // not reached: the last delimiter either closes or is refused
}

}  // namespace

namespace {

void wipe_values(std::unordered_map<std::string, std::string>& fields) noexcept {
    for (auto& f : fields) {
        OPENSSL_cleanse(f.second.data(), f.second.capacity());
    }
}

}  // namespace

BodyFields& BodyFields::operator=(BodyFields&& other) noexcept {
    if (this != &other) {
        wipe_values(fields);
        status = other.status;
        fields = std::move(other.fields);
        duplicates = std::move(other.duplicates);
        structured = std::move(other.structured);
        spellings = std::move(other.spellings);
    }
    return *this;
}

BodyFields::~BodyFields() {
    wipe_values(fields);
}

std::string_view BodyFields::get(std::string_view name) const {
    auto it = fields.find(std::string(name));
    return it == fields.end() ? std::string_view() : std::string_view(it->second);
}

bool BodyFields::duplicated(std::string_view name) const {
    if (!duplicates.empty() && duplicates.count(std::string(name)) != 0) {
        return true;
    }
    auto it = spellings.find(canonical_field_name(name));
    return it != spellings.end() && it->second != name;
}

namespace {
// What some backend trims around a cookie or argument name: ASCII blanks and
// control characters, and Latin-1's NEL and no-break space.
bool name_junk(unsigned char c) {
    return c <= 0x20 || c == 0x7f || c == 0x85 || c == 0xa0;
}
std::string_view trim_name_junk(std::string_view v) {
    while (!v.empty() && name_junk(static_cast<unsigned char>(v.front()))) {
        v.remove_prefix(1);
    }
    while (!v.empty() && name_junk(static_cast<unsigned char>(v.back()))) {
        v.remove_suffix(1);
    }
    return v;
}
bool cookie_octet(unsigned char c) {
    return c == 0x21 || (c >= 0x23 && c <= 0x2b) || (c >= 0x2d && c <= 0x3a) || (c >= 0x3c && c <= 0x5b)
           || (c >= 0x5d && c <= 0x7e);
}
}  // namespace

void pair_key_value(std::string_view raw, PairList kind, std::string& out) {
    if (kind == PairList::cookie) {
        // nginx's value may end with the blanks before a ';'
        while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\t')) {
            raw.remove_suffix(1);
        }
        if (raw.size() >= 2 && raw.front() == '"' && raw.back() == '"') {
            raw = raw.substr(1, raw.size() - 2);
        }
    }
    form_decode_into(raw, out);
}

bool plain_cookie_value(std::string_view raw) {
    while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\t')) {
        raw.remove_suffix(1);
    }
    if (raw.size() >= 2 && raw.front() == '"' && raw.back() == '"') {
        raw = raw.substr(1, raw.size() - 2);
    }
    for (char c : raw) {
        if (!cookie_octet(static_cast<unsigned char>(c))) {
            return false;
        }
    }
    return true;
}

void scan_name_copies(std::string_view list, PairList kind, std::string_view name,
                      const std::optional<std::string>& nginx_value, NameCopies& acc) {
    std::string_view seps = kind == PairList::cookie ? ";," : "&;";
    std::string canonical = canonical_field_name(name);
    std::string value;
    while (!list.empty()) {
        size_t sep = list.find_first_of(seps);
        std::string_view pair = list.substr(0, sep);
        list = sep == std::string_view::npos ? std::string_view() : list.substr(sep + 1);
        size_t eq = pair.find('=');
        if (eq == std::string_view::npos) {
            // a bare name: some backends read it as an empty value
            eq = pair.size();
        }
        std::string_view raw = trim_name_junk(pair.substr(0, eq));
        if (raw.empty() || canonical_field_name(form_decode(raw)) != canonical) {
            continue;
        }
        acc.found = true;
        std::string_view raw_value = eq < pair.size() ? pair.substr(eq + 1) : std::string_view();
        if (kind == PairList::cookie) {
            while (!raw_value.empty() && (raw_value.front() == ' ' || raw_value.front() == '\t')) {
                raw_value.remove_prefix(1);
            }
            if (!plain_cookie_value(raw_value)) {
                acc.differs = true;
                continue;
            }
        }
        pair_key_value(raw_value, kind, value);
        if (!nginx_value || value != *nginx_value) {
            acc.differs = true;
        }
        OPENSSL_cleanse(value.data(), value.size());
    }
}

bool BodyFields::ambiguous(std::string_view name) const {
    return duplicated(name) || (!structured.empty() && structured.count(std::string(name)) != 0);
}

std::string form_decode(std::string_view in) {
    std::string out;
    form_decode_into(in, out);
    return out;
}

void form_decode_into(std::string_view in, std::string& out) {
    out.clear();
    out.reserve(in.size());
    for (size_t i = 0; i < in.size(); i++) {
        char c = in[i];
        if (c == '+') {
            out.push_back(' ');
        } else if (c == '%' && i + 2 < in.size() && hexval(in[i + 1]) >= 0
                   && hexval(in[i + 2]) >= 0) {
            out.push_back(static_cast<char>(hexval(in[i + 1]) * 16 + hexval(in[i + 2])));
            i += 2;
        } else {
            out.push_back(c);
        }
    }
}

BodyFields parse_body_fields(std::string_view content_type, std::string_view body) {
    if (body.empty()) {
        return {};
    }
    content_type = trim(content_type);
    if (content_type.empty()) {
        if (first_blank_is(body, "{[")) {
            return parse_json(body);
        }
        if (looks_like_form(body)) {
            return parse_form(body);
        }
        BodyFields out;
        out.status = BodyStatus::unsupported;
        return out;
    }
    size_t semi = content_type.find(';');
    std::string type = lower(trim(content_type.substr(0, semi)));
    std::string_view params = semi == std::string_view::npos ? std::string_view() : content_type.substr(semi);
    if (type == "application/json" || (type.size() > 5 && type.compare(type.size() - 5, 5, "+json") == 0)) {
        return parse_json(body);
    }
    if (type == "application/x-www-form-urlencoded") {
        return parse_form(body);
    }
    if (type == "multipart/form-data") {
        return parse_multipart(params, body);
    }
    BodyFields out;
    out.status = BodyStatus::unsupported;
    return out;
}

}  // namespace pairguard
