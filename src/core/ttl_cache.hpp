// A small per-worker cache whose entries all live the same time: answers
// found in Redis (a session, an approval) kept for a short bound. Entries
// leave when they expire, in the order they were put (one TTL for all, so
// that order is the order of expiry), and the whole cache is dropped when it
// reaches its cap: its memory follows the entries of the last TTL, not every
// key ever asked for. Every erase and clear counts a generation: an answer
// looked up before one of them (a revocation may have come in between) is
// put only if the generation is still the one it was sent under. Not
// thread-safe (one worker's event loop).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <utility>

namespace pairguard {

template <class V>
class TtlCache {
public:
    TtlCache(uint64_t ttl_ms, size_t max_entries) : ttl_ms_(ttl_ms), max_(max_entries) {}

    // The live value of `key` at `now_ms`, or nullptr.
    const V* get(const std::string& key, uint64_t now_ms) {
        expire(now_ms);
        auto it = map_.find(key);
        if (it == map_.end() || it->second.until <= now_ms) {
            return nullptr;
        }
        return &it->second.value;
    }

    void put(const std::string& key, V value, uint64_t now_ms) {
        expire(now_ms);
        if (map_.size() >= max_ || order_.size() >= 2 * max_) {
            drop_all();  // rare: every entry is one Redis call away
        }
        uint64_t until = now_ms + ttl_ms_;
        map_.insert_or_assign(key, entry_t{std::move(value), until});
        order_.emplace_back(key, until);
    }

    // Counts erase, erase_if and clear (not the drops of expiry or the cap).
    uint64_t generation() const { return generation_; }

    // put(), unless something was erased since `generation()` was `since`.
    void put_if_unchanged(uint64_t since, const std::string& key, V value, uint64_t now_ms) {
        if (since == generation_) {
            put(key, std::move(value), now_ms);
        }
    }

    void erase(const std::string& key) {
        generation_++;
        map_.erase(key);
    }

    template <class Pred>
    void erase_if(Pred pred) {
        generation_++;
        for (auto it = map_.begin(); it != map_.end();) {
            it = pred(it->second.value) ? map_.erase(it) : std::next(it);
        }
    }

    void clear() {
        generation_++;
        drop_all();
    }

    // Drops what expired by `now_ms`.
    void expire(uint64_t now_ms) {
        while (!order_.empty() && order_.front().second <= now_ms) {
            auto it = map_.find(order_.front().first);
            // put again since: that later put has its own place in the order
            if (it != map_.end() && it->second.until <= now_ms) {
                map_.erase(it);
            }
            order_.pop_front();
        }
    }

    size_t size() const { return map_.size(); }
    size_t pending() const { return order_.size(); }

private:
    void drop_all() {
        map_.clear();
        order_.clear();
    }

    struct entry_t {
        V value;
        uint64_t until;
    };
    uint64_t ttl_ms_;
    size_t max_;
    std::unordered_map<std::string, entry_t> map_;
    std::deque<std::pair<std::string, uint64_t>> order_;
    uint64_t generation_ = 0;
};

}  // namespace pairguard
