#include "duration.hpp"

namespace pairguard {

namespace {

constexpr int64_t kMaxMs = int64_t{1} << 50;  // far beyond any sane lockout

}  // namespace

std::optional<int64_t> parse_duration_ms(std::string_view text) {
    if (text.empty()) {
        return std::nullopt;
    }

    int64_t total = 0;
    size_t i = 0;

    while (i < text.size()) {
        if (text[i] < '0' || text[i] > '9') {
            return std::nullopt;
        }
        int64_t value = 0;
        while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
            value = value * 10 + (text[i] - '0');
            if (value > kMaxMs) {
                return std::nullopt;
            }
            i++;
        }

        int64_t unit = 1000;  // bare number: seconds
        if (i < text.size()) {
            char c = text[i];
            if (c == 'm' && i + 1 < text.size() && text[i + 1] == 's') {
                unit = 1;
                i += 2;
            } else {
                switch (c) {
                case 's': unit = 1000; break;
                case 'm': unit = 60 * 1000; break;
                case 'h': unit = 3600 * 1000; break;
                case 'd': unit = 86400 * 1000; break;
                default: return std::nullopt;
                }
                i++;
            }
        } else if (total != 0) {
            return std::nullopt;  // "1h30" is ambiguous: nginx refuses it too
        }

        if (value > kMaxMs / unit) {
            return std::nullopt;
        }
        total += value * unit;
        if (total > kMaxMs) {
            return std::nullopt;
        }
    }
    return total;
}

}  // namespace pairguard
