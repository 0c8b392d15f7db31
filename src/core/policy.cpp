#include "policy.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "device.hpp"
#include "duration.hpp"
#include "json.hpp"

namespace pairguard {

namespace {

bool parse_int(std::string_view v, int64_t& out) {
    if (v.empty()) {
        return false;
    }
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
    return ec == std::errc() && p == v.data() + v.size();
}

// "2", "1.5": a factor with at most three decimals, kept as thousandths.
bool parse_factor_milli(std::string_view v, int64_t& out) {
    size_t dot = v.find('.');
    std::string_view whole = v.substr(0, dot);
    std::string_view frac = dot == std::string_view::npos ? std::string_view() : v.substr(dot + 1);
    int64_t w = 0;
    if (!parse_int(whole, w) || w < 0 || w > 1000 || frac.size() > 3) {
        return false;
    }
    int64_t f = 0;
    if (dot != std::string_view::npos) {
        if (frac.empty() || !parse_int(frac, f) || f < 0) {
            return false;
        }
        for (size_t i = frac.size(); i < 3; i++) {
            f *= 10;
        }
    }
    out = w * 1000 + f;
    return true;
}

// Drops failures older than the window and reservations past their expiry,
// keeping failures first and reservations after them.
void prune(GuardRecord& rec, int64_t* times, const PolicyLimits& limits, int64_t now) {
    uint16_t nf = 0;
    for (uint16_t i = 0; i < rec.nfail; i++) {
        if (times[i] > now - limits.window_ms) {
            times[nf++] = times[i];
        }
    }
    uint16_t nr = 0;
    for (uint16_t i = 0; i < rec.nres; i++) {
        int64_t t = times[rec.nfail + i];
        if (t > now) {
            times[nf + nr++] = t;
        }
    }
    rec.nfail = nf;
    rec.nres = nr;
}

}  // namespace

std::string parse_policy_args(const std::vector<std::string_view>& args, PolicySpec& out) {
    bool have_key = false, have_max = false, have_window = false, have_lockout = false;
    bool have_backoff = false, have_max_lockout = false;
    bool have_device_ttl = false;
    int64_t device_max = 0;

    for (std::string_view arg : args) {
        if (arg == "key_required") {
            out.limits.key_required = true;
            continue;
        }
        if (arg == "key_normalize") {
            out.key_normalize = true;
            continue;
        }
        size_t eq = arg.find('=');
        if (eq == std::string_view::npos) {
            return invalid_parameter(arg);
        }
        std::string_view name = arg.substr(0, eq);
        std::string_view value = arg.substr(eq + 1);

        if (name == "key") {
            if (value.empty()) {
                return invalid_parameter(arg);
            }
            out.key = std::string(value);
            have_key = true;
        } else if (name == "max_failures") {
            if (!parse_int(value, out.limits.max_failures) || out.limits.max_failures < 1
                || out.limits.max_failures > kMaxFailuresLimit) {
                return invalid_parameter(arg);
            }
            have_max = true;
        } else if (name == "window" || name == "lockout" || name == "max_lockout") {
            auto ms = parse_duration_ms(value);
            if (!ms || *ms <= 0) {
                return invalid_parameter(arg);
            }
            if (name == "window") {
                out.limits.window_ms = *ms;
                have_window = true;
            } else if (name == "lockout") {
                out.limits.lockout_ms = *ms;
                have_lockout = true;
            } else {
                out.limits.max_lockout_ms = *ms;
                have_max_lockout = true;
            }
        } else if (name == "backoff") {
            if (!parse_factor_milli(value, out.limits.backoff_milli) || out.limits.backoff_milli < 1000) {
                return invalid_parameter(arg);
            }
            have_backoff = true;
        } else if (name == "device_cookie") {
            if (!valid_cookie_name(value)) {
                return invalid_parameter(arg);
            }
            out.device.cookie = std::string(value);
        } else if (name == "device_ttl") {
            auto ms = parse_duration_ms(value);
            if (!ms || *ms < 1000 || *ms > kMaxDeviceTtlMs) {
                return invalid_parameter(arg) + " (from 1s to 400d)";
            }
            out.device.ttl_ms = *ms;
            have_device_ttl = true;
        } else if (name == "device_max_failures") {
            if (!parse_int(value, device_max) || device_max < 1 || device_max > kMaxFailuresLimit) {
                return invalid_parameter(arg);
            }
        } else {
            return invalid_parameter(arg);
        }
    }

    if (!have_key) {
        return "\"key\" parameter is missing";
    }
    if (!have_max) {
        return "\"max_failures\" parameter is missing";
    }
    if (!have_window) {
        return "\"window\" parameter is missing";
    }
    if (!have_lockout) {
        return "\"lockout\" parameter is missing";
    }
    if (have_max_lockout && !have_backoff) {
        return "\"max_lockout\" requires \"backoff\"";
    }
    if (have_max_lockout && out.limits.max_lockout_ms < out.limits.lockout_ms) {
        return "\"max_lockout\" is shorter than \"lockout\"";
    }
    if (out.device.cookie.empty() && (have_device_ttl || device_max != 0)) {
        return std::string("\"") + (have_device_ttl ? "device_ttl" : "device_max_failures")
               + "\" requires \"device_cookie\"";
    }
    // a device is locked like a key, with its own budget
    out.device.limits = out.limits;
    out.device.limits.key_required = false;
    if (device_max != 0) {
        out.device.limits.max_failures = device_max;
    }
    return {};
}

namespace {
bool key_blank(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}
}  // namespace

bool key_value_blank(std::string_view value) {
    for (char c : value) {
        if (!key_blank(c)) {
            return false;
        }
    }
    return true;
}

void normalize_key_value(std::string& value) {
    auto blank = key_blank;
    size_t begin = 0, end = value.size();
    while (begin < end && blank(value[begin])) {
        begin++;
    }
    while (end > begin && blank(value[end - 1])) {
        end--;
    }
    for (size_t i = begin; i < end; i++) {
        char c = value[i];
        value[i - begin] = c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    }
    // shortened in place, what was past the new end wiped first: the caller
    // cleanses the value it keys on, no copy of it is left behind
    if (end - begin < value.size()) {
        OPENSSL_cleanse(&value[end - begin], value.size() - (end - begin));
    }
    value.resize(end - begin);
}

int64_t lockout_duration_ms(const PolicyLimits& limits, int64_t earlier_lockouts) {
    double d = static_cast<double>(limits.lockout_ms);
    double factor = static_cast<double>(limits.backoff_milli) / 1000.0;
    double cap = limits.max_lockout_ms > 0 ? static_cast<double>(limits.max_lockout_ms) : 1e15;
    for (int64_t i = 0; i < earlier_lockouts && d < cap; i++) {
        d *= factor;
    }
    return static_cast<int64_t>(std::floor(std::min(d, cap)));
}

CheckResult guard_check(GuardRecord& rec, int64_t* times, const PolicyLimits& limits, int64_t now) {
    CheckResult res;
    prune(rec, times, limits, now);

    if (rec.locked_until > now) {
        res.verdict = Verdict::locked;
        res.retry_ms = rec.locked_until - now;
        return res;
    }
    if (rec.locked_until != 0) {
        rec.locked_until = 0;
        res.lock_ended = true;
    }
    if (rec.nfail + rec.nres >= limits.max_failures) {
        res.verdict = Verdict::busy;
        res.retry_ms = kBusyRetryMs;
    }
    return res;
}

void guard_reserve(GuardRecord& rec, int64_t* times, int64_t expires) {
    times[rec.nfail + rec.nres] = expires;
    rec.nres++;
}

SettleResult guard_settle(GuardRecord& rec, int64_t* times, const PolicyLimits& limits,
                          Outcome outcome, int64_t reservation, int64_t now) {
    SettleResult res;

    if (reservation != 0) {
        for (uint16_t i = 0; i < rec.nres; i++) {
            if (times[rec.nfail + i] == reservation) {
                times[rec.nfail + i] = times[rec.nfail + rec.nres - 1];
                rec.nres--;
                break;
            }
        }
    }
    prune(rec, times, limits, now);

    switch (outcome) {
    case Outcome::neutral:
        break;

    case Outcome::success:
        // failures go, reservations of other requests stay where they are
        for (uint16_t i = 0; i < rec.nres; i++) {
            times[i] = times[rec.nfail + i];
        }
        rec.nfail = 0;
        break;

    case Outcome::failure:
        if (rec.locked_until > now) {
            break;  // counted already by the lock (dry run, or a parallel settle)
        }
        if (rec.nfail + rec.nres >= limits.max_failures) {
            // only in dry run can more attempts than the budget be in flight:
            // drop the oldest failure so the new one fits
            for (uint16_t i = 1; i < rec.nfail + rec.nres; i++) {
                times[i - 1] = times[i];
            }
            if (rec.nfail > 0) {
                rec.nfail--;
            } else {
                rec.nres--;
            }
        }
        // insert at the end of the failures, moving the first reservation back
        if (rec.nres > 0) {
            times[rec.nfail + rec.nres] = times[rec.nfail];
        }
        times[rec.nfail] = now;
        rec.nfail++;

        if (rec.nfail >= limits.max_failures) {
            int64_t earlier = (rec.last_lockout > 0 && now - rec.last_lockout < kEscalationMemoryMs)
                                  ? rec.lockouts
                                  : 0;
            res.locked = true;
            res.lock_ms = lockout_duration_ms(limits, earlier);
            rec.locked_until = now + res.lock_ms;
            rec.lockouts = static_cast<uint32_t>(earlier + 1);
            rec.last_lockout = now;
            for (uint16_t i = 0; i < rec.nres; i++) {
                times[i] = times[rec.nfail + i];
            }
            rec.nfail = 0;
        }
        break;
    }
    return res;
}

Outcome classify_status(int status, const int* failure, size_t nfailure, const int* neutral, size_t nneutral) {
    if (std::find(failure, failure + nfailure, status) != failure + nfailure) {
        return Outcome::failure;
    }
    if (std::find(neutral, neutral + nneutral, status) != neutral + nneutral) {
        return Outcome::neutral;
    }
    if (status >= 200 && status < 400) {
        return Outcome::success;
    }
    return Outcome::neutral;
}

}  // namespace pairguard
