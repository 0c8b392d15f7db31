// Top-level fields of a request body, for `$pairguard_body_NAME`.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>

namespace pairguard {

enum class BodyStatus { ok, invalid, unsupported };

struct BodyFields {
    BodyStatus status = BodyStatus::unsupported;
    std::unordered_map<std::string, std::string> fields;

    // Empty when absent.
    std::string_view get(std::string_view name) const;
};

// JSON for `application/json` (and `+json`), or no Content-Type and a body that
// starts with '{'; form fields for `application/x-www-form-urlencoded`, or no
// Content-Type otherwise; `unsupported` (no fields) for any other type.
// A JSON string field gives its value, a number or boolean its JSON text;
// null, arrays and objects give nothing. `invalid` when the JSON does not parse
// or is not an object.
BodyFields parse_body_fields(std::string_view content_type, std::string_view body);

// application/x-www-form-urlencoded decoding of one component.
std::string form_decode(std::string_view in);

}  // namespace pairguard
