// The metrics of pairguard_status (SPEC section 5): the fixed label values,
// how an answer maps to one of them, and the two renderings of one snapshot
// (Prometheus text exposition 0.0.4 and JSON), plus the table pairguardctl
// prints from the JSON. No nginx here: the glue keeps the counters in shared
// memory and hands a snapshot to these functions.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pairguard::metrics {

// Every label value is one of these: a counter has a fixed slot per value,
// and no label ever carries a client key, address, user or code.
inline constexpr std::array<const char*, 5> kDecisions = {"allowed", "locked", "busy", "key_required", "dry_run"};
enum Decision : size_t { allowed, locked, busy, key_required, dry_run };

inline constexpr std::array<const char*, 3> kOutcomes = {"failure", "success", "neutral"};

inline constexpr std::array<const char*, 3> kStoreErrors = {"error", "timeout", "down"};

// Upper bounds of the store latency histogram, in seconds (0.25 ms ... 1 s).
inline constexpr std::array<double, 12> kLatencyBounds = {0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                          0.025,   0.05,   0.1,   0.25,   0.5,   1.0};
// The same bounds in nanoseconds, for the request path (integers only).
inline constexpr std::array<uint64_t, 12> kLatencyBoundsNs = {250000,    500000,    1000000,   2500000,
                                                              5000000,   10000000,  25000000,  50000000,
                                                              100000000, 250000000, 500000000, 1000000000};
inline constexpr size_t kLatencyBuckets = kLatencyBounds.size() + 1;  // and +Inf

inline constexpr std::array<const char*, 4> kPairingEndpoints = {"request", "approve", "pending", "approved"};
// "ok" or the JSON error code of the answer; anything else is "other".
inline constexpr std::array<const char*, 15> kPairingResults = {"ok",
                                                                "invalid_request",
                                                                "invalid_code",
                                                                "rate_limited",
                                                                "too_many_pending",
                                                                "locked",
                                                                "not_found",
                                                                "not_paired",
                                                                "store_error",
                                                                "store_unavailable",
                                                                "body_too_large",
                                                                "too_many_attempts",
                                                                "method_not_allowed",
                                                                "internal_error",
                                                                "other"};

inline constexpr std::array<const char*, 5> kAuthMethods = {"password", "signature", "scram", "plaintext", "session"};
enum AuthMethod : size_t { password, signature, scram, plaintext, session };
// "continue": a step of a multi-step exchange (Haystack HELLO, client-first);
// "challenge": a challenge handed out for a signature; "refused": a refusal
// with no body (Haystack); else the JSON error code, or "other".
inline constexpr std::array<const char*, 16> kAuthResults = {"ok",
                                                             "continue",
                                                             "challenge",
                                                             "refused",
                                                             "invalid_credentials",
                                                             "unauthorized",
                                                             "invalid_token",
                                                             "invalid_request",
                                                             "store_unavailable",
                                                             "busy",
                                                             "body_too_large",
                                                             "too_many_attempts",
                                                             "method_not_allowed",
                                                             "internal_error",
                                                             "locked",
                                                             "other"};

// The index of `value` in `values`, or the last index ("other").
template <size_t N>
size_t index_of(const std::array<const char*, N>& values, std::string_view value) {
    for (size_t i = 0; i + 1 < N; i++) {
        if (value == values[i]) {
            return i;
        }
    }
    return N - 1;
}

// The "error" member of a JSON answer body, or "" (no body, not JSON, none).
std::string error_code(std::string_view body);

// The result label of a pairing endpoint's answer.
size_t pairing_result(int status, std::string_view body);

// The result label of an auth answer; `scram_continues`: a 401 that carries
// a SCRAM or HELLO challenge to go on with.
size_t auth_result(int status, std::string_view body, bool scram_continues, bool challenge_endpoint);

// The method a Haystack request uses, from its Authorization scheme (HELLO
// and SCRAM are the SCRAM exchange, BEARER a session).
AuthMethod haystack_method(std::string_view authorization);

struct PolicyCounters {
    std::string name;
    std::array<uint64_t, kDecisions.size()> decisions{};
    std::array<uint64_t, kOutcomes.size()> outcomes{};
    uint64_t lockouts = 0;
    uint64_t local_verdicts = 0;
};

// One node's counters, read at one time.
struct Snapshot {
    bool store_up = false;
    uint64_t store_commands = 0;
    std::array<uint64_t, kStoreErrors.size()> store_errors{};
    std::array<uint64_t, kLatencyBuckets> latency_buckets{};  // per bucket, not cumulative
    uint64_t latency_sum_ns = 0;
    std::vector<PolicyCounters> policies;
    std::array<std::array<uint64_t, kPairingResults.size()>, kPairingEndpoints.size()> pairing{};
    std::array<std::array<uint64_t, kAuthResults.size()>, kAuthMethods.size()> auth{};
};

// Prometheus text exposition format 0.0.4: every metric with # HELP and
// # TYPE; policies with all their label values (zeros included), pairing
// and auth with the values seen so far.
std::string render_prometheus(const Snapshot& s);

// {"store":{...},"policies":{NAME:{...}},"pairing":{...},"auth":{...}}
std::string render_json(const Snapshot& s);

// pairguardctl status: the JSON as a table; "" and `err` set when the text
// is not a status document.
std::string status_table(std::string_view json, std::string& err);

}  // namespace pairguard::metrics
