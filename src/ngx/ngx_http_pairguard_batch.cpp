// The guard's batch layer: every reserve and settle a worker produces in one
// event-loop iteration goes to Redis as one guard_batch.lua call (one write,
// one reply), walked in order so that the answers are those of separate
// calls. It sits above the Redis connection: what an iteration made is sent
// at the end of that iteration, never delayed. On a single Redis, an
// iteration that made up to four reserves, each of a key pinned to its
// client that no other operation names, sends them as SET NX instead (the
// script-free reserve), before the script call of the rest if any.

#include <algorithm>
#include <cstdlib>
#include <map>
#include <type_traits>
#include <stdexcept>

#include "../core/guard_cluster.hpp"
#include "../core/pairing.hpp"
#include "ngx_http_pairguard.h"

namespace {
void release_reservation(const pairguard::GuardOp& op, pairguard::IntList reply) noexcept;
}

// Runs the callback once (none once cancelled or run).
void ngx_http_pairguard_batch_op_t::finish(bool ok, pairguard::IntList reply) noexcept {
    try {
        if (done) {
            auto fn = std::move(done);
            done = nullptr;
            fn(ok, reply);
        } else if (settle_done != nullptr) {
            auto fn = settle_done;
            settle_done = nullptr;
            fn(keys, zone, ok, reply);
        } else if (cancelled && ok && !op.settle) {
            release_reservation(op, reply);
        }
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0, "pairguard: %s", e.what());
    }
}

namespace {

// Operations come and go with every request: they are kept on a per-worker
// free list instead of going back to malloc, each with its buffer's
// capacity (its GuardOp's text), and shared_ptr's counts likewise
// (ngx_http_pairguard_blocks). Single-threaded (the worker's loop).
constexpr bool kRecycle = ngx_http_pairguard_recycle;
constexpr size_t kSpareMax = 4096;
constexpr size_t kSpareBufferMax = 1024;  // a larger buffer is given back

template <class T>
struct op_allocator {
    using value_type = T;
    using blocks = ngx_http_pairguard_blocks<T, kSpareMax>;
    op_allocator() = default;
    template <class U>
    op_allocator(const op_allocator<U>&) noexcept {}  // NOLINT: rebinding
    T* allocate(size_t n) {
        if (n == 1) {
            return static_cast<T*>(blocks::take());
        }
        return static_cast<T*>(::operator new(n * sizeof(T)));
    }
    void deallocate(T* p, size_t n) noexcept {
        if (n == 1) {
            blocks::give_back(p);
        } else {
            ::operator delete(p);
        }
    }
    template <class U>
    bool operator==(const op_allocator<U>&) const noexcept { return true; }
    template <class U>
    bool operator!=(const op_allocator<U>&) const noexcept { return false; }
};

// Objects handed out in a shared_ptr and taken back when their last owner
// lets go: up to `Max` wait on a per-worker free list (never destroyed, as
// above), made ready for their next owner by `Reset`, which says whether
// the object is worth keeping.
template <class T, size_t Max, bool (*Reset)(T&) noexcept>
struct free_list {
    static std::vector<T*>& spare() {
        static auto* objects = new std::vector<T*>;
        return *objects;
    }
    static void give_back(T* o) noexcept {
        auto& list = spare();
        if (kRecycle && list.size() < Max) {
            try {
                if (list.size() == list.capacity()) {
                    list.reserve(std::min(Max, std::max<size_t>(64, 2 * list.capacity())));
                }
            } catch (const std::exception&) {
                delete o;
                return;
            }
            if (Reset(*o)) {
                list.push_back(o);  // reserved above: does not throw
                return;
            }
        }
        delete o;
    }
    static std::shared_ptr<T> take() {
        T* raw;
        if (kRecycle && !spare().empty()) {
            raw = spare().back();
            spare().pop_back();
        } else {
            raw = new T();
        }
        // on failure shared_ptr hands `raw` to give_back
        return std::shared_ptr<T>(raw, give_back, op_allocator<T>());
    }
};

// An operation no longer owned is destroyed and made again in place,
// keeping only its buffer (cleared), so that nothing of one request's
// operation reaches the next.
static_assert(std::is_nothrow_default_constructible_v<ngx_http_pairguard_batch_op_t>);
bool reset_op(ngx_http_pairguard_batch_op_t& o) noexcept {
    std::string buffer;
    if (o.op.data.capacity() <= kSpareBufferMax) {
        buffer = std::move(o.op.data);
        buffer.clear();
    }
    o.~ngx_http_pairguard_batch_op_t();
    new (&o) ngx_http_pairguard_batch_op_t();  // nothing here allocates
    o.op.data = std::move(buffer);
    return true;
}
using op_free_list = free_list<ngx_http_pairguard_batch_op_t, kSpareMax, reset_op>;

using op_ptr = std::shared_ptr<ngx_http_pairguard_batch_op_t>;

struct batcher_t {
    std::vector<op_ptr> queue;
    int64_t clock_offset_ms = 0;  // Redis' clock minus this node's (cluster splits)
    // Redis' clock as the script last told it (an allowed reserve answers
    // Redis' now + hold): its time then, and this worker's monotonic clock,
    // wall clock and Redis connection when the answer was read. The
    // script-free reserve extrapolates it on the monotonic clock only while
    // it is fresh, on the same connection, and while the wall clock kept
    // pace (a host that slept, or a wall clock that stepped, sends the
    // next reserve to the script).
    int64_t redis_ms_learned = 0;
    ngx_msec_t clock_learned = 0;
    int64_t wall_learned = 0;
    uint64_t clock_epoch = 0;
    bool clock_known = false;
    ngx_event_t ev;
    bool ready = false;
};

batcher_t batcher;  // per worker

const pairguard::IntList kNone(nullptr, 0);

// Releases what an allowed reserve took (`reply`), as a neutral settle
// queued now. A reserve whose request went away while it was in flight (a
// client that hung up, an HTTP/2 stream reset) never reached the upstream:
// released at once instead of holding the keys' budget for the whole hold
// (a client resetting streams would keep a key busy without a single
// failure counted). A script-free reservation answered late is released
// too (on_fresh_reserve).
void release_reservation(const pairguard::GuardOp& op, pairguard::IntList reply) noexcept {
    try {
        pairguard::ReserveReply rr = pairguard::decode_reserve(reply, op.nkeys);
        if (!rr.valid || rr.status != pairguard::ReserveStatus::allowed || rr.reservation == 0) {
            return;  // refused: nothing was reserved
        }
        ngx_http_pairguard_batch_submit(
            pairguard::make_guard_settle(op.keys(), op.nkeys, pairguard::Outcome::neutral, rr.reservation, op.limits()),
            nullptr);
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0, "pairguard: %s", e.what());
    }
}

// This node's wall clock in ms (nginx's cached time, updated with
// ngx_current_msec).
int64_t wall_ms() {
    ngx_time_t* tp = ngx_timeofday();
    return static_cast<int64_t>(tp->sec) * 1000 + static_cast<int64_t>(tp->msec);
}

// Redis' clock, from a reserve the script allowed: its reservation is
// Redis' now + hold when the script ran, which was after the batch was
// sent. Taken as Redis' time at the sending, what is extrapolated from it
// runs ahead of Redis' clock (by the round trip, and by however long the
// worker or Redis took before the reply was read), never behind: a
// script-free reservation ends later than the script's would, never
// earlier.
void learn_clock(const ngx_http_pairguard_batch_op_t& o, pairguard::IntList reply) {
    const pairguard::GuardOp& op = o.op;
    ngx_pairguard_redis_t* store = ngx_http_pairguard_store();
    if (store != nullptr && !op.settle && op.nhead == 2 && reply.size() >= 4 && reply[0] == 0 && reply[3] > 0) {
        batcher.redis_ms_learned = reply[3] - pairguard::kReservationHoldMs;
        batcher.clock_learned = o.sent_ms;
        batcher.wall_learned = o.sent_wall_ms;
        batcher.clock_epoch = store->connection_epoch();
        batcher.clock_known = true;
    }
}

// A Redis clock learned within the last second on the connection in use,
// the wall clock having moved with the monotonic one since (within 100 ms).
constexpr ngx_msec_t kClockFreshMs = 1000;
constexpr int64_t kClockAgreeMs = 100;
bool clock_fresh(const ngx_pairguard_redis_t* store) {
    if (!batcher.clock_known || store->connection_epoch() != batcher.clock_epoch) {
        return false;
    }
    ngx_msec_t mono = ngx_current_msec - batcher.clock_learned;
    int64_t wall = wall_ms() - batcher.wall_learned;
    return mono < kClockFreshMs && wall >= 0 && std::abs(wall - static_cast<int64_t>(mono)) <= kClockAgreeMs;
}

// Redis' now, extrapolated on this worker's monotonic clock from what the
// script last told.
int64_t redis_now_estimate() {
    return batcher.redis_ms_learned + static_cast<int64_t>(ngx_current_msec - batcher.clock_learned);
}

// Added to the script-free reservation, so that it does not end earlier
// than the script's would (later only keeps an unsettled attempt counted a
// moment longer): the estimate runs ahead of Redis' clock (learn_clock),
// but Redis may run the SET later than it was made. A SET answered more
// than kFreshReserveLateMs after it was made may have run later than the
// margin covers: its reservation is released and the reserve goes to the
// script. Measured from the cached time the SET was made on (up to an
// iteration or a timer_resolution tick old) to the clock when it is
// answered, the lateness also covers an estimate made on a stale cached
// time.
constexpr int64_t kFreshReserveMarginMs = 1000;
constexpr ngx_msec_t kFreshReserveLateMs = 500;

void fail_all(std::vector<op_ptr>& ops) noexcept {
    for (auto& o : ops) {
        o->finish(false, kNone);
    }
}

// The decoded replies' buffers, kept for the next batch (taken while in
// use: a nested reply would start with empty ones).
struct reply_buffers_t {
    std::vector<int64_t> values;
    std::vector<size_t> bounds;
};
reply_buffers_t spare_reply_buffers;

void on_reply(const std::vector<op_ptr>& ops, ngx_pairguard_redis_result_e res, const pairguard::Reply& reply) noexcept {
    reply_buffers_t buffers = std::move(spare_reply_buffers);
    std::vector<int64_t>& values = buffers.values;
    std::vector<size_t>& bounds = buffers.bounds;
    bool ok = false;
    try {
        ok = res == ngx_pairguard_redis_result_e::ok
             && pairguard::decode_guard_batch(reply, ops.size(), values, bounds);
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0, "pairguard: %s", e.what());
    }
    if (!ok) {
        batcher.clock_known = false;
    }
    for (size_t i = 0; i < ops.size(); i++) {
        if (!ok) {
            ops[i]->finish(false, kNone);
            continue;
        }
        pairguard::IntList reply_i(values.data() + bounds[i], bounds[i + 1] - bounds[i]);
        learn_clock(*ops[i], reply_i);
        ops[i]->finish(true, reply_i);  // nothing when its request went away
    }
    spare_reply_buffers = std::move(buffers);
}

// The script-free reserve (core: make_guard_fresh_reserve): a reserve of
// one key pinned to its client that no other operation of its batch names,
// in a batch of at most kFreshReservesMax reserves (send_apart below), on
// a single Redis (not a cluster), while Redis' clock
// is known. Its answer: on_fresh_reserve. A reserve sent to the script is
// marked, so that it is not sent this way twice.
const pairguard::StoreScript& fresh_reserve_name() {
    static const pairguard::StoreScript name{"SET", "", ""};
    return name;
}

// At most this many reserves in a batch go without the script: more make
// one script call cheaper than their SETs.
constexpr size_t kFreshReservesMax = 4;

void enqueue(const op_ptr& o);

// A SET's answer. Taken in time: allowed, as the script would have
// answered. Taken late: its reservation is released, then the script
// decides (one batch, in that order). Not taken (the key exists, an
// error): the script decides. Redis down or the command timed out: failed,
// as a script call would have.
void on_fresh_reserve(const op_ptr& o, int64_t reservation, ngx_pairguard_redis_result_e res,
                      const pairguard::Reply& reply) noexcept {
    if (res != ngx_pairguard_redis_result_e::ok && res != ngx_pairguard_redis_result_e::error) {
        batcher.clock_known = false;
        o->finish(false, kNone);
        return;
    }
    if (res == ngx_pairguard_redis_result_e::ok && pairguard::fresh_reserve_taken(reply)) {
        auto answer = pairguard::fresh_reserve_answer(reservation);
        pairguard::IntList taken(answer.data(), answer.size());
        // the clock now: the iteration's cached time may be a long
        // iteration, or a timer_resolution tick, behind (the SET was made
        // on a cached time too, so the lateness measured covers both)
        ngx_time_update();
        if (ngx_current_msec - o->sent_ms <= kFreshReserveLateMs || o->cancelled) {
            o->finish(true, taken);  // a request gone: released there, late or not
            return;
        }
        release_reservation(o->op, taken);
    }
    try {
        enqueue(o);
    } catch (const std::exception&) {
        o->finish(false, kNone);
    }
}

// Each reserve's `done` runs once whatever happens to the others: one that
// cannot be sent (out of memory) fails alone, the SETs already sent stand.
void fresh_reserve(ngx_pairguard_redis_t* store, const op_ptr& o) noexcept {
    o->fresh_tried = true;
    o->sent_ms = ngx_current_msec;
    try {
        int64_t reservation = redis_now_estimate() + pairguard::kReservationHoldMs + kFreshReserveMarginMs;
        pairguard::RespArgs call =
            pairguard::make_guard_fresh_reserve(o->op, reservation, pairguard::kReservationHoldMs);
        ngx_pairguard_redis_command_t* cmd = store->command(
            fresh_reserve_name(), std::move(call),
            [o, reservation](ngx_pairguard_redis_result_e res, const pairguard::Reply& reply) {
                on_fresh_reserve(o, reservation, res, reply);
            });
        if (cmd == nullptr) {
            o->finish(false, kNone);
        }
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0, "pairguard: %s", e.what());
        o->finish(false, kNone);
    }
}

// Redis Cluster: each operation split by slot (core/guard_cluster), one
// batch per slot sent to that slot's master, the parts' replies merged back
// when every batch has answered. A reserve refused by one slot releases what
// the other slots reserved.
struct cluster_flush_t {
    std::vector<op_ptr> ops;
    int64_t edge_ms = 0;  // this node's clock when sent
    std::vector<std::vector<pairguard::GuardPart>> parts;          // per operation
    std::vector<std::vector<std::vector<int64_t>>> results;        // per operation, per part
    std::vector<std::vector<char>> answered;                       // per operation, per part
    size_t outstanding = 0;
    int64_t reservation = 0;
};

void cluster_done(cluster_flush_t& f) noexcept {
    for (size_t i = 0; i < f.ops.size(); i++) {
        std::vector<int64_t> merged;
        bool ok = true;
        try {
            if (i >= f.parts.size()) {
                throw std::runtime_error("cluster batch: operation not split");
            }
            const auto& parts = f.parts[i];
            std::vector<const std::vector<int64_t>*> replies;
            for (size_t k = 0; k < parts.size(); k++) {
                replies.push_back(f.answered[i][k] ? &f.results[i][k] : nullptr);
            }
            if (parts.empty()) {
                ok = false;  // not a well-formed operation
            } else if (parts.size() == 1) {
                ok = replies[0] != nullptr;
                if (ok) {
                    merged = *replies[0];
                    // an allowed reserve answers Redis' now + hold: how far
                    // this node's clock is from Redis', for the next split
                    if (!f.ops[i]->op.settle && merged.size() >= 4 && merged[0] == 0 && merged[3] > 0) {
                        batcher.clock_offset_ms = merged[3] - pairguard::kReservationHoldMs - f.edge_ms;
                    }
                }
            } else if (f.ops[i]->op.settle) {
                merged = pairguard::merge_guard_settle(parts, replies, ok);
            } else {
                std::vector<pairguard::GuardOp> release;
                merged = pairguard::merge_guard_reserve(parts, replies, f.reservation, ok, release);
                for (auto& rel : release) {
                    ngx_http_pairguard_batch_submit(std::move(rel), nullptr);
                }
            }
        } catch (const std::exception& e) {
            ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0, "pairguard: %s", e.what());
            ok = false;
        }
        f.ops[i]->finish(ok, ok ? pairguard::IntList(merged) : kNone);  // nothing when its request went away
    }
}

// Every operation's `done` runs exactly once, also when something here throws
// (out of memory): what was not sent counts as failed.
void cluster_flush(ngx_pairguard_redis_t* store, std::vector<op_ptr>& queue) noexcept {
    std::shared_ptr<cluster_flush_t> f;
    try {
        f = std::make_shared<cluster_flush_t>();
    } catch (const std::exception&) {
        fail_all(queue);
        queue.clear();
        return;
    }
    f->ops.swap(queue);
    f->outstanding = 1;  // this function, so nothing ends inside it
    try {
    // a request split over slots reserves one value on every slot: this
    // node's clock plus the hold (a reservation only expires by it)
    f->edge_ms = wall_ms();
    f->reservation = f->edge_ms + batcher.clock_offset_ms + pairguard::kReservationHoldMs;
    std::map<uint16_t, std::vector<std::pair<size_t, size_t>>> groups;  // slot -> (op, part)
    for (size_t i = 0; i < f->ops.size(); i++) {
        f->parts.push_back(pairguard::split_guard_op(f->ops[i]->op, f->reservation));
        f->results.emplace_back(f->parts.back().size());
        f->answered.emplace_back(f->parts.back().size(), 0);
        for (size_t k = 0; k < f->parts.back().size(); k++) {
            groups[f->parts.back()[k].slot].emplace_back(i, k);
        }
    }
    for (auto& [slot, members] : groups) {
        std::vector<const pairguard::GuardOp*> list;
        for (auto [i, k] : members) {
            list.push_back(&f->parts[i][k].op);
        }
        pairguard::RespArgs call = pairguard::make_guard_batch(list.data(), list.size(), pairguard::kReservationHoldMs);
        auto m = std::make_shared<std::vector<std::pair<size_t, size_t>>>(std::move(members));
        f->outstanding++;
        ngx_pairguard_redis_command_t* cmd = store->eval(
            pairguard::guard_batch_script(), std::move(call),
            [f, m](ngx_pairguard_redis_result_e res, const pairguard::Reply& reply) {
                std::vector<int64_t> values;
                std::vector<size_t> bounds;
                bool ok = false;
                try {
                    ok = res == ngx_pairguard_redis_result_e::ok
                         && pairguard::decode_guard_batch(reply, m->size(), values, bounds);
                    if (ok) {
                        for (size_t j = 0; j < m->size(); j++) {
                            auto [i, k] = (*m)[j];
                            f->results[i][k].assign(values.begin() + static_cast<std::ptrdiff_t>(bounds[j]),
                                                    values.begin() + static_cast<std::ptrdiff_t>(bounds[j + 1]));
                            f->answered[i][k] = 1;
                        }
                    }
                } catch (const std::exception& e) {
                    ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0, "pairguard: %s", e.what());
                }
                if (--f->outstanding == 0) {
                    cluster_done(*f);
                }
            });
        if (cmd == nullptr) {
            f->outstanding--;  // that slot's master is down: its parts failed
        }
    }
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0, "pairguard: %s", e.what());
    }
    if (--f->outstanding == 0) {
        cluster_done(*f);
    }
}

// Out of memory: every queued operation fails. Taken out first: a callback
// may queue new operations.
void fail_queue() noexcept {
    std::vector<op_ptr> queued;
    queued.swap(batcher.queue);
    fail_all(queued);
}

// A batch's list of operations, recycled like the operations: emptied
// (every operation let go) but with its capacity.
bool reset_ops_list(std::vector<op_ptr>& l) noexcept {
    l.clear();
    return l.capacity() <= kSpareMax;
}
using ops_list_free_list = free_list<std::vector<op_ptr>, 64, reset_ops_list>;

// The script call of a batch: every operation's reply, in order (failed,
// all of them, when it cannot be sent).
void send_batch(ngx_pairguard_redis_t* store, const std::shared_ptr<std::vector<op_ptr>>& ops) noexcept {
    try {
        pairguard::SmallVec<const pairguard::GuardOp*, 64> list;  // no allocation for most batches
        int64_t wall = wall_ms();
        for (const auto& o : *ops) {
            list.push_back(&o->op);
            o->sent_ms = ngx_current_msec;
            o->sent_wall_ms = wall;
        }
        pairguard::RespArgs call =
            pairguard::make_guard_batch(list.data(), list.size(), pairguard::kReservationHoldMs);
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0, "pairguard: batch of %uz operations", list.size());
        ngx_pairguard_redis_command_t* cmd = store->eval(
            pairguard::guard_batch_script(), std::move(call),
            [ops](ngx_pairguard_redis_result_e res, const pairguard::Reply& reply) { on_reply(*ops, res, reply); });
        if (cmd == nullptr) {
            fail_all(*ops);
        }
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0, "pairguard: %s", e.what());
        fail_all(*ops);
    }
}

// A batch of up to kFreshReservesMax reserves (and any settles): those of
// its reserves that may go without the script (core: fresh_reserve_apart:
// eligible, and their key named by no other operation of the batch, so that
// the order does not change an answer; not one that already tried or whose
// request went away) are sent first as SETs, the rest, if any, as the
// script call after them on the same connection. Not on a cluster, nor
// unless Redis' clock is known. A request's reserve then waits for its SET
// alone, not for a script walking the others' settles (at low concurrency a
// reserve and another request's settle often share an iteration), and the
// script left is often settles alone, which guard_batch.lua answers before
// its definitions. False (nothing sent) when no reserve goes apart.
bool send_apart(ngx_pairguard_redis_t* store, const std::shared_ptr<std::vector<op_ptr>>& ops) noexcept {
    const std::vector<op_ptr>& all = *ops;
    constexpr size_t kMaxOps = 64;  // the lists below are on the stack
    if (store->cluster() || !clock_fresh(store) || all.size() > kMaxOps) {
        return false;
    }
    pairguard::SmallVec<const pairguard::GuardOp*, kMaxOps> list;
    bool apart[kMaxOps] = {};
    size_t reserves = 0, n_apart = 0;
    for (const auto& o : all) {
        list.push_back(&o->op);
        reserves += o->op.settle ? 0 : 1;
    }
    if (reserves == 0 || reserves > kFreshReservesMax) {
        return false;
    }
    for (size_t i = 0; i < all.size(); i++) {
        const auto& o = all[i];
        bool a = !o->op.settle && !o->fresh_tried && !o->cancelled
                 && pairguard::fresh_reserve_apart(list.data(), list.size(), i);
        apart[i] = a;
        n_apart += a ? 1 : 0;
    }
    if (n_apart == 0) {
        return false;
    }
    if (n_apart == all.size()) {
        // reserves only, each apart (core fresh_reserves' case): no script
        // call, and no list taken for one
        for (const auto& o : all) {
            fresh_reserve(store, o);
        }
        return true;
    }
    std::shared_ptr<std::vector<op_ptr>> rest;
    try {
        rest = ops_list_free_list::take();
        rest->reserve(all.size() - n_apart);
    } catch (const std::exception&) {
        return false;  // the whole batch goes to the script
    }
    for (size_t i = 0; i < all.size(); i++) {
        if (apart[i]) {
            fresh_reserve(store, all[i]);  // its `done` runs once, whatever happens
        } else {
            rest->push_back(all[i]);  // reserved: does not throw
        }
    }
    if (!rest->empty()) {
        send_batch(store, rest);
    }
    return true;
}

// A batch: failed when Redis is not there; split by slot on a cluster;
// else the reserves that may go apart as SETs (send_apart), then one
// script call for the rest.
void send(const std::shared_ptr<std::vector<op_ptr>>& ops) noexcept {
    ngx_pairguard_redis_t* store = ngx_http_pairguard_store();
    if (store == nullptr || !store->accepting()) {
        fail_all(*ops);
        return;
    }
    if (store->cluster()) {
        cluster_flush(store, *ops);
        return;
    }
    if (send_apart(store, ops)) {
        return;
    }
    send_batch(store, ops);
}

// Sends what the queue holds.
void flush(ngx_event_t*) noexcept {
    if (batcher.queue.empty()) {
        return;
    }
    // every operation's `done` runs once, whatever happens here: a reserve
    // that never heard back would leave its request without a timer
    std::shared_ptr<std::vector<op_ptr>> ops;
    try {
        ops = ops_list_free_list::take();
        // moved out, so that the queue keeps its capacity for the next round;
        // a reserve whose request went away before it was sent is dropped
        ops->reserve(batcher.queue.size());
    } catch (const std::exception&) {
        fail_queue();
        return;
    }
    for (auto& o : batcher.queue) {
        if (!(o->cancelled && !o->op.settle)) {
            ops->push_back(std::move(o));  // reserved: does not throw
        }
    }
    batcher.queue.clear();
    if (!ops->empty()) {
        send(ops);
    }
}

}  // namespace

namespace {

op_ptr make_op() {
    return op_free_list::take();
}

// Queued whole (callback and all) or not at all.
void enqueue(const op_ptr& o) {
    if (!batcher.ready) {
        ngx_memzero(&batcher.ev, sizeof(batcher.ev));
        batcher.ev.handler = flush;
        batcher.ev.log = ngx_cycle->log;
        batcher.ev.data = &batcher;
        batcher.ready = true;
    }
    batcher.queue.push_back(o);
    if (!batcher.ev.posted) {
        ngx_post_event(&batcher.ev, &ngx_posted_events);
    }
}

}  // namespace

ngx_http_pairguard_batch_ptr ngx_http_pairguard_batch_new() {
    return make_op();
}

void ngx_http_pairguard_batch_submit(const ngx_http_pairguard_batch_ptr& o, ngx_http_pairguard_batch_fn done) {
    o->done = std::move(done);
    enqueue(o);
}

ngx_http_pairguard_batch_ptr ngx_http_pairguard_batch_submit(pairguard::GuardOp op, ngx_http_pairguard_batch_fn done) {
    op_ptr o = make_op();
    o->op = std::move(op);
    ngx_http_pairguard_batch_submit(o, std::move(done));
    return o;
}

void ngx_http_pairguard_batch_settle(const ngx_http_pairguard_batch_ptr& o, const ngx_http_pairguard_keys_t& keys,
                                     ngx_shm_zone_t* zone, ngx_http_pairguard_settle_fn done) {
    o->keys = keys;
    o->zone = zone;
    o->settle_done = done;
    enqueue(o);
}

void ngx_http_pairguard_batch_cancel(ngx_http_pairguard_batch_op_t* op) noexcept {
    if (op != nullptr) {
        op->done = nullptr;
        op->cancelled = true;
    }
}

void ngx_http_pairguard_batch_exit() noexcept {
    if (batcher.ready && batcher.ev.posted) {
        ngx_delete_posted_event(&batcher.ev);
    }
    batcher.queue.clear();
}
