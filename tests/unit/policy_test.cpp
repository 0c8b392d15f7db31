#include <gtest/gtest.h>

#include <vector>

#include "policy.hpp"

using namespace pairguard;

namespace {

PolicySpec parse_ok(std::vector<std::string_view> args) {
    PolicySpec spec;
    std::string err = parse_policy_args(args, spec);
    EXPECT_EQ(err, "");
    return spec;
}

std::string parse_err(std::vector<std::string_view> args) {
    PolicySpec spec;
    return parse_policy_args(args, spec);
}

// One key's state with room for max_failures entries, as in shared memory.
struct Key {
    explicit Key(int64_t max) : times(static_cast<size_t>(max), 0) { limits.max_failures = max; }
    PolicyLimits limits;
    GuardRecord rec;
    std::vector<int64_t> times;

    CheckResult check(int64_t now) { return guard_check(rec, times.data(), limits, now); }
    int64_t attempt(int64_t now) {
        CheckResult c = check(now);
        if (c.verdict != Verdict::allow) {
            return 0;
        }
        guard_reserve(rec, times.data(), now + kReservationHoldMs);
        return now + kReservationHoldMs;
    }
    SettleResult settle(Outcome o, int64_t res, int64_t now) {
        return guard_settle(rec, times.data(), limits, o, res, now);
    }
};

Key seed002() {
    Key k(5);
    k.limits.window_ms = 15 * 60 * 1000;
    k.limits.lockout_ms = 15 * 60 * 1000;
    return k;
}

}  // namespace

TEST(PolicyArgs, ParsesTheSpecExample) {
    PolicySpec s = parse_ok({"key=$remote_addr", "max_failures=5", "window=15m", "lockout=15m"});
    EXPECT_EQ(s.key, "$remote_addr");
    EXPECT_EQ(s.limits.max_failures, 5);
    EXPECT_EQ(s.limits.window_ms, 900000);
    EXPECT_EQ(s.limits.lockout_ms, 900000);
    EXPECT_EQ(s.limits.backoff_milli, 1000);
    EXPECT_FALSE(s.limits.key_required);
}

TEST(PolicyArgs, ParsesBackoffAndKeyRequired) {
    PolicySpec s = parse_ok({"key=$x", "max_failures=3", "window=1m", "lockout=1m", "backoff=1.5", "max_lockout=1h",
                             "key_required"});
    EXPECT_EQ(s.limits.backoff_milli, 1500);
    EXPECT_EQ(s.limits.max_lockout_ms, 3600000);
    EXPECT_TRUE(s.limits.key_required);
}

TEST(PolicyArgs, NamesTheBadParameter) {
    EXPECT_EQ(parse_err({"key=$x", "max_failures=5", "window=abc", "lockout=1m"}), "invalid parameter \"window=abc\"");
    EXPECT_EQ(parse_err({"key=$x", "max_failures=0", "window=1m", "lockout=1m"}), "invalid parameter \"max_failures=0\"");
    EXPECT_EQ(parse_err({"key=$x", "max_failures=5", "window=1m", "lockout=1m", "colour=red"}),
              "invalid parameter \"colour=red\"");
    EXPECT_EQ(parse_err({"max_failures=5", "window=1m", "lockout=1m"}), "\"key\" parameter is missing");
    EXPECT_EQ(parse_err({"key=$x", "window=1m", "lockout=1m"}), "\"max_failures\" parameter is missing");
    EXPECT_EQ(parse_err({"key=$x", "max_failures=5", "window=1m", "lockout=1m", "backoff=0.5"}),
              "invalid parameter \"backoff=0.5\"");
    EXPECT_EQ(parse_err({"key=$x", "max_failures=5", "window=1m", "lockout=1m", "max_lockout=1h"}),
              "\"max_lockout\" requires \"backoff\"");
}

TEST(LockoutDuration, EscalatesAndCaps) {
    PolicyLimits l;
    l.lockout_ms = 1000;
    l.backoff_milli = 2000;
    l.max_lockout_ms = 5000;
    EXPECT_EQ(lockout_duration_ms(l, 0), 1000);
    EXPECT_EQ(lockout_duration_ms(l, 1), 2000);
    EXPECT_EQ(lockout_duration_ms(l, 2), 4000);
    EXPECT_EQ(lockout_duration_ms(l, 3), 5000);
    EXPECT_EQ(lockout_duration_ms(l, 50), 5000);
}

TEST(Guard, LocksAtMaxFailuresAndRefusesUntilTheLockEnds) {
    Key k = seed002();
    int64_t now = 1000000;
    for (int i = 0; i < 4; i++) {
        int64_t r = k.attempt(now);
        ASSERT_NE(r, 0) << "attempt " << i;
        EXPECT_FALSE(k.settle(Outcome::failure, r, now).locked);
    }
    int64_t r = k.attempt(now);
    ASSERT_NE(r, 0);
    SettleResult s = k.settle(Outcome::failure, r, now);
    EXPECT_TRUE(s.locked);
    EXPECT_EQ(s.lock_ms, 900000);

    CheckResult c = k.check(now + 1000);
    EXPECT_EQ(c.verdict, Verdict::locked);
    EXPECT_EQ(c.retry_ms, 899000);

    c = k.check(now + 900001);
    EXPECT_EQ(c.verdict, Verdict::allow);
    EXPECT_TRUE(c.lock_ended);
    EXPECT_FALSE(k.check(now + 900002).lock_ended) << "the end is reported once";
}

TEST(Guard, ReservationsCapAttemptsInFlight) {
    Key k = seed002();
    int64_t now = 5000;
    for (int i = 0; i < 5; i++) {
        EXPECT_NE(k.attempt(now), 0);
    }
    CheckResult c = k.check(now);
    EXPECT_EQ(c.verdict, Verdict::busy);
    EXPECT_EQ(c.retry_ms, kBusyRetryMs);
}

TEST(Guard, UnsettledReservationsExpire) {
    Key k = seed002();
    int64_t now = 5000;
    for (int i = 0; i < 5; i++) {
        k.attempt(now);
    }
    EXPECT_EQ(k.check(now + kReservationHoldMs - 1).verdict, Verdict::busy);
    EXPECT_EQ(k.check(now + kReservationHoldMs).verdict, Verdict::allow);
}

TEST(Guard, NeutralReleasesTheReservationAndCountsNothing) {
    Key k = seed002();
    for (int i = 0; i < 20; i++) {
        int64_t r = k.attempt(100);
        ASSERT_NE(r, 0);
        k.settle(Outcome::neutral, r, 100);
    }
    EXPECT_EQ(k.rec.nfail, 0);
    EXPECT_EQ(k.rec.nres, 0);
}

TEST(Guard, SuccessResetsFailures) {
    Key k = seed002();
    for (int i = 0; i < 4; i++) {
        k.settle(Outcome::failure, k.attempt(100), 100);
    }
    k.settle(Outcome::success, k.attempt(100), 100);
    EXPECT_EQ(k.rec.nfail, 0);
}

TEST(Guard, BulkRolloutWithTyposNeverLocks) {
    Key k = seed002();
    int64_t now = 0;
    for (int display = 0; display < 20; display++) {
        for (int typo = 0; typo < 2; typo++) {
            EXPECT_FALSE(k.settle(Outcome::failure, k.attempt(now), now).locked);
        }
        k.settle(Outcome::success, k.attempt(now), now);
        now += 1000;
    }
    EXPECT_EQ(k.check(now).verdict, Verdict::allow);
}

TEST(Guard, FailuresOlderThanTheWindowNoLongerCount) {
    Key k = seed002();
    for (int i = 0; i < 4; i++) {
        k.settle(Outcome::failure, k.attempt(0), 0);
    }
    int64_t later = k.limits.window_ms + 1;
    EXPECT_FALSE(k.settle(Outcome::failure, k.attempt(later), later).locked);
    EXPECT_EQ(k.rec.nfail, 1);
}

TEST(Guard, EscalatesWithin24HoursOnly) {
    Key k(2);
    k.limits.window_ms = 10000;
    k.limits.lockout_ms = 1000;
    k.limits.backoff_milli = 3000;
    k.limits.max_lockout_ms = 5000;
    int64_t now = 1;
    auto lock_once = [&]() {
        k.settle(Outcome::failure, k.attempt(now), now);
        SettleResult s = k.settle(Outcome::failure, k.attempt(now), now);
        EXPECT_TRUE(s.locked);
        now += s.lock_ms + 1;
        return s.lock_ms;
    };
    EXPECT_EQ(lock_once(), 1000);
    EXPECT_EQ(lock_once(), 3000);
    EXPECT_EQ(lock_once(), 5000);
    now += kEscalationMemoryMs;
    EXPECT_EQ(lock_once(), 1000);
}

TEST(Guard, DryRunOverflowKeepsTheNewestFailure) {
    Key k(2);
    k.limits.window_ms = 10000;
    k.limits.lockout_ms = 1000;
    // dry run: attempts pass without reservations while the key is over budget
    k.attempt(0);
    k.attempt(0);
    SettleResult s = k.settle(Outcome::failure, 0, 1);
    EXPECT_LE(k.rec.nfail + k.rec.nres, 2);
    EXPECT_FALSE(s.locked);
}

TEST(Classify, FailureNeutralSuccess) {
    int failure[] = {401, 403, 404};
    int neutral[] = {410};
    EXPECT_EQ(classify_status(404, failure, 3, neutral, 1), Outcome::failure);
    EXPECT_EQ(classify_status(410, failure, 3, neutral, 1), Outcome::neutral);
    EXPECT_EQ(classify_status(200, failure, 3, neutral, 1), Outcome::success);
    EXPECT_EQ(classify_status(302, failure, 3, neutral, 1), Outcome::success);
    EXPECT_EQ(classify_status(502, failure, 3, neutral, 1), Outcome::neutral);
    EXPECT_EQ(classify_status(400, failure, 3, neutral, 1), Outcome::neutral);
}

TEST(Policy, KeyNormalizeIsAFlag) {
    PolicySpec spec;
    EXPECT_EQ(parse_policy_args({"key=$http_x_account", "max_failures=3", "window=1m", "lockout=1m", "key_normalize"},
                                spec),
              "");
    EXPECT_TRUE(spec.key_normalize);
    PolicySpec plain;
    EXPECT_EQ(parse_policy_args({"key=$http_x_account", "max_failures=3", "window=1m", "lockout=1m"}, plain), "");
    EXPECT_FALSE(plain.key_normalize);
    EXPECT_NE(parse_policy_args({"key=$a", "max_failures=3", "window=1m", "lockout=1m", "key_normalize=on"}, plain),
              "");
}

TEST(Policy, NormalizeKeyValueFoldsAsciiCaseAndTrimsBlanks) {
    auto norm = [](std::string v) {
        normalize_key_value(v);
        return v;
    };
    EXPECT_EQ(norm("Bob"), "bob");
    EXPECT_EQ(norm(" \t BOB@Example.COM \r\n"), "bob@example.com");
    EXPECT_EQ(norm("bob"), "bob");
    EXPECT_EQ(norm("   "), "");
    EXPECT_EQ(norm(""), "");
    EXPECT_EQ(norm("a b"), "a b");  // blanks inside stay
    EXPECT_EQ(norm("\xc3\x96Z"), "\xc3\x96z");  // bytes other than ASCII letters stay
    EXPECT_TRUE(key_value_blank(""));
    EXPECT_TRUE(key_value_blank(" \t\r\n\v\f"));
    EXPECT_FALSE(key_value_blank(" a "));
    EXPECT_FALSE(key_value_blank(std::string("\0", 1))) << "a NUL byte is not a blank";
}
