// Redis Cluster and the guard: a request's stacked policies have keys in
// different slots (each guard key is its own hash tag), and a Lua script
// touches one slot. A guard operation is split into one part per slot; the
// parts of a reserve share one reservation value, so the settle splits the
// same way. The replies merge back into the one reply the request expects:
// a reserve is allowed only when every part allowed it, and the parts that
// reserved are released (settled neutral) when another part refused, so no
// policy ever admits more than its budget.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "store_scripts.hpp"

namespace pairguard {

struct GuardPart {
    uint16_t slot = 0;
    GuardOp op;                  // this part's keys, in the request's order
    std::vector<size_t> index;   // each key's index in the whole operation
};

// The slot of every key of `op`; false when `op` is not well formed.
bool guard_op_slots(const GuardOp& op, std::vector<uint16_t>& slots);

// One part per slot, in order of first appearance. A reserve split in
// several parts becomes 'R' parts reserving `reservation` (the caller's
// clock + the hold); a settle keeps its outcome and reservation. An
// operation in one slot comes back as one part, unchanged.
std::vector<GuardPart> split_guard_op(const GuardOp& op, int64_t reservation);

// The parts' replies (nullptr: that part failed) merged into the reply of
// the whole reserve, in guard_batch's shape; `ok` false when a part failed.
// `release`: the parts that reserved although the whole is refused (or
// failed), as neutral settles to send.
std::vector<int64_t> merge_guard_reserve(const std::vector<GuardPart>& parts,
                                         const std::vector<const std::vector<int64_t>*>& replies,
                                         int64_t reservation, bool& ok, std::vector<GuardOp>& release);

// A split settle's replies: the keys that locked, with their whole-operation
// indexes. `ok` false when a part failed.
std::vector<int64_t> merge_guard_settle(const std::vector<GuardPart>& parts,
                                        const std::vector<const std::vector<int64_t>*>& replies, bool& ok);

}  // namespace pairguard
