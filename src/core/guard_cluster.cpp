#include "guard_cluster.hpp"

#include <map>
#include <string_view>

#include "redis_spec.hpp"
#include "resp.hpp"

namespace pairguard {

namespace {

// The RESP bulk strings of `s`, back to back, as views of their whole
// encoding (so they can be re-added with add_encoded) and of their text.
bool bulks(std::string_view s, std::vector<std::string_view>& whole, std::vector<std::string_view>& text) {
    size_t pos = 0;
    while (pos < s.size()) {
        if (s[pos] != '$') {
            return false;
        }
        size_t crlf = s.find("\r\n", pos);
        if (crlf == std::string_view::npos || crlf == pos + 1) {
            return false;
        }
        size_t len = 0;
        for (size_t i = pos + 1; i < crlf; i++) {
            if (s[i] < '0' || s[i] > '9' || len > (1u << 30)) {
                return false;
            }
            len = len * 10 + static_cast<size_t>(s[i] - '0');
        }
        size_t end = crlf + 2 + len + 2;
        if (end > s.size() || s.substr(end - 2, 2) != "\r\n") {
            return false;
        }
        whole.push_back(s.substr(pos, end - pos));
        text.push_back(s.substr(crlf + 2, len));
        pos = end;
    }
    return true;
}

struct Parsed {
    std::vector<std::string_view> keys_whole, keys_text, args_whole, args_text;
    size_t head = 0;  // arguments before the limits: 2 ('r'), 3 ('R'), 4 ('s')
};

bool parse(const GuardOp& op, Parsed& p) {
    if (!bulks(op.keys(), p.keys_whole, p.keys_text) || !bulks(op.args(), p.args_whole, p.args_text)
        || p.keys_text.size() != op.nkeys || p.args_text.empty()) {
        return false;
    }
    std::string_view kind = p.args_text[0];
    p.head = kind == "r" ? 2 : kind == "R" ? 3 : kind == "s" ? 4 : 0;
    if (p.head == 0 || p.head != op.nhead || p.args_text.size() != p.head + 5 * op.nkeys) {
        return false;
    }
    size_t head_len = 0;
    for (size_t i = 0; i < p.head; i++) {
        head_len += p.args_whole[i].size();
    }
    return head_len == op.head_len;
}

}  // namespace

bool guard_op_slots(const GuardOp& op, std::vector<uint16_t>& slots) {
    Parsed p;
    if (!parse(op, p)) {
        return false;
    }
    slots.clear();
    for (std::string_view k : p.keys_text) {
        slots.push_back(cluster_key_slot(k));
    }
    return true;
}

std::vector<GuardPart> split_guard_op(const GuardOp& op, int64_t reservation) {
    Parsed p;
    std::vector<GuardPart> parts;
    if (!parse(op, p)) {
        return parts;
    }
    std::vector<uint16_t> order;
    std::map<uint16_t, std::vector<size_t>> by_slot;
    for (size_t i = 0; i < p.keys_text.size(); i++) {
        uint16_t s = cluster_key_slot(p.keys_text[i]);
        if (by_slot.find(s) == by_slot.end()) {
            order.push_back(s);
        }
        by_slot[s].push_back(i);
    }
    if (order.size() <= 1) {
        GuardPart whole;
        whole.slot = order.empty() ? 0 : order[0];
        whole.op = op;
        for (size_t i = 0; i < op.nkeys; i++) {
            whole.index.push_back(i);
        }
        parts.push_back(std::move(whole));
        return parts;
    }
    for (uint16_t s : order) {
        const std::vector<size_t>& idx = by_slot[s];
        GuardPart part;
        part.slot = s;
        part.index = idx;
        part.op.settle = op.settle;
        part.op.nkeys = idx.size();
        RespArgs keys, head, limits;
        for (size_t i : idx) {
            keys.add_encoded(p.keys_whole[i], 1);
        }
        if (op.settle) {
            head.add("s");
            head.add(static_cast<int64_t>(idx.size()));
            head.add_encoded(p.args_whole[2], 1);  // outcome
            head.add_encoded(p.args_whole[3], 1);  // reservation
        } else {
            head.add("R");
            head.add(static_cast<int64_t>(idx.size()));
            head.add(reservation);
        }
        for (size_t i : idx) {
            for (size_t l = 0; l < 5; l++) {
                limits.add_encoded(p.args_whole[p.head + 5 * i + l], 1);
            }
        }
        part.op.set(keys.data, head.data, limits.data);
        part.op.nhead = head.count;
        part.op.nargs = head.count + limits.count;
        parts.push_back(std::move(part));
    }
    return parts;
}

std::vector<int64_t> merge_guard_reserve(const std::vector<GuardPart>& parts,
                                         const std::vector<const std::vector<int64_t>*>& replies,
                                         int64_t reservation, bool& ok, std::vector<GuardOp>& release) {
    ok = replies.size() == parts.size() && !parts.empty();
    bool failed = !ok;  // a part without an answer
    int64_t status = 0, policy = 0, retry = 0;
    std::vector<int64_t> ended;
    std::vector<size_t> reserved;
    for (size_t k = 0; ok && k < parts.size(); k++) {
        const std::vector<int64_t>* r = replies[k];
        if (r == nullptr) {
            failed = true;  // the others may still refuse: a refusal stands
            continue;
        }
        if (r->size() < 4) {
            ok = false;
            break;
        }
        int64_t st = (*r)[0];
        size_t local = static_cast<size_t>((*r)[1]);
        if (st == 0) {
            reserved.push_back(k);
        } else if (local >= 1 && local <= parts[k].index.size()) {
            // a lock wins over attempts in flight; the longest lock wins
            bool better = status == 0 || (st == 1 && status != 1) || (st == status && (*r)[2] > retry);
            if (better) {
                status = st;
                policy = static_cast<int64_t>(parts[k].index[local - 1]) + 1;
                retry = (*r)[2];
            }
        } else {
            ok = false;
            break;
        }
        for (size_t e = 4; e < r->size(); e++) {
            size_t local_e = static_cast<size_t>((*r)[e]);
            if (local_e < 1 || local_e > parts[k].index.size()) {
                ok = false;
                break;
            }
            ended.push_back(static_cast<int64_t>(parts[k].index[local_e - 1]) + 1);
        }
    }
    // a part that refused decides, whatever another part's store did; with
    // no refusal, a part without an answer leaves the request to store_down
    if (ok && status == 0 && failed) {
        ok = false;
    }
    if (!ok || status != 0) {
        // what some parts reserved is given back: the request does not go on
        for (size_t k = 0; k < parts.size(); k++) {
            bool did = k < replies.size() && replies[k] != nullptr && !replies[k]->empty() && (*replies[k])[0] == 0;
            if (!did) {
                continue;
            }
            Parsed p;
            if (!parse(parts[k].op, p)) {
                continue;
            }
            GuardOp rel;
            rel.settle = true;
            rel.nkeys = parts[k].op.nkeys;
            RespArgs head;
            head.add("s");
            head.add(static_cast<int64_t>(rel.nkeys));
            head.add("n");
            head.add(reservation);
            rel.set(parts[k].op.keys(), head.data, parts[k].op.limits());
            rel.nhead = head.count;
            rel.nargs = head.count + 5 * rel.nkeys;
            release.push_back(std::move(rel));
        }
    }
    if (!ok) {
        return {};
    }
    std::vector<int64_t> out = {status, policy, retry, status == 0 ? reservation : 0};
    out.insert(out.end(), ended.begin(), ended.end());
    return out;
}

std::vector<int64_t> merge_guard_settle(const std::vector<GuardPart>& parts,
                                        const std::vector<const std::vector<int64_t>*>& replies, bool& ok) {
    ok = replies.size() == parts.size();
    std::vector<int64_t> out;
    for (size_t k = 0; ok && k < parts.size(); k++) {
        const std::vector<int64_t>* r = replies[k];
        if (r == nullptr || r->size() % 2 != 0) {
            ok = false;
            break;
        }
        for (size_t j = 0; j + 1 < r->size(); j += 2) {
            size_t local = static_cast<size_t>((*r)[j]);
            if (local < 1 || local > parts[k].index.size()) {
                ok = false;
                break;
            }
            out.push_back(static_cast<int64_t>(parts[k].index[local - 1]) + 1);
            out.push_back((*r)[j + 1]);
        }
    }
    if (!ok) {
        out.clear();
    }
    return out;
}

}  // namespace pairguard
