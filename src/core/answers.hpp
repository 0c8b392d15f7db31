// The JSON bodies pairguard answers with on its own.
#pragma once

#include <cstdint>
#include <string>

namespace pairguard {

std::string too_many_attempts_body(int64_t retry_after_s);

// {"error":"CODE"} for a fixed, known code (no escaping needed).
std::string error_body(const char* code);

}  // namespace pairguard
