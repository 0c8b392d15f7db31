// The store's counters (SPEC section 5), called by the Redis client: kept in
// the node's "pairguard_metrics" zone by ngx_http_pairguard_metrics.cpp.
// Each call is a few atomic additions; nothing when no zone is configured.
#pragma once

#include <cstdint>

enum class ngx_pairguard_redis_result_e;

// A command is queued: counts it, returns the time to give to _done.
uint64_t ngx_pairguard_metric_store_sent() noexcept;
// Its reply (or failure) arrived.
void ngx_pairguard_metric_store_done(ngx_pairguard_redis_result_e res, uint64_t sent_ns) noexcept;
// This worker's connection came up or went down (a subscriber's does not count).
void ngx_pairguard_metric_store_up(bool up, bool subscriber) noexcept;
