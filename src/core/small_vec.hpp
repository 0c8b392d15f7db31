// A vector that keeps its first N elements inside itself and moves to the
// heap (a std::vector) only beyond them: the guard's per-request lists (a
// location's keys, the request's groups) hold one or two entries, and
// malloc/free of a std::vector for each cost more than the rest of their
// handling. Plain storage: a std::array and a std::vector, no raw memory,
// so copying is member-wise; a moved-from SmallVec is empty.
#pragma once
#include <algorithm>
#include <array>
#include <cstddef>
#include <iterator>
#include <type_traits>
#include <utility>
#include <vector>

namespace pairguard {

template <class T, size_t N>
class SmallVec {
    static_assert(N > 0, "SmallVec needs room for one element");
    static_assert(std::is_nothrow_move_assignable_v<T> && std::is_nothrow_default_constructible_v<T>,
                  "SmallVec's moves and clear() do not throw");

public:
    using value_type = T;
    using iterator = T*;
    using const_iterator = const T*;

    SmallVec() = default;
    SmallVec(const SmallVec& o) : heap_(o.heap_), size_(o.size_), spilled_(o.spilled_) {
        if (!spilled_) {
            std::copy(o.inline_.begin(), o.inline_.begin() + size_, inline_.begin());
        }
    }
    SmallVec& operator=(const SmallVec& o) {
        if (this != &o) {
            SmallVec copy(o);
            *this = std::move(copy);
        }
        return *this;
    }
    SmallVec(SmallVec&& o) noexcept : heap_(std::move(o.heap_)), size_(o.size_), spilled_(o.spilled_) {
        if (!spilled_) {
            std::move(o.inline_.begin(), o.inline_.begin() + size_, inline_.begin());
        }
        o.forget();
    }
    SmallVec& operator=(SmallVec&& o) noexcept {
        if (this != &o) {
            forget();
            heap_ = std::move(o.heap_);
            size_ = o.size_;
            spilled_ = o.spilled_;
            if (!spilled_) {
                std::move(o.inline_.begin(), o.inline_.begin() + size_, inline_.begin());
            }
            o.forget();
        }
        return *this;
    }

    T* data() noexcept { return spilled_ ? heap_.data() : inline_.data(); }
    const T* data() const noexcept { return spilled_ ? heap_.data() : inline_.data(); }
    size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }
    T* begin() noexcept { return data(); }
    T* end() noexcept { return data() + size_; }
    const T* begin() const noexcept { return data(); }
    const T* end() const noexcept { return data() + size_; }
    T& operator[](size_t i) noexcept { return data()[i]; }
    const T& operator[](size_t i) const noexcept { return data()[i]; }
    T& back() noexcept { return data()[size_ - 1]; }
    const T& back() const noexcept { return data()[size_ - 1]; }

    void push_back(const T& v) { emplace(v); }
    void push_back(T&& v) { emplace(std::move(v)); }

    // Removes [first, last): the elements after them move up, in order.
    T* erase(T* first, T* last) {
        if (first == last) {
            return first;  // nothing moves (moving onto itself would empty a string)
        }
        size_t at = static_cast<size_t>(first - data());
        size_t n = static_cast<size_t>(last - first);
        if (spilled_) {
            auto b = heap_.begin() + static_cast<std::ptrdiff_t>(at);
            heap_.erase(b, b + static_cast<std::ptrdiff_t>(n));
            size_ = heap_.size();
        } else {
            std::move(last, end(), first);
            wipe_inline(size_ - n, size_);
            size_ -= n;
        }
        return data() + at;
    }

    // Empty; inline slots are reset (nothing of an old element stays in
    // them), heap storage is given back.
    void clear() noexcept { forget(); }

private:
    template <class V>
    void emplace(V&& v) {
        if (!spilled_) {
            if (size_ < N) {
                inline_[size_] = std::forward<V>(v);
                size_++;
                return;
            }
            std::vector<T> h;
            h.reserve(2 * N);  // may throw: `v` is untouched then
            T last(std::forward<V>(v));  // before the move: `v` may be one of ours
            h.assign(std::make_move_iterator(inline_.begin()), std::make_move_iterator(inline_.end()));
            h.push_back(std::move(last));
            heap_ = std::move(h);
            wipe_inline(0, size_);
            spilled_ = true;
            size_ = heap_.size();
            return;
        }
        heap_.push_back(std::forward<V>(v));
        size_ = heap_.size();
    }

    // Inline slots not in use always hold T(): only used ones are reset.
    void wipe_inline(size_t from, size_t to) noexcept {
        for (size_t i = from; i < to; i++) {
            inline_[i] = T();
        }
    }
    void forget() noexcept {
        if (spilled_) {
            std::vector<T>().swap(heap_);
        } else {
            wipe_inline(0, size_);
        }
        size_ = 0;
        spilled_ = false;
    }

    std::array<T, N> inline_{};
    std::vector<T> heap_;
    size_t size_ = 0;
    bool spilled_ = false;
};

}  // namespace pairguard
