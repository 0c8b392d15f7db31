// The Redis scripts (src/lua, embedded at build time) and how to call them:
// argument lists and reply decoding, shared by the module and the CLI.
#pragma once

#include <array>

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

// A guard operation's answer: a view of integers (a batch's reply is decoded
// once into one array, and each operation reads its part of it).
class IntList {
public:
    IntList(const int64_t* data, size_t size) : data_(data), size_(size) {}
    IntList(const std::vector<int64_t>& v) : data_(v.data()), size_(v.size()) {}  // NOLINT: a view of it
    IntList(std::vector<int64_t>&&) = delete;  // a view of a temporary would dangle
    size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    int64_t operator[](size_t i) const { return data_[i]; }
    const int64_t* begin() const { return data_; }
    const int64_t* end() const { return data_ + size_; }

private:
    const int64_t* data_;
    size_t size_;
};

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

ReserveReply decode_reserve(IntList reply, size_t nkeys);
bool decode_settle(IntList reply, size_t nkeys, std::vector<LockStart>& out);

// One guard operation for guard_batch.lua, its RESP written up front: the
// keys (encoded once per request) and the operation's arguments with each
// key's five limits (encoded once per policy at configuration time).
// Keys and arguments share one buffer (one allocation per operation).
struct GuardOp {
    bool settle = false;
    // The key is the client's address (key_pinned_to_client: the address,
    // or its network with $pairguard_client_net), set by the caller after
    // make_guard_reserve. Only such a reserve may take the script-free
    // path: a key with history costs it a second round trip, which would
    // tell a stranger that another's key (an account, a code) has recent
    // failures or an attempt in flight. A pinned key is shared only by the
    // clients behind that address or network (a NAT, a /64), who already
    // share its budget and its 429s (docs/DESIGN.md).
    bool own_key = false;
    size_t nkeys = 0;
    size_t nargs = 0;  // the arguments: the head's, then 5 * nkeys limits
    size_t nhead = 0;  // 'r', nkeys | 'R', nkeys, reservation | 's', nkeys, outcome, reservation
    std::string data;  // the keys (nkeys RESP bulk strings), then the arguments
    size_t keys_len = 0;
    size_t head_len = 0;

    // nkeys RESP bulk strings
    std::string_view keys() const { return std::string_view(data).substr(0, keys_len); }
    // the head, then the limits (five per key)
    std::string_view args() const { return std::string_view(data).substr(keys_len); }
    std::string_view head() const { return std::string_view(data).substr(keys_len, head_len); }
    std::string_view limits() const { return std::string_view(data).substr(keys_len + head_len); }
    // k, h and l may be views of this operation's own data; nargs and nhead
    // are the caller's to set
    void set(std::string_view k, std::string_view h, std::string_view l) {
        std::string d;
        d.reserve(k.size() + h.size() + l.size());
        d.append(k).append(h).append(l);
        data.swap(d);
        keys_len = k.size();
        head_len = h.size();
    }
};

// `keys`: the store keys as RESP bulk strings; `limits`: 5 * nkeys RESP
// bulk strings (append_limits, per key in the same order).
GuardOp make_guard_reserve(std::string_view keys, size_t nkeys, std::string_view limits);
GuardOp make_guard_settle(std::string_view keys, size_t nkeys, Outcome outcome, int64_t reservation,
                          std::string_view limits);
// The same into `op`, whose buffer is reused (the module's operations are
// recycled with their capacity). `keys` and `limits` must not be views of
// `op` itself.
void make_guard_reserve(GuardOp& op, std::string_view keys, size_t nkeys, std::string_view limits);
void make_guard_settle(GuardOp& op, std::string_view keys, size_t nkeys, Outcome outcome, int64_t reservation,
                       std::string_view limits);

// One guard call on its own, for the CLI and tests (the module batches):
// keys and one limits entry per key.
StoreCall make_guard_reserve_call(const std::vector<std::string>& keys, const std::vector<PolicyLimits>& limits);
StoreCall make_guard_settle_call(const std::vector<std::string>& keys, const std::vector<PolicyLimits>& limits,
                                 Outcome outcome, int64_t reservation);

// EVALSHA guard_batch numkeys KEYS... hold nsets sets... ops...: the
// operations in order, each distinct limits list sent once (a set: its
// argument count, then the limits) and each operation as its head and the
// 1-based number of its set.
RespArgs make_guard_batch(const GuardOp* const* ops, size_t n, int64_t hold_ms);

// The batch's reply: one bulk string holding every operation's integers in
// order, the operations separated by ',' and an operation's integers by ' '
// (one string costs the client one allocation, where nested arrays cost one
// per integer). Decoded into `values`, operation i being values[bounds[i]]
// up to values[bounds[i + 1]]; false when the reply is not exactly that shape
// for `nops` operations. Each operation's list decodes with decode_reserve or
// decode_settle.
bool decode_guard_batch(const Reply& reply, size_t nops, std::vector<int64_t>& values, std::vector<size_t>& bounds);

// A reserve of one key sent alone (low concurrency: a request whose
// iteration of the event loop made no other operation) needs no script when
// the key holds nothing: SET KEY "|||T|" NX PX hold writes exactly what
// guard_batch.lua's fast path writes for such a key (a value holding only
// the reservation T, decimal, until the reservation's end), and only if the
// key is absent, so the answer is the script's: allowed, reservation T. T is
// Redis' now + hold as this node knows Redis' clock (learned from the
// script's answers); the key's own expiry is Redis'. Any other reply (the
// key exists: history, a lock, attempts in flight) sends the operation to
// the script, which decides on what the key holds.
bool fresh_reserve_eligible(const GuardOp& op);  // a reserve of one key
// How many reserves of a batch (`ops`, in order) may go that way: all of
// them (1 to `max`), or none (0). Each must be eligible and name a key that
// no other operation of the batch names (the script would have walked them
// in order; SETs sent apart from the rest would not be). A key is looked
// for as its RESP text inside the others' keys: a match within a longer key
// only sends the batch to the script. (The batch layer asks
// fresh_reserve_apart below of each operation; a batch of which every
// operation goes apart is this case.)
size_t fresh_reserves(const GuardOp* const* ops, size_t n, size_t max);
// Whether operation i of a batch may go that way on its own, sent before
// the rest of its batch: an eligible reserve whose key no other operation
// of the batch names (operations on distinct keys give the same answers in
// either order), looked for as fresh_reserves does.
bool fresh_reserve_apart(const GuardOp* const* ops, size_t n, size_t i);
RespArgs make_guard_fresh_reserve(const GuardOp& op, int64_t reservation, int64_t hold_ms);
// True when the SET wrote the key (status OK); the operation's answer is
// then fresh_reserve_answer(reservation).
bool fresh_reserve_taken(const Reply& reply);
std::array<int64_t, 4> fresh_reserve_answer(int64_t reservation);

// Seconds for Retry-After: rounded up, at least 1.
int64_t retry_after_seconds(int64_t retry_ms);

}  // namespace pairguard
