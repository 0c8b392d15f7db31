// The Redis scripts (src/lua, embedded at build time) and how to call them:
// argument lists and reply decoding, shared by the module and the CLI.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "policy.hpp"
#include "resp.hpp"
#include "store.hpp"

namespace pairguard {

const StoreScript& guard_reserve_script();
const StoreScript& guard_settle_script();
// Every reserve and settle of one event-loop iteration in one call.
const StoreScript& guard_batch_script();
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

// One guard operation for guard_batch.lua, its RESP written up front: the
// keys (encoded once per request) and the operation's arguments with each
// key's five limits (encoded once per policy at configuration time).
struct GuardOp {
    bool settle = false;
    size_t nkeys = 0;
    std::string keys;  // nkeys RESP bulk strings
    std::string args;  // 'r' | 's', nkeys, [outcome, reservation], limits
    size_t nargs = 0;
};

// `keys`: the store keys as RESP bulk strings; `limits`: 5 * nkeys RESP
// bulk strings (append_limits, per key in the same order).
GuardOp make_guard_reserve(std::string_view keys, size_t nkeys, std::string_view limits);
GuardOp make_guard_settle(std::string_view keys, size_t nkeys, Outcome outcome, int64_t reservation,
                          std::string_view limits);

// One guard call on its own, for the CLI and tests (the module batches):
// keys and one limits entry per key.
StoreCall make_guard_reserve_call(const std::vector<std::string>& keys, const std::vector<PolicyLimits>& limits);
StoreCall make_guard_settle_call(const std::vector<std::string>& keys, const std::vector<PolicyLimits>& limits,
                                 Outcome outcome, int64_t reservation);

// EVALSHA guard_batch numkeys KEYS... hold ops...: the operations in order.
RespArgs make_guard_batch(const GuardOp* const* ops, size_t n, int64_t hold_ms);

// The batch's reply: one integer list per operation, in order; false when
// the reply is not that shape. Each list decodes with decode_reserve or
// decode_settle.
bool decode_guard_batch(const Reply& reply, size_t nops, std::vector<std::vector<int64_t>>& out);

// Seconds for Retry-After: rounded up, at least 1.
int64_t retry_after_seconds(int64_t retry_ms);

}  // namespace pairguard
