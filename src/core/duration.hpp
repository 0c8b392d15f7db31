// Durations in nginx's syntax ("500ms", "15m", "1h30m", "2d"), as milliseconds.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace pairguard {

// A bare number means seconds, as in nginx. Returns nullopt for anything else
// (empty, unknown unit, overflow, negative).
std::optional<int64_t> parse_duration_ms(std::string_view text);

}  // namespace pairguard
