// The Redis scripts (src/lua, embedded at build time) and how to call them:
// argument lists and reply decoding, shared by the module and the CLI.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "policy.hpp"
#include "resp.hpp"

namespace pairguard {

struct StoreScript {
    std::string_view name;
    std::string_view source;
    std::string sha1;  // hex, for EVALSHA
};

// A script described from its embedded source (the digest for EVALSHA).
StoreScript make_store_script(std::string_view name, std::string_view source);

const StoreScript& guard_reserve_script();
const StoreScript& guard_settle_script();
// pairguardctl locks: {lock end ms, failures} of one guard key.
const StoreScript& guard_inspect_script();

// The pairing scripts (src/lua/pair_*.lua); src/core/pairing.hpp builds their
// calls and decodes their replies.
enum class PairingOp {
    request,
    approve,
    pending,
    clear,
    approved,
    revoke,
    check,
    register_platform,
    platforms,
    lock_status,
    unlock,  // store_unlock.lua: guard keys and platform locks alike
};

const StoreScript& pairing_script(PairingOp op);

// Every pairing script, e.g. to SCRIPT LOAD them on a new connection.
const std::vector<const StoreScript*>& pairing_scripts();

// The five per-key arguments both guard scripts take.
void append_limits(std::vector<std::string>& argv, const PolicyLimits& limits);
void append_limits(RespArgs& args, const PolicyLimits& limits);

enum class ReserveStatus { allowed = 0, locked = 1, busy = 2 };

struct ReserveReply {
    bool valid = false;
    ReserveStatus status = ReserveStatus::allowed;
    size_t policy = 0;  // 0-based index into the request's keys
    int64_t retry_ms = 0;
    int64_t reservation = 0;
    std::vector<size_t> ended;  // 0-based indexes whose lock just ran out
};

struct LockStart {
    size_t policy;
    int64_t lock_ms;
};

ReserveReply decode_reserve(const std::vector<int64_t>& reply, size_t nkeys);
bool decode_settle(const std::vector<int64_t>& reply, size_t nkeys, std::vector<LockStart>& out);

std::string sha1_hex(std::string_view data);

// Seconds for Retry-After: rounded up, at least 1.
int64_t retry_after_seconds(int64_t retry_ms);

}  // namespace pairguard
