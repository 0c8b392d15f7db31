// Guard policies: what a `pairguard_policy` line says, and the arithmetic that
// decides on one key. The same rules run in Redis (src/lua/guard_*.lua) and, when
// Redis is unreachable, on a node's shared memory through GuardRecord below.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pairguard {

constexpr int64_t kMaxFailuresLimit = 1000;
constexpr int64_t kReservationHoldMs = 60 * 1000;   // an unsettled attempt's lifetime
constexpr int64_t kBusyRetryMs = 1000;              // Retry-After when over budget in flight
constexpr int64_t kEscalationMemoryMs = 24 * 3600 * 1000;

struct PolicyLimits {
    int64_t max_failures = 0;
    int64_t window_ms = 0;
    int64_t lockout_ms = 0;
    int64_t backoff_milli = 1000;  // FACTOR * 1000; 1000 = no escalation
    int64_t max_lockout_ms = 0;    // 0 = no cap
    bool key_required = false;
};

constexpr int64_t kDefaultDeviceTtlMs = int64_t{30} * 86400 * 1000;
// Browsers keep a cookie at most 400 days (RFC 6265bis): a longer Max-Age
// would promise what no browser keeps.
constexpr int64_t kMaxDeviceTtlMs = int64_t{400} * 86400 * 1000;

// Trusted devices (device_cookie=): a success for a key sets a cookie bound to
// it; a request carrying a valid one is decided on the device's own key with
// these limits instead of the account's (src/core/device.hpp).
struct DeviceSpec {
    std::string cookie;  // empty: no trusted devices
    int64_t ttl_ms = kDefaultDeviceTtlMs;
    PolicyLimits limits;  // the policy's, with device_max_failures
};

struct PolicySpec {
    std::string key;  // the complex value text, compiled by the nginx glue
    bool key_normalize = false;  // key_normalize: normalize_key_value() before the HMAC
    PolicyLimits limits;
    DeviceSpec device;
};

// Parses the parameters after the policy name ("key=$remote_addr",
// "max_failures=5", ...). Returns an empty string on success, else an nginx-style
// error message naming the offending parameter.
std::string parse_policy_args(const std::vector<std::string_view>& args, PolicySpec& out);

// key_normalize: what a backend that matches accounts without regard to case
// or surrounding blanks (SQL `_ci` collations, `.strip().lower()`) reads as
// one account is one key: blanks (space, tab, CR, LF, VT, FF) dropped at
// both ends, ASCII letters lower-cased. Other bytes stay as they are. The
// module applies it to each value of the request a key template reads.
void normalize_key_value(std::string& value);
// Whether a value is empty or blanks only (those normalize_key_value drops).
bool key_value_blank(std::string_view value);

// Lock duration for the (n+1)-th lockout in a row (n earlier ones within 24 h).
int64_t lockout_duration_ms(const PolicyLimits& limits, int64_t earlier_lockouts);

// How a request's upstream answer counts.
enum class Outcome { failure, success, neutral };

// One key's state, laid out flat so that it can live in shared memory. The
// times array (capacity = max_failures) holds failures first, then the expiry
// times of in-flight reservations.
struct GuardRecord {
    int64_t locked_until = 0;
    int64_t last_lockout = 0;
    uint32_t lockouts = 0;
    uint16_t nfail = 0;
    uint16_t nres = 0;
};

enum class Verdict { allow, locked, busy };

struct CheckResult {
    Verdict verdict = Verdict::allow;
    int64_t retry_ms = 0;
    bool lock_ended = false;  // a lock ran out and was cleared by this check
};

struct SettleResult {
    bool locked = false;
    int64_t lock_ms = 0;
};

// Prunes stale failures and reservations, then says whether one more attempt
// may go to the upstream. Does not reserve.
CheckResult guard_check(GuardRecord& rec, int64_t* times, const PolicyLimits& limits, int64_t now);

// Adds one in-flight reservation expiring at `expires`. Call only after every
// policy of the request passed guard_check.
void guard_reserve(GuardRecord& rec, int64_t* times, int64_t expires);

// Removes the reservation `reservation` (0: none) and records the outcome.
SettleResult guard_settle(GuardRecord& rec, int64_t* times, const PolicyLimits& limits,
                          Outcome outcome, int64_t reservation, int64_t now);

// Upstream status -> outcome: failure list first, then neutral list, then
// 2xx/3xx success, anything else neutral.
Outcome classify_status(int status, const int* failure, size_t nfailure, const int* neutral, size_t nneutral);

}  // namespace pairguard
