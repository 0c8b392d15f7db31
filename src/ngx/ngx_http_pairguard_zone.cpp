// Per-node state in the shared-memory zone "pairguard": the verdict cache
// (keys this node knows to be locked) and, while Redis is unavailable under
// `pairguard_store_down local`, the policies' whole arithmetic.

#include <array>
#include <cstddef>

#include "ngx_http_pairguard.h"

namespace {

struct pg_node_t {
    ngx_rbtree_node_t rb;  // rb.key: the tag's first bytes (already an HMAC)
    ngx_queue_t lru;
    pairguard::KeyTag tag;
    uint16_t cap;
    int64_t cached_len;    // length of a lock cached from Redis (0: none)
    pairguard::GuardRecord rec;
    int64_t times[1];      // cap entries
};

struct pg_shctx_t {
    ngx_rbtree_t rbtree;
    ngx_rbtree_node_t sentinel;
    ngx_queue_t lru;
};

struct pg_zone_t {
    ngx_slab_pool_t* shpool;
    pg_shctx_t* sh;
};

struct pg_event_t {
    const ngx_http_pairguard_key_t* key;
    int64_t lock_ms;  // > 0: lock start; 0: lock end
};

// The zone's mutex for one scope. Nothing in such a scope allocates from the
// heap or throws: a bad_alloc there would leave every worker waiting on the
// lock forever.
class zone_lock_t {
public:
    explicit zone_lock_t(ngx_slab_pool_t* shpool) noexcept : shpool_(shpool) { ngx_shmtx_lock(&shpool_->mutex); }
    ~zone_lock_t() { ngx_shmtx_unlock(&shpool_->mutex); }
    zone_lock_t(const zone_lock_t&) = delete;
    zone_lock_t& operator=(const zone_lock_t&) = delete;

private:
    ngx_slab_pool_t* shpool_;
};

size_t node_size(uint16_t cap) {
    return offsetof(pg_node_t, times) + sizeof(int64_t) * (cap > 0 ? cap : 1);
}

ngx_rbtree_key_t tag_hash(const pairguard::KeyTag& tag) {
    ngx_rbtree_key_t h;
    ngx_memcpy(&h, tag.data(), sizeof(h));
    return h;
}

int64_t now_ms() {
    return static_cast<int64_t>(ngx_current_msec);
}

pg_zone_t zone_of(ngx_shm_zone_t* zone) {
    return pg_zone_t{reinterpret_cast<ngx_slab_pool_t*>(zone->shm.addr), static_cast<pg_shctx_t*>(zone->data)};
}

void rbtree_insert(ngx_rbtree_node_t* temp, ngx_rbtree_node_t* node, ngx_rbtree_node_t* sentinel) {
    ngx_rbtree_node_t** p;
    for (;;) {
        if (node->key < temp->key) {
            p = &temp->left;
        } else if (node->key > temp->key) {
            p = &temp->right;
        } else {
            auto* a = reinterpret_cast<pg_node_t*>(node);
            auto* b = reinterpret_cast<pg_node_t*>(temp);
            p = ngx_memcmp(a->tag.data(), b->tag.data(), a->tag.size()) < 0 ? &temp->left : &temp->right;
        }
        if (*p == sentinel) {
            break;
        }
        temp = *p;
    }
    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}

void free_node(pg_zone_t& z, pg_node_t* n) {
    ngx_queue_remove(&n->lru);
    ngx_rbtree_delete(&z.sh->rbtree, &n->rb);
    ngx_slab_free_locked(z.shpool, n);
}

// A node with nothing left to remember may go.
bool idle(const pg_node_t* n, int64_t now) {
    return n->rec.locked_until <= now && n->rec.nfail == 0 && n->rec.nres == 0
           && (n->rec.lockouts == 0 || now - n->rec.last_lockout >= pairguard::kEscalationMemoryMs);
}

bool holds(const std::vector<pg_node_t*>& held, const pg_node_t* node) {
    for (const pg_node_t* h : held) {
        if (h == node) {
            return true;
        }
    }
    return false;
}

// The zone is full: frees up to `n` of the coldest nodes that hold no lock
// in force, looking at the 1024 coldest (bounded: the zone's mutex is held).
// A lock in force is never dropped: a flood of fresh keys while the store is
// down must not give a victim a fresh budget; with no room left, the new
// key is refused instead. Never a node that the current operation holds.
void expire_forced(pg_zone_t& z, int64_t now, ngx_uint_t n, const std::vector<pg_node_t*>& held) {
    ngx_uint_t freed = 0, seen = 0;
    ngx_queue_t* q = ngx_queue_last(&z.sh->lru);
    while (freed < n && seen < 1024 && q != ngx_queue_sentinel(&z.sh->lru)) {
        ngx_queue_t* prev = ngx_queue_prev(q);
        pg_node_t* node = ngx_queue_data(q, pg_node_t, lru);
        seen++;
        if (node->rec.locked_until <= now && !holds(held, node)) {
            free_node(z, node);
            freed++;
        } else if (node->rec.locked_until > now) {
            // never dropped: out of the way of the next search, so that locks
            // piling up at the cold end cannot hide the nodes behind them
            ngx_queue_remove(q);
            ngx_queue_insert_head(&z.sh->lru, q);
        }
        q = prev;
    }
}

// Frees idle nodes from the cold end; with `force`, see expire_forced. Never
// one that the current operation holds (those were just moved to the hot
// end, so meeting one means there is nothing colder left).
void expire(pg_zone_t& z, int64_t now, ngx_uint_t n, bool force, const std::vector<pg_node_t*>& held) {
    if (force) {
        expire_forced(z, now, n, held);
        return;
    }
    while (n-- && !ngx_queue_empty(&z.sh->lru)) {
        ngx_queue_t* q = ngx_queue_last(&z.sh->lru);
        pg_node_t* node = ngx_queue_data(q, pg_node_t, lru);
        if (!idle(node, now) || holds(held, node)) {
            return;
        }
        free_node(z, node);
    }
}

pg_node_t* lookup(pg_zone_t& z, const pairguard::KeyTag& tag) {
    ngx_rbtree_key_t hash = tag_hash(tag);
    ngx_rbtree_node_t* node = z.sh->rbtree.root;
    ngx_rbtree_node_t* sentinel = z.sh->rbtree.sentinel;
    while (node != sentinel) {
        if (hash < node->key) {
            node = node->left;
            continue;
        }
        if (hash > node->key) {
            node = node->right;
            continue;
        }
        auto* n = reinterpret_cast<pg_node_t*>(node);
        int rc = ngx_memcmp(tag.data(), n->tag.data(), tag.size());
        if (rc == 0) {
            return n;
        }
        node = rc < 0 ? node->left : node->right;
    }
    return nullptr;
}

pg_node_t* lookup_or_create(pg_zone_t& z, const pairguard::KeyTag& tag, uint16_t cap, int64_t now,
                            const std::vector<pg_node_t*>& held) {
    pg_node_t* n = lookup(z, tag);
    if (n != nullptr && n->cap >= cap) {
        ngx_queue_remove(&n->lru);
        ngx_queue_insert_head(&z.sh->lru, &n->lru);
        return n;
    }

    pairguard::GuardRecord kept;
    if (n != nullptr) {
        // the policy's max_failures grew on reload: keep the lock history only
        kept.locked_until = n->rec.locked_until;
        kept.last_lockout = n->rec.last_lockout;
        kept.lockouts = n->rec.lockouts;
        free_node(z, n);
    }

    expire(z, now, 2, false, held);

    auto* fresh = static_cast<pg_node_t*>(ngx_slab_alloc_locked(z.shpool, node_size(cap)));
    if (fresh == nullptr) {
        expire(z, now, 16, true, held);
        fresh = static_cast<pg_node_t*>(ngx_slab_alloc_locked(z.shpool, node_size(cap)));
        if (fresh == nullptr) {
            return nullptr;
        }
    }
    fresh->rb.key = tag_hash(tag);
    fresh->tag = tag;
    fresh->cap = cap;
    fresh->cached_len = 0;
    new (&fresh->rec) pairguard::GuardRecord(kept);
    ngx_rbtree_insert(&z.sh->rbtree, &fresh->rb);
    ngx_queue_insert_head(&z.sh->lru, &fresh->lru);
    return fresh;
}

uint16_t cap_of(const ngx_http_pairguard_key_t& key) {
    return static_cast<uint16_t>(ngx_http_pairguard_key_limits(key).max_failures);
}

void report(ngx_log_t* log, const pg_event_t* events, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (events[i].lock_ms > 0) {
            ngx_http_pairguard_log_lock_start(log, *events[i].key, events[i].lock_ms);
        } else {
            ngx_http_pairguard_log_lock_end(log, *events[i].key);
        }
    }
}

}  // namespace

ngx_int_t ngx_http_pairguard_init_zone(ngx_shm_zone_t* shm_zone, void* data) noexcept {
    if (data != nullptr) {
        shm_zone->data = data;  // reload: keep what the old cycle knew
        return NGX_OK;
    }
    auto* shpool = reinterpret_cast<ngx_slab_pool_t*>(shm_zone->shm.addr);
    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }
    auto* sh = static_cast<pg_shctx_t*>(ngx_slab_alloc(shpool, sizeof(pg_shctx_t)));
    if (sh == nullptr) {
        return NGX_ERROR;
    }
    shpool->data = sh;
    shm_zone->data = sh;
    ngx_rbtree_init(&sh->rbtree, &sh->sentinel, rbtree_insert);
    ngx_queue_init(&sh->lru);

    static const char ctx_text[] = " in pairguard zone \"";
    size_t len = sizeof(ctx_text) + shm_zone->shm.name.len + 2;
    shpool->log_ctx = static_cast<u_char*>(ngx_slab_alloc(shpool, len));
    if (shpool->log_ctx == nullptr) {
        return NGX_ERROR;
    }
    ngx_sprintf(shpool->log_ctx, " in pairguard zone \"%V\"%Z", &shm_zone->shm.name);
    shpool->log_nomem = 0;
    return NGX_OK;
}

bool ngx_http_pairguard_cached_lock(ngx_shm_zone_t* zone, const ngx_http_pairguard_keys_t& keys,
                                    ngx_http_pairguard_local_verdict_t& out) {
    pg_zone_t z = zone_of(zone);
    int64_t now = now_ms();
    bool locked = false;

    zone_lock_t lock(z.shpool);
    for (size_t i = 0; i < keys.size(); i++) {
        pg_node_t* n = lookup(z, keys[i].tag);
        if (n == nullptr || n->rec.locked_until == 0) {
            continue;
        }
        if (n->rec.locked_until > now) {
            // a lock that keeps refusing stays at the hot end
            ngx_queue_remove(&n->lru);
            ngx_queue_insert_head(&z.sh->lru, &n->lru);
            // each worker's clock is the one cached at the start of its loop
            // iteration: what is left is never more than the lock's length
            int64_t left = n->rec.locked_until - now;
            if (n->cached_len > 0 && left > n->cached_len) {
                left = n->cached_len;
            }
            if (!locked || left > out.retry_ms) {
                out.verdict = pairguard::Verdict::locked;
                out.policy = i;
                out.retry_ms = left;
            }
            locked = true;
        } else if (n->rec.nfail == 0 && n->rec.nres == 0) {
            n->rec.locked_until = 0;  // a cached Redis lock ran out; Redis reports its end
        }
    }
    return locked;
}

void ngx_http_pairguard_cache_lock(ngx_shm_zone_t* zone, const ngx_http_pairguard_key_t& key, int64_t lock_ms) {
    pg_zone_t z = zone_of(zone);
    int64_t now = now_ms();

    static const std::vector<pg_node_t*> none;
    zone_lock_t lock(z.shpool);
    pg_node_t* n = lookup_or_create(z, key.tag, cap_of(key), now, none);
    if (n != nullptr && n->rec.locked_until < now + lock_ms) {
        n->rec.locked_until = now + lock_ms;
        n->cached_len = lock_ms;
    }
}

void ngx_http_pairguard_local_reserve(ngx_shm_zone_t* zone, ngx_log_t* log,
                                      const ngx_http_pairguard_keys_t& keys, bool reserve,
                                      ngx_http_pairguard_local_verdict_t& out, int64_t& reservation) {
    pg_zone_t z = zone_of(zone);
    int64_t now = now_ms();
    std::vector<pg_node_t*> nodes;
    std::vector<pg_event_t> events;
    bool full = false;

    out = ngx_http_pairguard_local_verdict_t();
    size_t uncounted = keys.size();
    reservation = 0;
    nodes.reserve(keys.size());  // no allocation once the zone is locked
    events.reserve(keys.size());

    {
    zone_lock_t lock(z.shpool);
    for (size_t i = 0; i < keys.size(); i++) {
        pg_node_t* n = lookup_or_create(z, keys[i].tag, cap_of(keys[i]), now, nodes);
        nodes.push_back(n);
        if (n == nullptr) {
            full = true;
            uncounted = i;
            continue;
        }
        pairguard::CheckResult c = pairguard::guard_check(nodes[i]->rec, nodes[i]->times, ngx_http_pairguard_key_limits(keys[i]), now);
        ngx_log_debug4(NGX_LOG_DEBUG_HTTP, log, 0, "pairguard: local check \"%V\": %ui failures, %ui in flight, verdict %d",
                       &keys[i].policy->name, (ngx_uint_t) nodes[i]->rec.nfail, (ngx_uint_t) nodes[i]->rec.nres,
                       (int) c.verdict);
        if (c.lock_ended) {
            events.push_back(pg_event_t{&keys[i], 0});
        }
        if (c.verdict == pairguard::Verdict::allow) {
            continue;
        }
        bool better = out.verdict == pairguard::Verdict::allow
                      || (c.verdict == pairguard::Verdict::locked
                          && (out.verdict != pairguard::Verdict::locked || c.retry_ms > out.retry_ms));
        if (better) {
            out.verdict = c.verdict;
            out.policy = i;
            out.retry_ms = c.retry_ms;
        }
    }
    if (full && out.verdict == pairguard::Verdict::allow) {
        // a key this node cannot count is not let through uncounted
        out.verdict = pairguard::Verdict::busy;
        out.policy = uncounted;
        out.retry_ms = 1000;
    }
    if (out.verdict == pairguard::Verdict::allow && reserve) {
        reservation = now + pairguard::kReservationHoldMs;
        for (pg_node_t* n : nodes) {
            if (n != nullptr) {
                pairguard::guard_reserve(n->rec, n->times, reservation);
            }
        }
    }
    }

    if (full) {
        ngx_log_error(NGX_LOG_WARN, log, 0, "pairguard: zone \"%V\" is full of locks, a key is refused",
                      &zone->shm.name);
    }
    report(log, events.data(), events.size());
}

void ngx_http_pairguard_local_settle(ngx_shm_zone_t* zone, ngx_log_t* log,
                                     const ngx_http_pairguard_keys_t& keys, pairguard::Outcome outcome,
                                     int64_t reservation) {
    pg_zone_t z = zone_of(zone);
    int64_t now = now_ms();
    std::vector<pg_event_t> events;
    std::vector<pg_node_t*> held;
    events.reserve(keys.size());  // no allocation once the zone is locked
    held.reserve(keys.size());

    {
    zone_lock_t lock(z.shpool);
    for (const auto& key : keys) {
        pg_node_t* n = lookup_or_create(z, key.tag, cap_of(key), now, held);
        held.push_back(n);
        if (n == nullptr) {
            continue;
        }
        pairguard::SettleResult s =
            pairguard::guard_settle(n->rec, n->times, ngx_http_pairguard_key_limits(key), outcome, reservation, now);
        ngx_log_debug5(NGX_LOG_DEBUG_HTTP, log, 0, "pairguard: local settle \"%V\" outcome %d: %ui failures, %ui in flight, locked %d",
                       &key.policy->name, (int) outcome, (ngx_uint_t) n->rec.nfail, (ngx_uint_t) n->rec.nres, (int) s.locked);
        if (s.locked) {
            events.push_back(pg_event_t{&key, s.lock_ms});
        }
    }
    }

    report(log, events.data(), events.size());
}

void ngx_http_pairguard_forget_lock(ngx_shm_zone_t* zone, const std::string& prefix) {
    if (prefix.size() < sizeof(ngx_rbtree_key_t) || prefix.size() > pairguard::kTagBytes) {
        return;
    }
    pg_zone_t z = zone_of(zone);
    ngx_rbtree_key_t hash;
    ngx_memcpy(&hash, prefix.data(), sizeof(hash));

    zone_lock_t lock(z.shpool);
    // every node with this rbtree key: its tag may continue differently. A
    // red-black tree is at most 2*log2(n+1) deep, so a fixed stack holds the
    // walk (no allocation under the lock)
    ngx_rbtree_node_t* node = z.sh->rbtree.root;
    ngx_rbtree_node_t* sentinel = z.sh->rbtree.sentinel;
    std::array<ngx_rbtree_node_t*, 256> stack;
    size_t depth = 0;
    if (node != sentinel) {
        stack[depth++] = node;
    }
    while (depth > 0) {
        node = stack[--depth];
        if (hash <= node->key && node->left != sentinel && depth < stack.size()) {
            stack[depth++] = node->left;
        }
        if (hash >= node->key && node->right != sentinel && depth < stack.size()) {
            stack[depth++] = node->right;
        }
        auto* n = reinterpret_cast<pg_node_t*>(node);
        if (node->key == hash && ngx_memcmp(n->tag.data(), prefix.data(), prefix.size()) == 0) {
            n->rec.locked_until = 0;
        }
    }
}
