// The small jansson helpers the core's JSON code shares, and the wording of
// a configuration error.
#pragma once

#include <jansson.h>

#include <memory>
#include <string>
#include <string_view>

namespace pairguard {

struct JsonDeleter {
    void operator()(json_t* j) const { json_decref(j); }
};
using JsonPtr = std::unique_ptr<json_t, JsonDeleter>;

// A JSON object, or nullptr (not JSON, or not an object).
JsonPtr json_load_object(std::string_view text, size_t flags = 0);

// The string member `key`, or "" when absent or not a string.
std::string json_get_string(json_t* obj, const char* key);

// Sets obj[key] = value (taking the reference); throws when out of memory.
void json_set(json_t* obj, const char* key, json_t* value);

// Compact text; throws when jansson cannot.
std::string json_dump(const JsonPtr& j);

// nginx's wording: invalid parameter "ARG".
std::string invalid_parameter(std::string_view arg);

}  // namespace pairguard
