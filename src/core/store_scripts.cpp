#include "store_scripts.hpp"

#include <array>
#include <charconv>

#include <openssl/evp.h>

#include "pairguard_lua.h"
#include "pairing.hpp"
#include "small_vec.hpp"

namespace pairguard {


const StoreScript& guard_reserve_script() {
    static const StoreScript s = make_store_script("guard_reserve", pairguard_lua_guard_reserve);
    return s;
}

const StoreScript& guard_settle_script() {
    static const StoreScript s = make_store_script("guard_settle", pairguard_lua_guard_settle);
    return s;
}

const StoreScript& guard_batch_script() {
    static const StoreScript s = make_store_script("guard_batch", pairguard_lua_guard_batch);
    return s;
}

const StoreScript& guard_inspect_script() {
    static const StoreScript s = make_store_script("guard_inspect", pairguard_lua_guard_inspect);
    return s;
}

const StoreScript& pairing_script(PairingOp op) {
    static const StoreScript scripts[] = {
        make_store_script("pair_request", pairguard_lua_pair_request),
        make_store_script("pair_approve", pairguard_lua_pair_approve),
        make_store_script("pair_pending", pairguard_lua_pair_pending),
        make_store_script("pair_clear", pairguard_lua_pair_clear),
        make_store_script("pair_approved", pairguard_lua_pair_approved),
        make_store_script("pair_revoke", pairguard_lua_pair_revoke),
        make_store_script("pair_check", pairguard_lua_pair_check),
        make_store_script("pair_register", pairguard_lua_pair_register),
        make_store_script("pair_platforms", pairguard_lua_pair_platforms),
        make_store_script("pair_lock_status", pairguard_lua_pair_lock_status),
        make_store_script("store_unlock", pairguard_lua_store_unlock),
    };
    static_assert(sizeof(scripts) / sizeof(scripts[0]) == static_cast<size_t>(PairingOp::unlock) + 1,
                  "one script per PairingOp");
    return scripts[static_cast<size_t>(op)];
}

const std::vector<const StoreScript*>& pairing_scripts() {
    static const std::vector<const StoreScript*> all = [] {
        std::vector<const StoreScript*> v;
        for (size_t i = 0; i <= static_cast<size_t>(PairingOp::unlock); i++) {
            v.push_back(&pairing_script(static_cast<PairingOp>(i)));
        }
        return v;
    }();
    return all;
}

void append_limits(std::vector<std::string>& argv, const PolicyLimits& limits) {
    argv.push_back(std::to_string(limits.max_failures));
    argv.push_back(std::to_string(limits.window_ms));
    argv.push_back(std::to_string(limits.lockout_ms));
    argv.push_back(std::to_string(limits.backoff_milli));
    argv.push_back(std::to_string(limits.max_lockout_ms));
}

void append_limits(RespArgs& args, const PolicyLimits& limits) {
    args.add(limits.max_failures);
    args.add(limits.window_ms);
    args.add(limits.lockout_ms);
    args.add(limits.backoff_milli);
    args.add(limits.max_lockout_ms);
}

ReserveReply decode_reserve(IntList reply, size_t nkeys) {
    ReserveReply r;
    if (reply.size() < 4 || reply[0] < 0 || reply[0] > 2) {
        return r;
    }
    r.status = static_cast<ReserveStatus>(reply[0]);
    if (r.status != ReserveStatus::allowed) {
        if (reply[1] < 1 || static_cast<size_t>(reply[1]) > nkeys || reply[2] < 0) {
            return r;
        }
        r.policy = static_cast<size_t>(reply[1] - 1);
        r.retry_ms = reply[2];
    } else if (reply[3] <= 0) {
        return r;
    }
    r.reservation = reply[3];
    for (size_t i = 4; i < reply.size(); i++) {
        if (reply[i] < 1 || static_cast<size_t>(reply[i]) > nkeys) {
            return r;
        }
        r.ended.push_back(static_cast<size_t>(reply[i] - 1));
    }
    r.valid = true;
    return r;
}

bool decode_settle(IntList reply, size_t nkeys, std::vector<LockStart>& out) {
    if (reply.size() % 2 != 0) {
        return false;
    }
    for (size_t i = 0; i < reply.size(); i += 2) {
        if (reply[i] < 1 || static_cast<size_t>(reply[i]) > nkeys || reply[i + 1] < 0) {
            return false;
        }
        out.push_back(LockStart{static_cast<size_t>(reply[i] - 1), reply[i + 1]});
    }
    return true;
}

namespace {

// An operation's head: 'r' and the key count; 's', the key count and the
// outcome letter (the reservation follows it). Heads of 1 to 9 keys are
// written once into tables (`reserve_heads()[n]`, `settle_heads()[o][n]`).
constexpr size_t kHeadKeys = 9;
const char kOutcomeLetter[3] = {'f', 's', 'n'};

size_t outcome_index(Outcome o) {
    return o == Outcome::failure ? 0 : o == Outcome::success ? 1 : 2;
}

void add_reserve_head(RespArgs& a, size_t nkeys) {
    a.add_encoded("$1\r\nr\r\n", 1);
    a.add(static_cast<int64_t>(nkeys));
}

void add_settle_head(RespArgs& a, size_t nkeys, size_t outcome) {
    a.add_encoded("$1\r\ns\r\n", 1);
    a.add(static_cast<int64_t>(nkeys));
    a.add(std::string_view(&kOutcomeLetter[outcome], 1));
}

const std::array<std::string, kHeadKeys + 1>& reserve_heads() {
    static const auto heads = [] {
        std::array<std::string, kHeadKeys + 1> h;
        for (size_t n = 1; n <= kHeadKeys; n++) {
            RespArgs a;
            add_reserve_head(a, n);
            h[n] = std::move(a.data);
        }
        return h;
    }();
    return heads;
}

const std::array<std::array<std::string, kHeadKeys + 1>, 3>& settle_heads() {
    static const auto heads = [] {
        std::array<std::array<std::string, kHeadKeys + 1>, 3> h;
        for (size_t o = 0; o < 3; o++) {
            for (size_t n = 1; n <= kHeadKeys; n++) {
                RespArgs a;
                add_settle_head(a, n, o);
                h[o][n] = std::move(a.data);
            }
        }
        return h;
    }();
    return heads;
}

// An operation in one buffer: the keys as they are, its head (`head`, of
// `nhead` arguments, then for a settle the reservation), then the limits.
// `op`'s buffer is reused (its capacity kept).
void fill_guard_op(GuardOp& op, bool settle, std::string_view keys, size_t nkeys, std::string_view head, size_t nhead,
                   const int64_t* reservation, std::string_view limits) {
    op.data.clear();
    {
        RespWriter w(op.data, keys.size() + head.size() + (reservation != nullptr ? 27 : 0) + limits.size());
        w.raw(keys);
        w.raw(head);
        if (reservation != nullptr) {
            w.integer(*reservation);
            nhead++;
        }
        op.head_len = w.size() - keys.size();
        w.raw(limits);
    }
    op.settle = settle;
    op.own_key = false;
    op.nkeys = nkeys;
    op.keys_len = keys.size();
    op.nhead = nhead;
    op.nargs = nhead + 5 * nkeys;
}

}  // namespace

void make_guard_reserve(GuardOp& op, std::string_view keys, size_t nkeys, std::string_view limits) {
    if (nkeys >= 1 && nkeys <= kHeadKeys) {
        fill_guard_op(op, false, keys, nkeys, reserve_heads()[nkeys], 2, nullptr, limits);
        return;
    }
    RespArgs head;
    add_reserve_head(head, nkeys);
    fill_guard_op(op, false, keys, nkeys, head.data, head.count, nullptr, limits);
}

void make_guard_settle(GuardOp& op, std::string_view keys, size_t nkeys, Outcome outcome, int64_t reservation,
                       std::string_view limits) {
    size_t o = outcome_index(outcome);
    if (nkeys >= 1 && nkeys <= kHeadKeys) {
        fill_guard_op(op, true, keys, nkeys, settle_heads()[o][nkeys], 3, &reservation, limits);
        return;
    }
    RespArgs head;
    add_settle_head(head, nkeys, o);
    fill_guard_op(op, true, keys, nkeys, head.data, head.count, &reservation, limits);
}

GuardOp make_guard_reserve(std::string_view keys, size_t nkeys, std::string_view limits) {
    GuardOp op;
    make_guard_reserve(op, keys, nkeys, limits);
    return op;
}

GuardOp make_guard_settle(std::string_view keys, size_t nkeys, Outcome outcome, int64_t reservation,
                          std::string_view limits) {
    GuardOp op;
    make_guard_settle(op, keys, nkeys, outcome, reservation, limits);
    return op;
}

StoreCall make_guard_reserve_call(const std::vector<std::string>& keys, const std::vector<PolicyLimits>& limits) {
    StoreCall c{&guard_reserve_script(), keys, {std::to_string(kReservationHoldMs)}};
    for (const auto& l : limits) {
        append_limits(c.args, l);
    }
    return c;
}

StoreCall make_guard_settle_call(const std::vector<std::string>& keys, const std::vector<PolicyLimits>& limits,
                                 Outcome outcome, int64_t reservation) {
    StoreCall c{&guard_settle_script(),
                keys,
                {outcome == Outcome::failure ? "f" : outcome == Outcome::success ? "s" : "n", std::to_string(reservation)}};
    for (const auto& l : limits) {
        append_limits(c.args, l);
    }
    return c;
}

RespArgs make_guard_batch(const GuardOp* const* ops, size_t n, int64_t hold_ms) {
    // The operations' limits, each distinct list sent once (the operations of
    // one location share theirs): sets[j] its RESP text and argument count,
    // set_of[i] operation i's.
    struct Set {
        std::string_view text;
        size_t count;
    };
    SmallVec<Set, 8> sets;
    SmallVec<size_t, 32> set_of;
    size_t nkeys = 0, nargs = 0, bytes = 0;
    for (size_t i = 0; i < n; i++) {
        const GuardOp& op = *ops[i];
        std::string_view lim = op.limits();
        size_t j = 0;
        while (j < sets.size() && sets[j].text != lim) {
            j++;
        }
        if (j == sets.size()) {
            size_t count = op.nargs > op.nhead ? op.nargs - op.nhead : 0;
            sets.push_back(Set{lim, count});
            nargs += 1 + count;
        }
        set_of.push_back(j + 1);
        nkeys += op.nkeys;
        nargs += op.nhead + 1;
        bytes += op.data.size();
    }
    RespArgs a = resp_evalsha(guard_batch_script().sha1, 1 + nkeys + 2 + nargs);
    size_t count = 0;  // the arguments written (resp_evalsha's head declared them)
    {
        RespWriter w(a.data, bytes + 27 * (3 + 2 * sets.size()) + 8 * n);
        w.integer(static_cast<int64_t>(nkeys));
        count++;
        for (size_t i = 0; i < n; i++) {
            w.raw(ops[i]->keys());
            count += ops[i]->nkeys;
        }
        w.integer(hold_ms);
        w.integer(static_cast<int64_t>(sets.size()));
        count += 2;
        for (const Set& s : sets) {
            w.integer(static_cast<int64_t>(s.count));
            w.raw(s.text);
            count += 1 + s.count;
        }
        for (size_t i = 0; i < n; i++) {
            w.raw(ops[i]->head());
            w.integer(static_cast<int64_t>(set_of[i]));
            count += ops[i]->nhead + 1;
        }
    }
    a.count += count;
    return a;
}

bool decode_guard_batch(const Reply& reply, size_t nops, std::vector<int64_t>& values, std::vector<size_t>& bounds) {
    values.clear();
    bounds.clear();
    if (reply.type != Reply::Type::string || nops == 0) {
        return false;
    }
    values.reserve(nops * 4);
    bounds.reserve(nops + 1);
    bounds.push_back(0);
    const char* p = reply.str.data();
    const char* end = p + reply.str.size();
    bool first_of_op = true;
    while (true) {
        if (p < end && *p != ',') {
            if (!first_of_op) {
                if (*p != ' ') {
                    return false;
                }
                p++;
            }
            int64_t v = 0;
            // decimal, an optional '-' and nothing else (from_chars takes no
            // '+' and no space)
            auto [next, ec] = std::from_chars(p, end, v);
            if (ec != std::errc() || next == p) {
                return false;
            }
            p = next;
            values.push_back(v);
            first_of_op = false;
            continue;
        }
        bounds.push_back(values.size());
        if (p == end) {
            break;
        }
        p++;  // ','
        first_of_op = true;
    }
    return bounds.size() == nops + 1;
}

bool fresh_reserve_eligible(const GuardOp& op) {
    return !op.settle && op.own_key && op.nkeys == 1 && op.nhead == 2 && op.head() == reserve_heads()[1];
}

bool fresh_reserve_apart(const GuardOp* const* ops, size_t n, size_t i) {
    if (i >= n || !fresh_reserve_eligible(*ops[i])) {
        return false;
    }
    std::string_view key = ops[i]->keys();
    for (size_t j = 0; j < n; j++) {
        if (j != i && ops[j]->keys().find(key) != std::string_view::npos) {
            return false;
        }
    }
    return true;
}

size_t fresh_reserves(const GuardOp* const* ops, size_t n, size_t max) {
    size_t reserves = 0;
    for (size_t i = 0; i < n; i++) {
        if (ops[i]->settle) {
            continue;
        }
        if (++reserves > max || !fresh_reserve_apart(ops, n, i)) {
            return 0;
        }
    }
    return reserves;
}

RespArgs make_guard_fresh_reserve(const GuardOp& op, int64_t reservation, int64_t hold_ms) {
    RespArgs a;
    a.data.reserve(op.keys().size() + 96);
    a.data.append("*6\r\n$3\r\nSET\r\n", 13);
    a.add_encoded(op.keys(), 1);
    // reservation_only() of guard_ops_common.lua
    char text[24];
    auto [end, ec] = std::to_chars(text, text + sizeof(text), reservation);
    (void) ec;
    a.add_joined({"|||", std::string_view(text, static_cast<size_t>(end - text)), "|"});
    a.add_encoded("$2\r\nNX\r\n$2\r\nPX\r\n", 2);
    a.add(hold_ms);
    a.count++;  // SET
    return a;
}

bool fresh_reserve_taken(const Reply& reply) {
    return reply.type == Reply::Type::status && reply.str == "OK";
}

std::array<int64_t, 4> fresh_reserve_answer(int64_t reservation) {
    return {0, 0, 0, reservation};
}

int64_t retry_after_seconds(int64_t retry_ms) {
    int64_t s = (retry_ms + 999) / 1000;
    return s < 1 ? 1 : s;
}

}  // namespace pairguard
