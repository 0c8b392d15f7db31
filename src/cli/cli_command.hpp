// What pairguardctl's command files share: the options parsed by
// pairguardctl.cpp, the context a command runs in (the store, the keys, the
// policies), exit statuses, and helpers for script calls and output.
//
//   cli_pairing.cpp        approve, pending, clear-pending, approved, revoke,
//                          locks, unlock
//   cli_auth_commands.cpp  user, key, sessions, logout, challenge, verify
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "auth_store.hpp"
#include "cli_store.hpp"
#include "keys.hpp"
#include "pairing.hpp"

namespace pairguard::cli {

constexpr int kDone = 0;
constexpr int kRefused = 1;
constexpr int kUsage = 2;
constexpr int kUnreachable = 3;

// A wrong command line: exit status 2, with a hint to `pairguardctl help`.
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Options {
    std::string redis;
    std::string secret_file;
    std::optional<std::string> prefix;
    std::string policy;
    bool json = false;
    bool platform_flag = false;  // unlock --platform
    bool device_flag = false;    // unlock --device
    std::string auth_policy;
    // auth commands
    bool password_stdin = false;
    bool protect = false;
    std::optional<std::string> pubkey, reason, out, in, host;
    std::vector<std::string> args;
};

struct Context {
    Options opt;
    RedisTarget target;
    PairingLimits limits;
    AuthPolicy auth;
    std::unique_ptr<KeyDeriver> keys;
    std::unique_ptr<SyncRedis> redis;

    const std::string& prefix() const { return target.prefix; }
};

// ---- pairing and locks (cli_pairing.cpp) ----

int cmd_approve(Context& c);
int cmd_pending(Context& c);
int cmd_clear_pending(Context& c);
int cmd_approved(Context& c);
int cmd_revoke(Context& c);
int cmd_locks(Context& c);
int cmd_unlock(Context& c);

// ---- users, keys, sessions, challenges (cli_auth_commands.cpp) ----

int cmd_user(Context& c);
int cmd_key(Context& c);
int cmd_sessions(Context& c);
int cmd_logout(Context& c);
int cmd_challenge(Context& c);
int cmd_verify(Context& c);

// The auth options a command takes; any other one given is a usage error.
enum AuthFlag : unsigned {
    kFlagPasswordStdin = 1,
    kFlagPubkey = 2,
    kFlagProtected = 4,
    kFlagReason = 8,
    kFlagOut = 16,
    kFlagIn = 32,
    kFlagHost = 64,
};

void allow_flags(const Context& c, const std::string& cmd, unsigned allowed);

// ---- shared helpers (cli_command.cpp) ----

// "1h02m", "3m05s", "42s".
std::string human_duration(int64_t s);

// "2026-11-22 06:13:44Z" for unix seconds.
std::string utc_time(int64_t unix_s);

// Text from Redis, made safe for a terminal ("-" when empty).
std::string printable(std::string_view s);

// Columns padded to their widest cell, two spaces apart.
void print_table(const std::vector<std::string>& head, const std::vector<std::vector<std::string>>& rows);

// Between min and max arguments after the command name, else a UsageError.
void expect_args(const Context& c, size_t min, size_t max);

// A script call; an error reply throws StoreUnreachable.
Reply run(Context& c, const StoreCall& call);

[[noreturn]] void bad_reply(const StoreCall& call);

// Redis' clock, in milliseconds.
int64_t redis_now_ms(Context& c);

}  // namespace pairguard::cli
