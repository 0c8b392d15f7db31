// The counters of pairguard_status (SPEC section 5), for the guard, the
// pairing and auth glue: one-line calls at the spots where a decision, an
// outcome, a lock or an answer is made. Each is a few atomic additions on
// the node's "pairguard_metrics" zone, or nothing when no location has
// pairguard_status.
#pragma once

#include "../core/metrics.hpp"
#include "ngx_http_pairguard.h"
#include "ngx_pairguard_metrics.h"

extern "C" ngx_module_t ngx_http_pairguard_metrics_module;

// A decision of the guard for one policy.
void ngx_http_pairguard_metric_decision(const ngx_http_pairguard_policy_t* p, pairguard::metrics::Decision d) noexcept;
// Every policy of the group is allowed.
void ngx_http_pairguard_metric_allowed(const ngx_http_pairguard_group_t& g) noexcept;
// A refusal of the group's policy `policy`: locked (or busy), dry_run when
// the location only watches; `local`: decided from shared memory, no Redis.
void ngx_http_pairguard_metric_refused(const ngx_http_pairguard_group_t& g, size_t policy, bool busy,
                                       bool local) noexcept;
// The upstream's answer, classified, for every policy of the group.
void ngx_http_pairguard_metric_outcome(const ngx_http_pairguard_group_t& g, pairguard::Outcome o) noexcept;
// A lock starts.
void ngx_http_pairguard_metric_lockout(const ngx_http_pairguard_policy_t* p) noexcept;
// An answer the module sends itself: counted for the pairing endpoint or
// auth method of the request's location, if any.
void ngx_http_pairguard_metric_answer(ngx_http_request_t* r, const ngx_http_pairguard_answer_t& a) noexcept;
// A bearer token let a request through (pairguard_auth_require, Haystack).
void ngx_http_pairguard_metric_session_ok() noexcept;
