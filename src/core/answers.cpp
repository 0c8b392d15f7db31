#include "answers.hpp"

namespace pairguard {

std::string too_many_attempts_body(int64_t retry_after_s) {
    return "{\"error\":\"too_many_attempts\",\"retry_after\":" + std::to_string(retry_after_s) + "}";
}

std::string error_body(const char* code) {
    return std::string("{\"error\":\"") + code + "\"}";
}

}  // namespace pairguard
