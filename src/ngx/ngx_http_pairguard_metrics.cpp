// pairguard_status (SPEC section 5): the node's counters in the shared zone
// "pairguard_metrics", and the location handler that renders them as JSON or
// Prometheus text.
//
// The zone is sized at configuration time from the policies: a fixed slot
// per policy and label value, so the request path only does atomic
// additions (no lock, no allocation). It survives a reload; when the policy
// set changes, the counters are laid out anew and kept by policy name.
//
// Its own small module (in the same .so), so that the main module's tables
// stay as they are: the directive, a postconfiguration that adds the zone,
// and an init_process that finds it.

#include <time.h>

#include <algorithm>

#include "ngx_http_pairguard_metrics.h"

namespace {

namespace m = pairguard::metrics;

constexpr size_t kPolicySlots = m::kDecisions.size() + m::kOutcomes.size() + 2;  // + lockouts, local verdicts
constexpr size_t kOutcomeSlot = m::kDecisions.size();
constexpr size_t kLockoutSlot = kOutcomeSlot + m::kOutcomes.size();
constexpr size_t kLocalSlot = kLockoutSlot + 1;
constexpr size_t kWorkerSlots = 64;

constexpr ngx_atomic_uint_t kWorkerUnknown = 0;
constexpr ngx_atomic_uint_t kWorkerDown = 1;
constexpr ngx_atomic_uint_t kWorkerUp = 2;

// In the zone; the policies' counters follow it (kPolicySlots each).
struct block_t {
    ngx_atomic_uint_t npolicies;
    block_t* prev;  // the block this one replaced: old workers may still write it
    ngx_atomic_t store_commands;
    ngx_atomic_t store_errors[m::kStoreErrors.size()];
    ngx_atomic_t latency[m::kLatencyBuckets];
    ngx_atomic_t latency_sum_ns;
    ngx_atomic_t worker_up[kWorkerSlots];
    ngx_atomic_t pairing[m::kPairingEndpoints.size()][m::kPairingResults.size()];
    ngx_atomic_t auth[m::kAuthMethods.size()][m::kAuthResults.size()];
};

ngx_atomic_t* policy_slots(block_t* b, size_t index) {
    return reinterpret_cast<ngx_atomic_t*>(b + 1) + index * kPolicySlots;
}

size_t block_size(size_t npolicies) {
    return sizeof(block_t) + npolicies * kPolicySlots * sizeof(ngx_atomic_t);
}

struct ngx_http_pairguard_metrics_conf_t {
    ngx_flag_t status;  // some location has pairguard_status
    ngx_shm_zone_t* zone;
    ngx_array_t names;  // of ngx_str_t: the policies, in index order
    block_t* block;     // set when the zone is initialised
};

// This worker's block (set in init_process from its own cycle).
block_t* metrics = nullptr;

char* ngx_http_pairguard_status(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
ngx_int_t ngx_http_pairguard_metrics_postconfiguration(ngx_conf_t* cf) noexcept;
void* ngx_http_pairguard_metrics_create_main_conf(ngx_conf_t* cf) noexcept;
ngx_int_t ngx_http_pairguard_metrics_init_process(ngx_cycle_t* cycle) noexcept;

ngx_command_t ngx_http_pairguard_metrics_commands[] = {
    {ngx_string("pairguard_status"), NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS, ngx_http_pairguard_status,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    ngx_null_command,
};

ngx_http_module_t ngx_http_pairguard_metrics_module_ctx = {
    nullptr,                                       // preconfiguration
    ngx_http_pairguard_metrics_postconfiguration,  // postconfiguration
    ngx_http_pairguard_metrics_create_main_conf,   // create main configuration
    nullptr,                                       // init main configuration
    nullptr,                                       // create server configuration
    nullptr,                                       // merge server configuration
    nullptr,                                       // create location configuration
    nullptr,                                       // merge location configuration
};

}  // namespace

ngx_module_t ngx_http_pairguard_metrics_module = {
    NGX_MODULE_V1,
    &ngx_http_pairguard_metrics_module_ctx,   // module context
    ngx_http_pairguard_metrics_commands,      // module directives
    NGX_HTTP_MODULE,                          // module type
    nullptr,                                  // init master
    nullptr,                                  // init module
    ngx_http_pairguard_metrics_init_process,  // init process
    nullptr,                                  // init thread
    nullptr,                                  // exit thread
    nullptr,                                  // exit process
    nullptr,                                  // exit master
    NGX_MODULE_V1_PADDING,
};

namespace {

void add(ngx_atomic_t* slot) {
    (void)ngx_atomic_fetch_add(slot, 1);
}

ngx_atomic_t* policy_slot(const ngx_http_pairguard_policy_t* p, size_t slot) {
    if (metrics == nullptr || p == nullptr || p->index >= metrics->npolicies) {
        return nullptr;
    }
    return policy_slots(metrics, p->index) + slot;
}

uint64_t now_ns() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

std::string_view view(const ngx_str_t& s) {
    return std::string_view(reinterpret_cast<const char*>(s.data), s.len);
}

bool same_names(const ngx_array_t& a, const ngx_array_t& b) {
    if (a.nelts != b.nelts) {
        return false;
    }
    auto* x = static_cast<const ngx_str_t*>(a.elts);
    auto* y = static_cast<const ngx_str_t*>(b.elts);
    for (ngx_uint_t i = 0; i < a.nelts; i++) {
        if (view(x[i]) != view(y[i])) {
            return false;
        }
    }
    return true;
}

// The counters of the old block in the new one: the node-wide ones as they
// are, a policy's by its name. Workers of the old configuration still add
// to the old block while they finish their requests; those few are lost.
void carry_over(block_t* to, const ngx_http_pairguard_metrics_conf_t* nconf, block_t* from,
                const ngx_http_pairguard_metrics_conf_t* oconf) {
    auto copy = [](ngx_atomic_t* dst, const ngx_atomic_t* src, size_t n) {
        for (size_t i = 0; i < n; i++) {
            dst[i] = src[i];
        }
    };
    to->store_commands = from->store_commands;
    copy(to->store_errors, from->store_errors, m::kStoreErrors.size());
    copy(to->latency, from->latency, m::kLatencyBuckets);
    to->latency_sum_ns = from->latency_sum_ns;
    copy(&to->pairing[0][0], &from->pairing[0][0], sizeof(to->pairing) / sizeof(ngx_atomic_t));
    copy(&to->auth[0][0], &from->auth[0][0], sizeof(to->auth) / sizeof(ngx_atomic_t));
    auto* nn = static_cast<const ngx_str_t*>(nconf->names.elts);
    auto* on = static_cast<const ngx_str_t*>(oconf->names.elts);
    for (ngx_uint_t i = 0; i < nconf->names.nelts; i++) {
        for (ngx_uint_t j = 0; j < oconf->names.nelts && j < from->npolicies; j++) {
            if (view(nn[i]) == view(on[j])) {
                copy(policy_slots(to, i), policy_slots(from, j), kPolicySlots);
                break;
            }
        }
    }
}

ngx_int_t init_zone(ngx_shm_zone_t* zone, void* data) noexcept {
    auto* conf = static_cast<ngx_http_pairguard_metrics_conf_t*>(zone->data);
    auto* old = static_cast<ngx_http_pairguard_metrics_conf_t*>(data);
    auto* shpool = reinterpret_cast<ngx_slab_pool_t*>(zone->shm.addr);

    if (old != nullptr && old->block != nullptr) {
        block_t* ob = old->block;
        // new workers report their connections afresh
        for (auto& w : ob->worker_up) {
            w = kWorkerUnknown;
        }
        if (same_names(conf->names, old->names)) {
            conf->block = ob;
            return NGX_OK;
        }
        // Old blocks are never freed: a worker of any earlier configuration
        // may still be finishing a request and adding to its own block (a
        // freed block reused for a new layout would take its counts).
        ngx_shmtx_lock(&shpool->mutex);
        auto* nb = static_cast<block_t*>(ngx_slab_calloc_locked(shpool, block_size(conf->names.nelts)));
        ngx_shmtx_unlock(&shpool->mutex);
        if (nb == nullptr) {
            ngx_log_error(NGX_LOG_EMERG, ngx_cycle->log, 0,
                          "pairguard_status: zone \"%V\" has no room for another set of policies "
                          "(each change of the policy set keeps the old counters for workers still "
                          "finishing): restart nginx to start the counters afresh",
                          &zone->shm.name);
            return NGX_ERROR;
        }
        nb->npolicies = conf->names.nelts;
        carry_over(nb, conf, ob, old);
        nb->prev = ob;
        shpool->data = nb;
        conf->block = nb;
        return NGX_OK;
    }

    if (zone->shm.exists) {
        conf->block = static_cast<block_t*>(shpool->data);
        return NGX_OK;
    }
    if (old != nullptr) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "pairguard_status: counters start from zero (the zone's size changed)");
    }
    auto* b = static_cast<block_t*>(ngx_slab_calloc(shpool, block_size(conf->names.nelts)));
    if (b == nullptr) {
        return NGX_ERROR;
    }
    b->npolicies = conf->names.nelts;
    shpool->data = b;
    conf->block = b;
    return NGX_OK;
}

// The zone is bigger than one block: a re-layout keeps the old block (and
// the one before) while the new one is filled. Rounded up, so that a
// changed policy set usually keeps the zone's size, and with it the zone.
size_t zone_size(size_t npolicies) {
    constexpr size_t step = 256 * 1024;
    size_t need = 3 * block_size(npolicies) + 64 * 1024;
    return (need + step - 1) / step * step;
}

m::Snapshot snapshot(const ngx_http_pairguard_metrics_conf_t* conf, block_t* b) {
    m::Snapshot s;
    bool any_up = false, any_down = false;
    for (const auto& w : b->worker_up) {
        any_up = any_up || w == kWorkerUp;
        any_down = any_down || w == kWorkerDown;
    }
    s.store_up = any_up && !any_down;
    s.store_commands = b->store_commands;
    for (size_t i = 0; i < m::kStoreErrors.size(); i++) {
        s.store_errors[i] = b->store_errors[i];
    }
    for (size_t i = 0; i < m::kLatencyBuckets; i++) {
        s.latency_buckets[i] = b->latency[i];
    }
    s.latency_sum_ns = b->latency_sum_ns;
    auto* names = static_cast<const ngx_str_t*>(conf->names.elts);
    for (ngx_uint_t i = 0; i < conf->names.nelts && i < b->npolicies; i++) {
        m::PolicyCounters p;
        p.name = std::string(view(names[i]));
        ngx_atomic_t* slots = policy_slots(b, i);
        for (size_t d = 0; d < m::kDecisions.size(); d++) {
            p.decisions[d] = slots[d];
        }
        for (size_t o = 0; o < m::kOutcomes.size(); o++) {
            p.outcomes[o] = slots[kOutcomeSlot + o];
        }
        p.lockouts = slots[kLockoutSlot];
        p.local_verdicts = slots[kLocalSlot];
        s.policies.push_back(std::move(p));
    }
    for (size_t e = 0; e < m::kPairingEndpoints.size(); e++) {
        for (size_t i = 0; i < m::kPairingResults.size(); i++) {
            s.pairing[e][i] = b->pairing[e][i];
        }
    }
    for (size_t a = 0; a < m::kAuthMethods.size(); a++) {
        for (size_t i = 0; i < m::kAuthResults.size(); i++) {
            s.auth[a][i] = b->auth[a][i];
        }
    }
    return s;
}

const ngx_table_elt_t* find_header(ngx_list_t* headers, std::string_view name) {
    for (ngx_list_part_t* part = &headers->part; part != nullptr; part = part->next) {
        auto* h = static_cast<ngx_table_elt_t*>(part->elts);
        for (ngx_uint_t i = 0; i < part->nelts; i++) {
            if (h[i].key.len == name.size() && ngx_strncasecmp(h[i].key.data, (u_char*)name.data(), name.size()) == 0) {
                return &h[i];
            }
        }
    }
    return nullptr;
}

// ?format=prometheus, or an Accept that names text/plain (as Prometheus'
// scrapes do); ?format=json wins over Accept.
bool wants_prometheus(ngx_http_request_t* r) {
    ngx_str_t format;
    if (ngx_http_arg(r, (u_char*)"format", 6, &format) == NGX_OK) {
        if (view(format) == "prometheus") {
            return true;
        }
        if (view(format) == "json") {
            return false;
        }
    }
    const ngx_table_elt_t* accept = find_header(&r->headers_in.headers, "Accept");
    return accept != nullptr && view(accept->value).find("text/plain") != std::string_view::npos;
}

ngx_int_t send_text(ngx_http_request_t* r, ngx_uint_t status, const char* type, const std::string& body) {
    r->headers_out.status = status;
    r->headers_out.content_length_n = static_cast<off_t>(body.size());
    r->headers_out.content_type = ngx_pairguard_str(type);
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = nullptr;
    ngx_int_t rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only || body.empty()) {
        return rc;
    }
    ngx_buf_t* b = ngx_create_temp_buf(r->pool, body.size());
    if (b == nullptr) {
        return NGX_ERROR;
    }
    b->last = ngx_cpymem(b->pos, body.data(), body.size());
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;
    ngx_chain_t out;
    out.buf = b;
    out.next = nullptr;
    return ngx_http_output_filter(r, &out);
}

ngx_int_t ngx_http_pairguard_status_handler(ngx_http_request_t* r) noexcept {
    try {
        if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) {
            return NGX_HTTP_NOT_ALLOWED;
        }
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        auto* conf = static_cast<ngx_http_pairguard_metrics_conf_t*>(
            ngx_http_get_module_main_conf(r, ngx_http_pairguard_metrics_module));
        if (conf->block == nullptr) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        m::Snapshot s = snapshot(conf, conf->block);
        if (wants_prometheus(r)) {
            return send_text(r, NGX_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", m::render_prometheus(s));
        }
        return send_text(r, NGX_HTTP_OK, "application/json", m::render_json(s));
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "pairguard: %s", e.what());
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}

char* ngx_http_pairguard_status(ngx_conf_t* cf, ngx_command_t*, void*) noexcept {
    auto* conf = static_cast<ngx_http_pairguard_metrics_conf_t*>(
        ngx_http_conf_get_module_main_conf(cf, ngx_http_pairguard_metrics_module));
    auto* clcf = static_cast<ngx_http_core_loc_conf_t*>(ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module));
    if (clcf->handler == ngx_http_pairguard_status_handler) {
        return const_cast<char*>("is duplicate");
    }
    clcf->handler = ngx_http_pairguard_status_handler;
    conf->status = 1;
    return NGX_CONF_OK;
}

void* ngx_http_pairguard_metrics_create_main_conf(ngx_conf_t* cf) noexcept {
    auto* conf = static_cast<ngx_http_pairguard_metrics_conf_t*>(
        ngx_pcalloc(cf->pool, sizeof(ngx_http_pairguard_metrics_conf_t)));
    if (conf == nullptr || ngx_array_init(&conf->names, cf->pool, 4, sizeof(ngx_str_t)) != NGX_OK) {
        return nullptr;
    }
    return conf;
}

ngx_int_t ngx_http_pairguard_metrics_postconfiguration(ngx_conf_t* cf) noexcept {
    auto* conf = static_cast<ngx_http_pairguard_metrics_conf_t*>(
        ngx_http_conf_get_module_main_conf(cf, ngx_http_pairguard_metrics_module));
    auto* pmcf =
        static_cast<ngx_http_pairguard_main_conf_t*>(ngx_http_conf_get_module_main_conf(cf, ngx_http_pairguard_module));
    // the policies' slots: their order in the configuration
    auto** policies = static_cast<ngx_http_pairguard_policy_t**>(pmcf->policies.elts);
    for (ngx_uint_t i = 0; i < pmcf->policies.nelts; i++) {
        policies[i]->index = i;
        auto* name = static_cast<ngx_str_t*>(ngx_array_push(&conf->names));
        if (name == nullptr) {
            return NGX_ERROR;
        }
        *name = policies[i]->name;
    }
    if (!conf->status) {
        return NGX_OK;  // nobody can read them: nothing is counted
    }
    ngx_str_t zone_name = ngx_string("pairguard_metrics");
    conf->zone =
        ngx_shared_memory_add(cf, &zone_name, zone_size(conf->names.nelts), &ngx_http_pairguard_metrics_module);
    if (conf->zone == nullptr) {
        return NGX_ERROR;
    }
    if (conf->zone->data != nullptr) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "shared zone \"%V\" is already used", &zone_name);
        return NGX_ERROR;
    }
    conf->zone->init = init_zone;
    conf->zone->data = conf;
    return NGX_OK;
}

ngx_int_t ngx_http_pairguard_metrics_init_process(ngx_cycle_t* cycle) noexcept {
    if (ngx_process != NGX_PROCESS_WORKER && ngx_process != NGX_PROCESS_SINGLE) {
        return NGX_OK;
    }
    auto* conf = static_cast<ngx_http_pairguard_metrics_conf_t*>(
        ngx_http_cycle_get_module_main_conf(cycle, ngx_http_pairguard_metrics_module));
    metrics = conf != nullptr && conf->status ? conf->block : nullptr;
    return NGX_OK;
}

}  // namespace

// ---- the hooks ---------------------------------------------------------------------

void ngx_http_pairguard_metric_decision(const ngx_http_pairguard_policy_t* p, m::Decision d) noexcept {
    if (ngx_atomic_t* slot = policy_slot(p, d)) {
        add(slot);
    }
}

void ngx_http_pairguard_metric_allowed(const ngx_http_pairguard_group_t& g) noexcept {
    for (const auto& k : g.keys) {
        ngx_http_pairguard_metric_decision(k.policy, m::allowed);
    }
}

void ngx_http_pairguard_metric_refused(const ngx_http_pairguard_group_t& g, size_t policy, bool busy,
                                       bool local) noexcept {
    if (policy >= g.keys.size()) {
        return;
    }
    const ngx_http_pairguard_policy_t* p = g.keys[policy].policy;
    bool dry_run = g.lcf != nullptr && g.lcf->dry_run;
    ngx_http_pairguard_metric_decision(p, dry_run ? m::dry_run : busy ? m::busy : m::locked);
    if (local) {
        if (ngx_atomic_t* slot = policy_slot(p, kLocalSlot)) {
            add(slot);
        }
    }
}

void ngx_http_pairguard_metric_outcome(const ngx_http_pairguard_group_t& g, pairguard::Outcome o) noexcept {
    for (const auto& k : g.keys) {
        if (ngx_atomic_t* slot = policy_slot(k.policy, kOutcomeSlot + static_cast<size_t>(o))) {
            add(slot);
        }
    }
}

void ngx_http_pairguard_metric_lockout(const ngx_http_pairguard_policy_t* p) noexcept {
    if (ngx_atomic_t* slot = policy_slot(p, kLockoutSlot)) {
        add(slot);
    }
}

void ngx_http_pairguard_metric_answer(ngx_http_request_t* r, const ngx_http_pairguard_answer_t& a) noexcept {
    if (metrics == nullptr) {
        return;
    }
    try {
        auto* lcf =
            static_cast<ngx_http_pairguard_loc_conf_t*>(ngx_http_get_module_loc_conf(r, ngx_http_pairguard_module));
        int status = static_cast<int>(a.status);
        if (lcf->pairing_op >= NGX_HTTP_PAIRGUARD_PAIRING_REQUEST &&
            lcf->pairing_op <= NGX_HTTP_PAIRGUARD_PAIRING_APPROVED) {
            add(&metrics->pairing[lcf->pairing_op - 1][m::pairing_result(status, a.body)]);
            return;
        }
        if (lcf->auth_op == 0 && !lcf->auth_require) {
            return;
        }
        // a request its token let through, then refused by the guard: not auth's answer
        ngx_http_pairguard_ctx_t* ctx = ngx_http_pairguard_get_ctx(r);
        if (ctx != nullptr && ctx->auth == ngx_http_pairguard_ctx_t::auth_e::allowed) {
            return;
        }
        m::AuthMethod method = m::session;
        switch (lcf->auth_op) {
            case NGX_HTTP_PAIRGUARD_AUTH_PASSWORD:
                method = m::password;
                break;
            case NGX_HTTP_PAIRGUARD_AUTH_CHALLENGE:
            case NGX_HTTP_PAIRGUARD_AUTH_VERIFY:
                method = m::signature;
                break;
            case NGX_HTTP_PAIRGUARD_AUTH_HAYSTACK:
                method = r->headers_in.authorization != nullptr
                             ? m::haystack_method(view(r->headers_in.authorization->value))
                             : m::scram;
                break;
            default:
                break;
        }
        bool continues = false;
        for (const auto& [name, value] : a.headers) {
            continues = continues || (name == "WWW-Authenticate" && value.rfind("SCRAM", 0) == 0);
        }
        add(&metrics->auth[method][m::auth_result(status, a.body, continues,
                                                  lcf->auth_op == NGX_HTTP_PAIRGUARD_AUTH_CHALLENGE)]);
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "pairguard: %s", e.what());
    }
}

void ngx_http_pairguard_metric_session_ok() noexcept {
    if (metrics != nullptr) {
        add(&metrics->auth[m::session][0]);
    }
}

uint64_t ngx_pairguard_metric_store_sent() noexcept {
    if (metrics == nullptr) {
        return 0;
    }
    add(&metrics->store_commands);
    return now_ns();
}

void ngx_pairguard_metric_store_done(ngx_pairguard_redis_result_e res, uint64_t sent_ns) noexcept {
    if (metrics == nullptr || sent_ns == 0) {
        return;
    }
    switch (res) {
        case ngx_pairguard_redis_result_e::ok:
            break;
        case ngx_pairguard_redis_result_e::error:
            add(&metrics->store_errors[0]);
            break;
        case ngx_pairguard_redis_result_e::timeout:
            add(&metrics->store_errors[1]);
            return;
        case ngx_pairguard_redis_result_e::down:
            add(&metrics->store_errors[2]);
            return;
    }
    // answered (a reply or an error reply): how long it took
    uint64_t took = now_ns() - sent_ns;
    size_t bucket = 0;
    while (bucket < m::kLatencyBoundsNs.size() && took > m::kLatencyBoundsNs[bucket]) {
        bucket++;
    }
    add(&metrics->latency[bucket]);
    (void)ngx_atomic_fetch_add(&metrics->latency_sum_ns, took);
}

void ngx_pairguard_metric_store_up(bool up, bool subscriber) noexcept {
    if (metrics != nullptr && !subscriber) {
        metrics->worker_up[ngx_worker % kWorkerSlots] = up ? kWorkerUp : kWorkerDown;
    }
}
