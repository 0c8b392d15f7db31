// Top-level fields of a request body, for `$pairguard_body_NAME`.
//
// The contract with the glue (SPEC section 2), for a key that names body
// field NAME:
//   - status `invalid`     -> 400 {"error":"invalid_body"}, upstream not contacted
//   - status `unsupported` -> 415 {"error":"unsupported_body"}, upstream not contacted
//   - status `ok` and duplicated(NAME)
//                          -> 400 {"error":"invalid_body"}: the upstream may
//                             read another copy than the guard
//   - status `ok` otherwise -> get(NAME), empty when the field is absent (an
//                             empty key: the policy is skipped, or refused
//                             with key_required)
// A duplicated field that no key uses does not matter. An empty body is
// always `ok` with no fields, whatever its Content-Type.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <optional>
#include <unordered_set>
#include <vector>

namespace pairguard {

enum class BodyStatus {
    ok,           // parsed; fields and duplicates are filled in
    invalid,      // claims (or was sniffed as) a supported format and does not parse
    unsupported,  // non-empty, and neither JSON, urlencoded form nor multipart/form-data
};

struct BodyFields {
    BodyStatus status = BodyStatus::ok;
    std::unordered_map<std::string, std::string> fields;
    std::unordered_set<std::string> duplicates;  // names that occur more than once
    // top-level JSON names whose value is an array or an object: no key
    // value, but a backend may read one out of it (`["bob"]` is "bob" to a
    // JavaScript string conversion, `{"$eq":"bob"}` to MongoDB)
    std::unordered_set<std::string> structured;
    // Backends read names loosely (PHP trims leading blanks, maps ". [" to
    // "_" and cuts at NUL; ASP.NET ignores case; PHP, Rails and qs read
    // `NAME[]` and `NAME[x]` as an array or object named NAME): canonical
    // name -> the raw spelling seen, "" when there were several.
    std::unordered_map<std::string, std::string> spellings;

    BodyFields() = default;
    BodyFields(BodyFields&&) noexcept = default;
    BodyFields& operator=(BodyFields&& other) noexcept;
    BodyFields(const BodyFields&) = delete;
    BodyFields& operator=(const BodyFields&) = delete;
    // The values are wiped when they go (a login body's password, a code),
    // and so is what jansson decoded (src/core/json.cpp): best effort, since
    // nginx's own buffers of the raw body are not the module's to wipe.
    ~BodyFields();

    // Empty when absent.
    std::string_view get(std::string_view name) const;
    // True when NAME occurs twice, or when the body spells it another way
    // that some backend reads as NAME ("Account", " account", "account\0x").
    bool duplicated(std::string_view name) const;
    // True when a key cannot use NAME with certainty: duplicated, or its
    // value is an array or an object.
    bool ambiguous(std::string_view name) const;
};

// Which parser reads the body, from the media type (matched without regard
// to case, parameters ignored except multipart's boundary):
//   - `application/json` or any `+json` type: JSON; the body must be one
//     object. A string field gives its value, a boolean its JSON text, a
//     number its decimal integer (100.0 and 1e2 are 100); null, arrays,
//     objects and numbers with a fraction or beyond 2^53 give nothing (but
//     still count as occurrences of their name; the last three are
//     `structured`).
//   - `application/x-www-form-urlencoded`: form fields, URL-decoded, split on
//     '&'. A form body that starts with '{' or '[' is `invalid`: an encoder
//     escapes those, and an upstream that ignores the Content-Type would
//     read it as JSON.
//   - `multipart/form-data; boundary=B` (B quoted or not): parts with
//     `Content-Disposition: form-data; name="N"`. A part with a non-empty
//     filename is a file, not a field (its name still counts for
//     duplicates); a part without one is a text field whose value is the
//     part's content. Strict: CRLF line ends, no preamble, a closing
//     delimiter, the boundary nowhere else in the body, one
//     Content-Disposition per part with a name and no `name*`, no backslash
//     in its quoted strings, and no Content-Transfer-Encoding other than
//     7bit, 8bit or binary; anything else is `invalid` (parsers disagree on
//     such bodies, so the guard could read another field than the upstream).
//   - no Content-Type: JSON when the first non-blank byte is '{' or '['; a
//     form when every byte is printable ASCII other than space (what a form
//     encoder writes); otherwise `unsupported`.
//   - any other type: `unsupported` (no fields).
BodyFields parse_body_fields(std::string_view content_type, std::string_view body);

// A field name as the loosest common backend reads it (see BodyFields).
std::string canonical_field_name(std::string_view name);

// application/x-www-form-urlencoded decoding of one component.
std::string form_decode(std::string_view in);
// The same into `out` (cleared first).
void form_decode_into(std::string_view in, std::string& out);

// Name=value lists a key may read one value of: Cookie headers
// ($cookie_NAME) and the query string ($arg_NAME).
enum class PairList { cookie, query };

// The value a key counts for a pair's raw value, as backends decode it so
// that every spelling of one value is one key: a query argument
// form-decoded (`%76ictim` and `+` for a space); a cookie with surrounding
// quotes removed, then form-decoded. Written into `out` (no temporary copy
// of the value is left behind).
void pair_key_value(std::string_view raw, PairList kind, std::string& out);

// Whether a cookie's raw value is one every backend reads the same way:
// RFC 6265 cookie-octets only (no whitespace, control character, byte of
// 0x80 or more, '"', ',', ';' or '\\'), optionally inside one pair of
// quotes. Backends differ on everything else (Python unescapes "\\151",
// strips non-ASCII blanks, ends a pair at a space; Node drops a lone
// leading quote).
bool plain_cookie_value(std::string_view raw);

// How a key's NAME is given in name=value lists besides the copy nginx
// reads (the caller has nginx's value: $cookie_NAME / $arg_NAME). A backend
// may split more loosely than nginx (cookies also on ',', queries also on
// ';'), trim blanks and control characters around names, decode names and
// read them as canonical_field_name does, and take another copy (PHP takes
// the last query argument).
struct NameCopies {
    bool found = false;    // some copy a backend may read as NAME
    bool differs = false;  // one whose value is not nginx's, or (cookies) not plain
    // True when nginx and some backend may read different values: a copy
    // while nginx reads none (another spelling), or a differing one.
    bool ambiguous(bool nginx_reads) const { return differs || (found && !nginx_reads); }
};
// Adds the copies in `list` to `acc`, each compared with `nginx_value`
// (pair_key_value of what nginx read; nullopt: nothing) and wiped at once.
void scan_name_copies(std::string_view list, PairList kind, std::string_view name,
                      const std::optional<std::string>& nginx_value, NameCopies& acc);

}  // namespace pairguard
