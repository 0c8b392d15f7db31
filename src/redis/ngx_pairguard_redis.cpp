#include "ngx_pairguard_redis.h"

#include <cstring>
#include <memory>

#include "../core/store_scripts.hpp"
#include "../ngx/ngx_pairguard_metrics.h"
#include "ngx_pairguard_redis_link.h"

namespace {

constexpr ngx_msec_t kBackoffMin = 50;
constexpr ngx_msec_t kBackoffMax = 2000;
// A connection (and the store) counts as back only once it has stayed up
// this long: one that completes its handshake and then fails its first
// commands (a replica answering READONLY, a round trip longer than the
// command timeout) keeps its backoff growing and is logged down once.
constexpr ngx_msec_t kStableMs = 1000;
constexpr ngx_msec_t kConnectTimeoutMin = 1000;
constexpr int kMaxRedirects = 5;
constexpr ngx_msec_t kMapRefreshWhileDown = 250;
constexpr ngx_msec_t kWatchPing = 2000;

void init_timer(ngx_event_t* ev, ngx_event_handler_pt handler, void* data, bool cancelable) {
    ngx_memzero(ev, sizeof(ngx_event_t));
    ev->handler = handler;
    ev->data = data;
    ev->log = ngx_cycle->log;
    ev->cancelable = cancelable ? 1 : 0;
}

std::string resp_command(std::initializer_list<std::string_view> args) {
    std::string out = pairguard::resp_array_header(args.size());
    for (std::string_view a : args) {
        out += "$" + std::to_string(a.size()) + "\r\n";
        out.append(a);
        out += "\r\n";
    }
    return out;
}

// One bulk string of a RESP command at `pos`: its text, and `pos` moved past it.
bool bulk_at(const std::string& s, size_t& pos, std::string_view& out) {
    if (pos >= s.size() || s[pos] != '$') {
        return false;
    }
    size_t crlf = s.find("\r\n", pos);
    if (crlf == std::string::npos) {
        return false;
    }
    size_t len = 0;
    for (size_t i = pos + 1; i < crlf; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        len = len * 10 + static_cast<size_t>(s[i] - '0');
    }
    if (crlf + 2 + len + 2 > s.size()) {
        return false;
    }
    out = std::string_view(s).substr(crlf + 2, len);
    pos = crlf + 2 + len + 2;
    return true;
}

std::string_view reply_text(const redisReply* r) {
    if (r == nullptr || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS && r->type != REDIS_REPLY_ERROR)) {
        return {};
    }
    return std::string_view(r->str, r->len);
}

// hiredis' reply tree as the core's Reply.
pairguard::Reply core_reply(const redisReply* r) {
    using pairguard::Reply;
    if (r == nullptr) {
        return Reply::nil_reply();
    }
    switch (r->type) {
    case REDIS_REPLY_INTEGER:
        return Reply::of_integer(r->integer);
    case REDIS_REPLY_STRING:
        return Reply::of_string(std::string(r->str, r->len));
    case REDIS_REPLY_STATUS: {
        Reply s = Reply::of_string(std::string(r->str, r->len));
        s.type = Reply::Type::status;
        return s;
    }
    case REDIS_REPLY_ERROR:
        return Reply::of_error(std::string(r->str, r->len));
    case REDIS_REPLY_ARRAY: {
        std::vector<Reply> e;
        e.reserve(r->elements);
        for (size_t i = 0; i < r->elements; i++) {
            e.push_back(core_reply(r->element[i]));
        }
        return Reply::of_array(std::move(e));
    }
    default:
        return Reply::nil_reply();
    }
}

}  // namespace

// A server this worker talks to: its link, its handshake state, its own
// reconnection timer. One for a single Redis or a Sentinel master; one per
// master in Redis Cluster.
struct ngx_pairguard_redis_node_t {
    enum class state_e { idle, connecting, up };

    ngx_pairguard_redis_t* client;
    pairguard::RedisEndpoint ep;
    std::vector<std::string> preresolved;
    std::unique_ptr<ngx_pairguard_redis_link_t> link;
    state_e state = state_e::idle;
    bool failed = false;     // lost since it was last up: take no commands
    bool wanted = true;      // cluster: still a master in the map
    ngx_msec_t backoff = 0;
    ngx_msec_t up_at = 0;    // when it was last up (kStableMs)
    ngx_event_t reconnect_ev;
    ngx_event_t connect_timer;
    bool connect_extended = false;  // the connect timer's one more period (on_connect_timeout)
    std::deque<ngx_pairguard_redis_command_t*> queued;  // until it is up

    ngx_pairguard_redis_node_t(ngx_pairguard_redis_t* c, const pairguard::RedisEndpoint& e,
                               const std::vector<std::string>* pre)
        : client(c), ep(e) {
        if (pre != nullptr) {
            preresolved = *pre;
        }
        link = std::make_unique<ngx_pairguard_redis_link_t>(c->conf_, "redis");
        link->target(ep, &preresolved);
        init_timer(&reconnect_ev, on_reconnect, this, true);
        init_timer(&connect_timer, on_connect_timeout, this, true);
    }
    ~ngx_pairguard_redis_node_t() { stop_timers(); }

    void stop_timers() {
        if (reconnect_ev.timer_set) {
            ngx_del_timer(&reconnect_ev);
        }
        if (connect_timer.timer_set) {
            ngx_del_timer(&connect_timer);
        }
    }

    bool takes_commands() const {
        return state == state_e::up || (state == state_e::connecting && !failed);
    }

    static void on_reconnect(ngx_event_t* ev) noexcept {
        auto* n = static_cast<ngx_pairguard_redis_node_t*>(ev->data);
        n->client->connect_node(n);
    }
    // The connection and its handshake not done in time. The worker may be
    // the one that was late (a long loop iteration: timers fire before the
    // events that came meanwhile): what the socket already holds is taken
    // first, and a handshake that moved gets one more period, once.
    static void on_connect_timeout(ngx_event_t* ev) noexcept {
        auto* n = static_cast<ngx_pairguard_redis_node_t*>(ev->data);
        if (!n->connect_extended) {
            n->connect_extended = true;  // before: callbacks may start another attempt
            if (n->link->catch_up()) {
                if (n->state == state_e::connecting && !n->connect_timer.timer_set) {
                    n->client->arm_setup_timer(&n->connect_timer);
                }
                return;
            }
        }
        n->client->retire(n, "connect timed out");
    }
};

ngx_pairguard_redis_command_t::ngx_pairguard_redis_command_t(ngx_pairguard_redis_t* client,
                                                             const pairguard::StoreScript& script,
                                                             pairguard::RespArgs&& tail,
                                                             ngx_pairguard_redis_cb_t cb, bool plain)
    : client_(client), script_(script), cb_(std::move(cb)), plain_(plain) {
    if (plain) {
        tail_offset_ = 0;
        tail_count_ = tail.count;
        cmd_ = std::move(tail.data);
        // the slot of its key, the second argument (Redis Cluster only)
        size_t pos = cmd_.find("\r\n");
        pos = pos == std::string::npos ? cmd_.size() : pos + 2;  // past "*N\r\n"
        std::string_view name, key;
        if (client->cluster() && bulk_at(cmd_, pos, name) && bulk_at(cmd_, pos, key)) {
            slot_ = pairguard::cluster_key_slot(key);
            has_slot_ = true;
        }
        init_timer(&timer_, ngx_pairguard_redis_t::on_command_timeout, this, false);
        return;
    }
    if (tail.head == 0) {
        pairguard::RespArgs full = pairguard::resp_evalsha(script.sha1, tail.count);
        full.add_encoded(tail.data, tail.count);
        tail = std::move(full);
    }
    tail_offset_ = tail.head;
    tail_count_ = tail.count;
    cmd_ = std::move(tail.data);
    // the slot of the first key (Redis Cluster only); none when numkeys is 0
    size_t pos = tail_offset_;
    std::string_view numkeys, key;
    if (client->cluster() && bulk_at(cmd_, pos, numkeys) && numkeys != "0" && bulk_at(cmd_, pos, key)) {
        slot_ = pairguard::cluster_key_slot(key);
        has_slot_ = true;
    }
    // not cancelable: a request waits on it, and it is what notices a hang
    init_timer(&timer_, ngx_pairguard_redis_t::on_command_timeout, this, false);
}

ngx_pairguard_redis_command_t::~ngx_pairguard_redis_command_t() {
    if (timer_.timer_set) {
        ngx_del_timer(&timer_);
    }
}

ngx_pairguard_redis_t::ngx_pairguard_redis_t(const ngx_pairguard_redis_conf_t& conf)
    : conf_(conf), topology_(conf.spec.topology) {
    init_timer(&retry_ev_, on_retry, this, true);
    init_timer(&watch_retry_ev_, on_watch_retry, this, true);
    init_timer(&map_timer_, on_map_timeout, this, true);
    init_timer(&ask_timer_, on_ask_timeout, this, true);
    init_timer(&watch_timer_, on_watch_timer, this, true);
    init_timer(&stable_ev_, on_stable, this, true);
}

// Counted from now: the clock read afresh. A long loop iteration (a
// blocking handler) leaves nginx's cached clock behind, and a timer armed
// on it would be short by that much (the cluster map asked at the end of
// such an iteration was given up at once).
void ngx_pairguard_redis_t::arm_setup_timer(ngx_event_t* ev) {
    ngx_time_update();
    if (ev->timer_set) {
        ngx_del_timer(ev);
    }
    ngx_add_timer(ev, ngx_max(conf_.timeout * 5, kConnectTimeoutMin));
}

// The sentinel asked does not connect or answer in time: the next one. What
// its socket already holds is taken first (the worker may be the one that
// was late, as on_connect_timeout says); an exchange that moved gets one
// more period, once.
void ngx_pairguard_redis_t::on_ask_timeout(ngx_event_t* ev) noexcept {
    auto* self = static_cast<ngx_pairguard_redis_t*>(ev->data);
    if (self->exiting_ || !self->sentinel_link_) {
        return;
    }
    if (!self->ask_extended_) {
        uint64_t round = self->ask_round_;
        bool moved = self->sentinel_link_->catch_up();
        if (self->ask_round_ != round || self->exiting_) {
            return;  // answered meanwhile, or on to the next one
        }
        if (moved) {
            self->ask_extended_ = true;
            self->arm_setup_timer(&self->ask_timer_);
            return;
        }
    }
    self->sentinel_link_->on_lost = nullptr;
    self->sentinel_link_->close(nullptr, false);
    self->ask_sentinel(self->ask_tried_ + 1);
}

// The +switch-master subscription is pinged; a sentinel silent for three
// periods (or never connected) is left for the next one.
void ngx_pairguard_redis_t::on_watch_timer(ngx_event_t* ev) noexcept {
    auto* self = static_cast<ngx_pairguard_redis_t*>(ev->data);
    if (self->exiting_ || !self->sentinel_watch_) {
        return;
    }
    ngx_pairguard_redis_link_t* l = self->sentinel_watch_.get();
    bool was_open = l->open_or_opening();
    l->catch_up();  // a pong already in the socket counts (as on_connect_timeout says)
    if (self->exiting_) {
        return;
    }
    if (was_open && !l->open_or_opening()) {
        // found refused or lost just now: its on_lost (posted) moves on
        ngx_add_timer(&self->watch_timer_, kWatchPing);
        return;
    }
    if (ngx_current_msec - self->watch_seen_ > 3 * kWatchPing) {
        l->on_lost = nullptr;
        l->close(nullptr, false);
        self->watch_sentinels();  // the next sentinel
        return;
    }
    if (l->ready()) {
        l->send(resp_command({"PING"}), nullptr, true);
    } else if (!l->open_or_opening() && !self->watch_retry_ev_.timer_set) {
        self->watch_sentinels();
        return;
    }
    ngx_add_timer(&self->watch_timer_, kWatchPing);
}

ngx_pairguard_redis_t::~ngx_pairguard_redis_t() {
    stop();
}

void ngx_pairguard_redis_t::subscribe(std::string channel, std::function<void(std::string_view)> on_message,
                                      std::function<void()> on_resync) {
    channel_ = std::move(channel);
    on_message_ = std::move(on_message);
    on_resync_ = std::move(on_resync);
    conf_.label += " (events)";
}

bool ngx_pairguard_redis_t::accepting() const {
    if (exiting_ || !channel_.empty()) {
        return false;
    }
    if (topology_ == pairguard::RedisTopology::cluster) {
        return map_ready_ || !failed_once_;
    }
    if (primary_ != nullptr && primary_->state == node_t::state_e::up) {
        return true;
    }
    return !failed_once_;
}

void ngx_pairguard_redis_t::start() {
    switch (topology_) {
        case pairguard::RedisTopology::single:
            primary_ = node_for(conf_.spec.endpoints[0], true);
            connect_node(primary_);
            break;
        case pairguard::RedisTopology::sentinel:
            watch_sentinels();
            discover();
            break;
        case pairguard::RedisTopology::cluster:
            refresh_map();
            break;
    }
}

void ngx_pairguard_redis_t::stop() {
    exiting_ = true;
    if (retry_ev_.timer_set) {
        ngx_del_timer(&retry_ev_);
    }
    if (watch_retry_ev_.timer_set) {
        ngx_del_timer(&watch_retry_ev_);
    }
    for (ngx_event_t* t : {&map_timer_, &ask_timer_, &watch_timer_, &stable_ev_}) {
        if (t->timer_set) {
            ngx_del_timer(t);
        }
    }
    if (sentinel_link_) {
        sentinel_link_->on_lost = nullptr;
        sentinel_link_->close(nullptr, false);
    }
    if (sentinel_watch_) {
        sentinel_watch_->on_lost = nullptr;
        sentinel_watch_->close(nullptr, false);
    }
    for (auto& n : nodes_) {
        n->stop_timers();
        n->link->on_lost = nullptr;
        n->link->close(nullptr, false);  // pending commands are freed, callbacks not run
        n->state = node_t::state_e::idle;
        for (ngx_pairguard_redis_command_t* cmd : n->queued) {
            delete cmd;
        }
        n->queued.clear();
    }
    while (!unrouted_.empty()) {
        ngx_pairguard_redis_command_t* cmd = unrouted_.front();
        unrouted_.pop_front();
        delete cmd;
    }
}

ngx_pairguard_redis_node_t* ngx_pairguard_redis_t::node_for(const pairguard::RedisEndpoint& ep, bool create) {
    std::string label = ep.label();
    for (auto& n : nodes_) {
        if (n->ep.label() == label) {
            return n.get();
        }
    }
    if (!create) {
        return nullptr;
    }
    // the addresses found at configuration time, for a configured name
    const std::vector<std::string>* pre = nullptr;
    for (size_t i = 0; i < conf_.spec.endpoints.size() && i < conf_.addrs.size(); i++) {
        if (conf_.spec.endpoints[i].label() == label) {
            pre = &conf_.addrs[i];
        }
    }
    nodes_.push_back(std::make_unique<node_t>(this, ep, pre));
    return nodes_.back().get();
}

void ngx_pairguard_redis_t::connect_node(node_t* n) {
    if (exiting_ || ngx_exiting || ngx_terminate || ngx_quit || n->state != node_t::state_e::idle) {
        return;
    }
    if (n->reconnect_ev.timer_set) {
        ngx_del_timer(&n->reconnect_ev);
    }
    n->state = node_t::state_e::connecting;
    n->link->on_ready = [this, n]() { handshake(n); };
    n->link->on_lost = [this, n](const char* reason) { node_down(n, reason); };
    n->link->on_push = nullptr;
    if (!channel_.empty()) {
        n->link->on_push = [this, n](redisReply* r) {
            if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 || r->element[0]->type != REDIS_REPLY_STRING) {
                return;
            }
            std::string_view kind(r->element[0]->str, r->element[0]->len);
            try {
                if (kind == "subscribe") {
                    node_up(n);
                    if (on_resync_) {
                        on_resync_();
                    }
                } else if (kind == "message" && r->element[2]->type == REDIS_REPLY_STRING && on_message_) {
                    on_message_(std::string_view(r->element[2]->str, r->element[2]->len));
                }
            } catch (const std::exception& e) {
                ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0, "pairguard: event handler failed: %s", e.what());
            }
        };
    }
    n->connect_extended = false;
    arm_setup_timer(&n->connect_timer);
    n->link->open();
}

// AUTH, SELECT, ROLE (a Sentinel master must still be one), then the guard's
// script (or SUBSCRIBE): the last answer marks the node up. Commands sent
// meanwhile queue behind it on the same connection.
void ngx_pairguard_redis_t::handshake(node_t* n) {
    auto check = [this, n](redisReply* r) {
        if (r == nullptr) {
            return;  // the link is gone; node_down follows
        }
        if (r->type == REDIS_REPLY_ERROR) {
            // Redis' own words (never the password): "WRONGPASS ...", "NOAUTH ..."
            std::string reason(reply_text(r).substr(0, 120));
            retire(n, reason.c_str());
        }
    };
    const pairguard::RedisSpec& s = conf_.spec;
    if (!s.password.empty()) {
        n->link->send(s.user.empty() ? resp_command({"AUTH", s.password}) : resp_command({"AUTH", s.user, s.password}),
                      check);
    }
    if (s.db != 0) {
        n->link->send(resp_command({"SELECT", std::to_string(s.db)}), check);
    }
    if (topology_ == pairguard::RedisTopology::sentinel) {
        n->link->send(resp_command({"ROLE"}), [this, n](redisReply* r) {
            if (r == nullptr) {
                return;  // the link is gone; node_down follows
            }
            if (r->type == REDIS_REPLY_ERROR) {
                // the master cannot be confirmed (an ACL user needs +role)
                std::string reason = "ROLE refused: " + std::string(reply_text(r).substr(0, 100));
                retire(n, reason.c_str());
            } else if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || reply_text(r->element[0]) != "master") {
                next_sentinel_++;  // that sentinel's answer was stale: ask another first
                retire(n, "not a master (ROLE)");
            }
        });
    }
    if (!channel_.empty()) {
        // the confirmation arrives as a push (on_push) and marks the node up
        n->link->send(resp_command({"SUBSCRIBE", channel_}), nullptr, true);
        return;
    }
    // the guard's one script; the endpoints' scripts load on first use (NOSCRIPT)
    const pairguard::StoreScript& batch = pairguard::guard_batch_script();
    n->link->send(resp_command({"SCRIPT", "LOAD", batch.source}), [this, n, check](redisReply* r) {
        check(r);
        if (r != nullptr && r->type != REDIS_REPLY_ERROR && n->state == node_t::state_e::connecting) {
            node_up(n);
        }
    });
}

void ngx_pairguard_redis_t::node_up(node_t* n) {
    if (n->connect_timer.timer_set) {
        ngx_del_timer(&n->connect_timer);
    }
    n->state = node_t::state_e::up;
    n->failed = false;
    n->up_at = ngx_current_msec;  // its backoff starts again once it stays up (node_down)
    epoch_++;
    std::deque<ngx_pairguard_redis_command_t*> q;
    q.swap(n->queued);
    for (ngx_pairguard_redis_command_t* cmd : q) {
        send_to(n, cmd, cmd->asking_);
    }
    if (conf_.ssl != nullptr) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0, "pairguard: redis %s connected with TLS%s",
                      n->link->label().c_str(), n->link->session_reused() ? ", session reused" : "");
    }
    if (topology_ == pairguard::RedisTopology::cluster && channel_.empty() && !map_ready_ && !map_loading_) {
        refresh_map();  // the first node up reads the map
        return;
    }
    if (topology_ != pairguard::RedisTopology::cluster || !channel_.empty()) {
        store_up();
        flush_unrouted();
        return;
    }
    // cluster: up again when every master of the map is
    for (node_t* m : slots_) {
        if (m != nullptr && m->state != node_t::state_e::up) {
            return;
        }
    }
    store_up();
}

void ngx_pairguard_redis_t::node_down(node_t* n, const char* reason) {
    if (n->connect_timer.timer_set) {
        ngx_del_timer(&n->connect_timer);
    }
    bool was_up = n->state == node_t::state_e::up;
    // up for a while: a new failure, whose reconnection starts from the
    // shortest wait; up only briefly: the same failure, the wait grows on
    bool was_stable = was_up && ngx_current_msec - n->up_at >= kStableMs;
    if (was_stable) {
        n->backoff = 0;
        backoff_ = 0;
    }
    n->state = node_t::state_e::idle;
    n->failed = true;
    std::deque<ngx_pairguard_redis_command_t*> q;
    q.swap(n->queued);
    for (ngx_pairguard_redis_command_t* cmd : q) {
        finish(cmd, ngx_pairguard_redis_result_e::down, nullptr);
    }
    if (exiting_) {
        return;
    }
    std::string why = reason != nullptr ? reason : "unknown";
    if (topology_ == pairguard::RedisTopology::cluster) {
        why = n->ep.label() + ": " + why;
    }
    store_down(why.c_str());

    switch (topology_) {
        case pairguard::RedisTopology::single:
            break;
        case pairguard::RedisTopology::sentinel:
            // ask the sentinels again: the master may have moved
            if (!retry_ev_.timer_set) {
                backoff_ = backoff_ == 0 ? kBackoffMin : ngx_min(backoff_ * 2, kBackoffMax);
                ngx_add_timer(&retry_ev_, was_stable ? 0 : backoff_);
            }
            return;
        case pairguard::RedisTopology::cluster:
            if (!channel_.empty()) {
                seed_turn_++;  // the subscription moves to the next seed
                if (!retry_ev_.timer_set) {
                    backoff_ = backoff_ == 0 ? kBackoffMin : ngx_min(backoff_ * 2, kBackoffMax);
                    ngx_add_timer(&retry_ev_, backoff_);
                }
                return;
            }
            // the map may have changed (a failover): read it again soon
            if (!retry_ev_.timer_set && !map_loading_) {
                ngx_add_timer(&retry_ev_, kBackoffMin * 4);
            }
            if (!n->wanted) {
                return;  // no longer a master: no reconnection
            }
            break;
    }
    n->backoff = n->backoff == 0 ? kBackoffMin : ngx_min(n->backoff * 2, kBackoffMax);
    if (!n->reconnect_ev.timer_set) {
        ngx_add_timer(&n->reconnect_ev, n->backoff);
    }
}

void ngx_pairguard_redis_t::store_down(const char* reason) {
    failed_once_ = true;
    if (stable_ev_.timer_set) {
        ngx_del_timer(&stable_ev_);  // up only briefly: still the same outage
    }
    // the gauge follows every change (store_up sets it at once: a store up
    // only briefly still reads down again), the log line the outage
    ngx_pairguard_metric_store_up(false, !channel_.empty());
    if (!down_logged_) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0, "pairguard: redis %s unavailable (%s), store_down %s",
                      conf_.label.c_str(), reason, conf_.down_mode.c_str());
        down_logged_ = true;
    }
    // commands that waited for a first connection wait no longer
    while (!unrouted_.empty()) {
        ngx_pairguard_redis_command_t* cmd = unrouted_.front();
        unrouted_.pop_front();
        finish(cmd, ngx_pairguard_redis_result_e::down, nullptr);
    }
}

void ngx_pairguard_redis_t::store_up() {
    ngx_pairguard_metric_store_up(true, !channel_.empty());
    // back once it stays up (on_stable): a store that fails again at once
    // is the same outage, logged once, its backoff growing on
    if (!stable_ev_.timer_set && !exiting_) {
        ngx_add_timer(&stable_ev_, kStableMs);
    }
}

void ngx_pairguard_redis_t::on_stable(ngx_event_t* ev) noexcept {
    auto* self = static_cast<ngx_pairguard_redis_t*>(ev->data);
    if (self->exiting_) {
        return;
    }
    self->backoff_ = 0;
    if (self->down_logged_) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0, "pairguard: redis %s available", self->conf_.label.c_str());
        self->down_logged_ = false;
    }
}

void ngx_pairguard_redis_t::on_retry(ngx_event_t* ev) noexcept {
    auto* self = static_cast<ngx_pairguard_redis_t*>(ev->data);
    if (self->exiting_) {
        return;
    }
    switch (self->topology_) {
        case pairguard::RedisTopology::single:
            break;
        case pairguard::RedisTopology::sentinel:
            self->discover();
            break;
        case pairguard::RedisTopology::cluster:
            if (!self->channel_.empty()) {
                const auto& seeds = self->conf_.spec.endpoints;
                node_t* n = self->node_for(seeds[self->seed_turn_ % seeds.size()], true);
                self->primary_ = n;
                self->connect_node(n);
            } else {
                self->refresh_map();
            }
            break;
    }
}

// ---- Sentinel ----

void ngx_pairguard_redis_t::discover() {
    if (exiting_) {
        return;
    }
    if (!sentinel_link_) {
        sentinel_link_ = std::make_unique<ngx_pairguard_redis_link_t>(conf_, "sentinel");
    }
    if (sentinel_link_->open_or_opening()) {
        return;  // already asking
    }
    ask_sentinel(0);
}

void ngx_pairguard_redis_t::ask_sentinel(size_t tried) {
    const auto& sentinels = conf_.spec.endpoints;
    if (tried >= sentinels.size()) {
        store_down("no sentinel knows the master");
        backoff_ = backoff_ == 0 ? kBackoffMin : ngx_min(backoff_ * 2, kBackoffMax);
        if (!retry_ev_.timer_set) {
            ngx_add_timer(&retry_ev_, backoff_);
        }
        return;
    }
    size_t i = (next_sentinel_ + tried) % sentinels.size();
    ngx_pairguard_redis_link_t* l = sentinel_link_.get();
    // a sentinel that does not connect, or does not answer, in time: the next
    ask_tried_ = tried;
    ask_round_++;
    ask_extended_ = false;
    arm_setup_timer(&ask_timer_);
    l->target(sentinels[i], i < conf_.addrs.size() ? &conf_.addrs[i] : nullptr);
    auto answered = std::make_shared<bool>(false);
    l->on_lost = [this, tried, answered](const char*) {
        if (!*answered) {
            *answered = true;
            ask_sentinel(tried + 1);
        }
    };
    l->on_ready = [this, l, i, tried, answered]() {
        const pairguard::RedisSpec& s = conf_.spec;
        if (!s.sentinel_password.empty()) {
            l->send(s.sentinel_user.empty() ? resp_command({"AUTH", s.sentinel_password})
                                            : resp_command({"AUTH", s.sentinel_user, s.sentinel_password}),
                    nullptr);
        }
        l->send(resp_command({"SENTINEL", "get-master-addr-by-name", s.master_name}),
                [this, l, i, tried, answered](redisReply* r) {
                    if (r == nullptr) {
                        return;  // on_lost asks the next one
                    }
                    *answered = true;
                    ask_round_++;
                    if (ask_timer_.timer_set) {
                        ngx_del_timer(&ask_timer_);
                    }
                    pairguard::RedisEndpoint ep;
                    bool ok = r->type == REDIS_REPLY_ARRAY && r->elements == 2
                              && r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING;
                    if (ok) {
                        ep.host.assign(r->element[0]->str, r->element[0]->len);
                        ep.port = atoi(std::string(reply_text(r->element[1])).c_str());
                        ok = !ep.host.empty() && ep.port > 0 && ep.port < 65536;
                    }
                    l->close(nullptr, false);
                    if (!ok) {
                        ask_sentinel(tried + 1);
                        return;
                    }
                    next_sentinel_ = i;  // the one that answered first next time
                    node_t* n = node_for(ep, true);
                    if (primary_ != nullptr && primary_ != n && primary_->state != node_t::state_e::idle) {
                        drop_node(primary_);  // the master moved: its commands fail now
                    }
                    primary_ = n;
                    if (n->reconnect_ev.timer_set) {
                        ngx_del_timer(&n->reconnect_ev);
                    }
                    connect_node(n);
                });
    };
    l->open();
}

// A subscription to +switch-master on one sentinel (the next one when it is
// lost): a failover reconnects at once instead of at the next timeout.
void ngx_pairguard_redis_t::watch_sentinels() {
    if (exiting_) {
        return;
    }
    if (!sentinel_watch_) {
        sentinel_watch_ = std::make_unique<ngx_pairguard_redis_link_t>(conf_, "sentinel");
    }
    ngx_pairguard_redis_link_t* l = sentinel_watch_.get();
    const auto& sentinels = conf_.spec.endpoints;
    size_t i = seed_turn_++ % sentinels.size();
    l->target(sentinels[i], i < conf_.addrs.size() ? &conf_.addrs[i] : nullptr);
    l->on_ready = [this, l]() {
        const pairguard::RedisSpec& s = conf_.spec;
        if (!s.sentinel_password.empty()) {
            // its +OK (or error) comes to on_push like the subscription's answers
            l->send(s.sentinel_user.empty() ? resp_command({"AUTH", s.sentinel_password})
                                            : resp_command({"AUTH", s.sentinel_user, s.sentinel_password}),
                    nullptr, true);
        }
        l->send(resp_command({"SUBSCRIBE", "+switch-master"}), nullptr, true);
    };
    watch_seen_ = ngx_current_msec;
    if (!watch_timer_.timer_set) {
        ngx_add_timer(&watch_timer_, kWatchPing);
    }
    l->on_push = [this](redisReply* r) {
        watch_seen_ = ngx_current_msec;  // anything, PING's pong included
        if (r->type == REDIS_REPLY_ERROR) {
            // AUTH or SUBSCRIBE refused: say so once, try the next sentinel later
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0, "pairguard: redis %s: sentinel refused the +switch-master subscription: %*s",
                          conf_.label.c_str(), static_cast<size_t>(ngx_min(r->len, 120)), r->str);
            sentinel_watch_->close(nullptr, false);
            return;
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 || reply_text(r->element[0]) != "message") {
            return;
        }
        // "NAME OLD_IP OLD_PORT NEW_IP NEW_PORT"
        std::string_view msg = reply_text(r->element[2]);
        const std::string& name = conf_.spec.master_name;
        if (msg.size() > name.size() && msg.substr(0, name.size()) == name && msg[name.size()] == ' ') {
            ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0, "pairguard: redis %s: sentinel reports +switch-master %*s",
                          conf_.label.c_str(), msg.size(), msg.data());
            // "NAME OLD_IP OLD_PORT NEW_IP NEW_PORT": nothing to do when the
            // worker already talks to the new master
            std::string rest(msg.substr(name.size() + 1));
            std::string oip, oport, nip, nport;
            size_t a = rest.find(' '), b = a == std::string::npos ? a : rest.find(' ', a + 1),
                   c = b == std::string::npos ? b : rest.find(' ', b + 1);
            if (c != std::string::npos) {
                nip = rest.substr(b + 1, c - b - 1);
                nport = rest.substr(c + 1);
            }
            bool already = primary_ != nullptr && primary_->state == node_t::state_e::up && !nip.empty()
                           && primary_->ep.host == nip && std::to_string(primary_->ep.port) == nport;
            if (!already) {
                if (primary_ != nullptr && primary_->state != node_t::state_e::idle) {
                    drop_node(primary_);
                    store_down("+switch-master");
                }
                backoff_ = 0;
                discover();
            }
        }
    };
    l->on_lost = [this](const char*) {
        // try the next sentinel a little later
        if (!watch_retry_ev_.timer_set && !exiting_) {
            ngx_add_timer(&watch_retry_ev_, kBackoffMax / 2);
        }
    };
    l->open();
}

void ngx_pairguard_redis_t::on_watch_retry(ngx_event_t* ev) noexcept {
    auto* self = static_cast<ngx_pairguard_redis_t*>(ev->data);
    if (!self->exiting_ && self->sentinel_watch_ && !self->sentinel_watch_->open_or_opening()) {
        self->watch_sentinels();
    }
}

// A node given up: its connection closed (every command awaited there
// hears of it), then reconnection or rediscovery as the topology wants.
void ngx_pairguard_redis_t::retire(node_t* n, const char* reason) {
    n->link->close(nullptr, false);
    node_down(n, reason);
}

// A node left without reconnecting (a Sentinel master that moved).
void ngx_pairguard_redis_t::drop_node(node_t* n) {
    n->stop_timers();
    n->link->close(nullptr, false);
    n->state = node_t::state_e::idle;
    n->failed = true;
    std::deque<ngx_pairguard_redis_command_t*> q;
    q.swap(n->queued);
    for (ngx_pairguard_redis_command_t* cmd : q) {
        finish(cmd, ngx_pairguard_redis_result_e::down, nullptr);
    }
}

// ---- Cluster ----

void ngx_pairguard_redis_t::refresh_map() {
    if (exiting_ || map_loading_) {
        return;
    }
    if (!channel_.empty()) {
        // a subscription needs no map: PUBLISH reaches every node
        const auto& seeds = conf_.spec.endpoints;
        primary_ = node_for(seeds[seed_turn_ % seeds.size()], true);
        connect_node(primary_);
        return;
    }
    // any node that is up answers CLUSTER SLOTS (a master of the map first,
    // one that serves traffic and so has its hangs noticed); else a seed
    node_t* ask = nullptr;
    for (auto& n : nodes_) {
        if (n->state == node_t::state_e::up && (ask == nullptr || (n->wanted && !ask->wanted))) {
            ask = n.get();
        }
    }
    if (ask == nullptr) {
        const auto& seeds = conf_.spec.endpoints;
        for (size_t k = 0; k < seeds.size() && ask == nullptr; k++) {
            node_t* n = node_for(seeds[(seed_turn_ + k) % seeds.size()], true);
            if (n->state == node_t::state_e::idle && !n->reconnect_ev.timer_set) {
                ask = n;
            }
        }
        seed_turn_++;
        if (ask != nullptr) {
            connect_node(ask);  // node_up calls refresh_map again
        } else if (!retry_ev_.timer_set) {
            backoff_ = backoff_ == 0 ? kBackoffMin : ngx_min(backoff_ * 2, kBackoffMax);
            ngx_add_timer(&retry_ev_, backoff_);
        }
        return;
    }
    map_loading_ = true;
    map_node_ = ask;
    map_extended_ = false;
    arm_setup_timer(&map_timer_);
    bool sent = ask->link->send(resp_command({"CLUSTER", "SLOTS"}), [this, ask](redisReply* r) {
        map_loading_ = false;
        map_node_ = nullptr;
        if (map_timer_.timer_set) {
            ngx_del_timer(&map_timer_);
        }
        if (exiting_) {
            return;
        }
        if (r == nullptr || !apply_slots(ask, r)) {
            std::string why = r == nullptr ? "connection lost"
                              : r->type == REDIS_REPLY_ERROR ? std::string(reply_text(r).substr(0, 120))
                                                             : "unexpected reply";
            store_down(("cannot read the cluster map from " + ask->ep.label() + ": " + why).c_str());
            if (!retry_ev_.timer_set) {
                backoff_ = backoff_ == 0 ? kBackoffMin : ngx_min(backoff_ * 2, kBackoffMax);
                ngx_add_timer(&retry_ev_, backoff_);
            }
            return;
        }
        flush_unrouted();
    });
    if (!sent) {
        map_loading_ = false;
        map_node_ = nullptr;
        ngx_del_timer(&map_timer_);
    }
}

// CLUSTER SLOTS unanswered: that node is given up (its connection, and the
// commands on it, with it) and the map is asked elsewhere. What its socket
// already holds is taken first (the worker may be the one that was late, as
// on_connect_timeout says); a read that moved gets one more period, once.
void ngx_pairguard_redis_t::on_map_timeout(ngx_event_t* ev) noexcept {
    auto* self = static_cast<ngx_pairguard_redis_t*>(ev->data);
    node_t* n = self->map_node_;
    if (n != nullptr && !self->map_extended_ && !self->exiting_) {
        bool moved = n->link->catch_up();
        if (!self->map_loading_ || self->map_node_ != n || self->exiting_) {
            return;  // answered meanwhile, or its connection went
        }
        if (moved) {
            self->map_extended_ = true;
            self->arm_setup_timer(&self->map_timer_);
            return;
        }
    }
    self->map_loading_ = false;
    self->map_node_ = nullptr;
    if (n != nullptr && !self->exiting_) {
        self->retire(n, "CLUSTER SLOTS timed out");
    }
    if (!self->retry_ev_.timer_set && !self->exiting_) {
        ngx_add_timer(&self->retry_ev_, kBackoffMin);
    }
}

// CLUSTER SLOTS: [[start, end, [host, port, id...], replicas...]...]
bool ngx_pairguard_redis_t::apply_slots(node_t* from, const redisReply* r) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        return false;
    }
    std::vector<node_t*> slots(pairguard::kClusterSlots, nullptr);
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply* e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 || e->element[0]->type != REDIS_REPLY_INTEGER
            || e->element[1]->type != REDIS_REPLY_INTEGER || e->element[2]->type != REDIS_REPLY_ARRAY
            || e->element[2]->elements < 2 || e->element[2]->element[1]->type != REDIS_REPLY_INTEGER) {
            return false;
        }
        long long lo = e->element[0]->integer, hi = e->element[1]->integer;
        if (lo < 0 || hi >= pairguard::kClusterSlots || lo > hi) {
            return false;
        }
        pairguard::RedisEndpoint ep;
        ep.host = std::string(reply_text(e->element[2]->element[0]));
        if (ep.host.empty() || ep.host == "?") {
            ep.host = from->ep.host;  // "unknown endpoint": the node that answered
        }
        long long port = e->element[2]->element[1]->integer;
        if (port < 1 || port > 65535) {
            return false;
        }
        ep.port = static_cast<int>(port);
        node_t* n = node_for(ep, true);
        for (long long s = lo; s <= hi; s++) {
            slots[static_cast<size_t>(s)] = n;
        }
    }
    for (auto& n : nodes_) {
        n->wanted = false;
    }
    for (node_t* n : slots) {
        if (n != nullptr) {
            n->wanted = true;
        }
    }
    slots_.swap(slots);
    map_ready_ = true;
    bool all_up = true;
    for (auto& n : nodes_) {
        if (n->wanted && n->state == node_t::state_e::idle && !n->reconnect_ev.timer_set) {
            connect_node(n.get());  // one connection per master, scripts loaded
        }
        if (n->wanted && n->state != node_t::state_e::up) {
            all_up = false;
        }
    }
    if (all_up) {
        store_up();
    } else if (!retry_ev_.timer_set) {
        // a master is down: its replica may be promoted any moment, and only
        // a newer map says so
        ngx_add_timer(&retry_ev_, kMapRefreshWhileDown);
    }
    return true;
}

void ngx_pairguard_redis_t::flush_unrouted() {
    std::deque<ngx_pairguard_redis_command_t*> q;
    q.swap(unrouted_);
    for (ngx_pairguard_redis_command_t* cmd : q) {
        route(cmd);
    }
}

// ---- commands ----

ngx_pairguard_redis_command_t* ngx_pairguard_redis_t::eval(const pairguard::StoreScript& script,
                                                           pairguard::RespArgs&& tail,
                                                           ngx_pairguard_redis_cb_t cb) {
    if (!accepting()) {
        return nullptr;
    }
    if (tail.head != 0 && tail.count != tail.declared) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0, "pairguard: script %s given %uz arguments, %uz declared",
                      script.name.data(), tail.count, tail.declared);
        return nullptr;
    }
    return submit(std::make_unique<ngx_pairguard_redis_command_t>(this, script, std::move(tail), std::move(cb)));
}

ngx_pairguard_redis_command_t* ngx_pairguard_redis_t::command(const pairguard::StoreScript& name,
                                                              pairguard::RespArgs&& full, ngx_pairguard_redis_cb_t cb) {
    if (!accepting()) {
        return nullptr;
    }
    return submit(std::make_unique<ngx_pairguard_redis_command_t>(this, name, std::move(full), std::move(cb), true));
}

ngx_pairguard_redis_command_t* ngx_pairguard_redis_t::submit(std::unique_ptr<ngx_pairguard_redis_command_t> cmd) {
    // where it goes now: a node taking commands, or the queue of a first
    // connection still being made; else nothing is queued
    node_t* n = nullptr;
    if (topology_ == pairguard::RedisTopology::cluster) {
        if (map_ready_) {
            n = slots_[cmd->has_slot_ ? cmd->slot_ : 0];
            if (n == nullptr || !n->takes_commands()) {
                return nullptr;
            }
        }
    } else if (primary_ != nullptr && primary_->takes_commands()) {
        n = primary_;
    }
    if (n == nullptr && failed_once_) {
        return nullptr;
    }
    // counted from now: a command made at the end of a long loop iteration
    // (a blocking handler ran after the request that made it) would have a
    // timer already due on nginx's cached clock, and be given up before
    // Redis could answer. One clock read per command (per batch).
    ngx_time_update();
    ngx_add_timer(&cmd->timer_, conf_.timeout);
    cmd->sent_ns_ = ngx_pairguard_metric_store_sent();
    if (n == nullptr) {
        unrouted_.push_back(cmd.get());
    } else if (!try_send(n, cmd.get(), false)) {
        return nullptr;
    }
    return cmd.release();  // in flight until finish()
}

ngx_pairguard_redis_command_t* ngx_pairguard_redis_t::eval(const pairguard::StoreScript& script,
                                                           const std::vector<std::string>& keys,
                                                           const std::vector<std::string>& args,
                                                           ngx_pairguard_redis_cb_t cb) {
    pairguard::RespArgs tail;
    tail.add(static_cast<int64_t>(keys.size()));
    for (const auto& k : keys) {
        tail.add(k);
    }
    for (const auto& a : args) {
        tail.add(a);
    }
    return eval(script, std::move(tail), std::move(cb));
}

void ngx_pairguard_redis_t::route(ngx_pairguard_redis_command_t* cmd) {
    node_t* n = nullptr;
    if (topology_ == pairguard::RedisTopology::cluster) {
        n = map_ready_ ? slots_[cmd->has_slot_ ? cmd->slot_ : 0] : nullptr;
    } else {
        n = primary_;
    }
    if (n == nullptr || !n->takes_commands()) {
        finish(cmd, ngx_pairguard_redis_result_e::down, nullptr);
        return;
    }
    send_to(n, cmd, false);
}

void ngx_pairguard_redis_t::send_to(node_t* n, ngx_pairguard_redis_command_t* cmd, bool asking) {
    if (!try_send(n, cmd, asking)) {
        finish(cmd, ngx_pairguard_redis_result_e::down, nullptr);
    }
}

// False (and nothing done) when the connection cannot take it.
bool ngx_pairguard_redis_t::try_send(node_t* n, ngx_pairguard_redis_command_t* cmd, bool asking) {
    cmd->node_ = n;
    cmd->asking_ = asking;
    if (n->state != node_t::state_e::up) {
        // behind the node's handshake: sent when it is up
        try {
            n->queued.push_back(cmd);
        } catch (const std::exception&) {
            return false;
        }
        return true;
    }
    bool ok = true;
    try {
        if (asking) {
            ok = n->link->send(resp_command({"ASKING"}), nullptr);  // +OK, dropped
        }
        std::string eval_by_source;
        std::string_view bytes = cmd->cmd_;
        if (cmd->by_source_) {
            // EVAL with the script's source, then the very same numkeys, keys, args
            pairguard::RespArgs head;
            head.add("EVAL");
            head.add(cmd->script_.source);
            eval_by_source = pairguard::resp_array_header(2 + cmd->tail_count_);
            eval_by_source.append(head.data);
            eval_by_source.append(cmd->cmd_, cmd->tail_offset_, std::string::npos);
            bytes = eval_by_source;
        }
        // two pointers: std::function keeps them in place (a third, `this`,
        // which cmd->client_ is, would cost an allocation per command)
        ok = ok && n->link->send(bytes, [cmd, n](redisReply* r) { cmd->client_->on_command_reply(cmd, n, r); });
    } catch (const std::exception&) {
        ok = false;  // out of memory: the command fails like a lost connection
    }
    return ok;
}

void ngx_pairguard_redis_t::on_command_reply(ngx_pairguard_redis_command_t* cmd, node_t* from, redisReply* reply) {
    if (reply != nullptr && overdue_ == cmd) {
        overdue_ = nullptr;  // answered, even if it must be sent again (NOSCRIPT, MOVED, ASK)
        cmd->timed_out_ = false;
    }
    if (reply == nullptr) {
        finish(cmd, cmd->timed_out_ ? ngx_pairguard_redis_result_e::timeout : ngx_pairguard_redis_result_e::down,
               nullptr);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR && !exiting_) {
        std::string_view err = reply_text(reply);
        if (!cmd->by_source_ && !cmd->plain_ && err.rfind("NOSCRIPT", 0) == 0) {
            // the scripts were flushed under us (or a new master): the source this once
            cmd->by_source_ = true;
            if (!cmd->timer_.timer_set) {
                ngx_add_timer(&cmd->timer_, conf_.timeout);  // it may have fired meanwhile
            }
            cmd->timed_out_ = false;
            send_to(from, cmd, cmd->asking_);
            return;
        }
        if (err.rfind("READONLY", 0) == 0 || err.rfind("MASTERDOWN", 0) == 0 || err.rfind("LOADING", 0) == 0) {
            // not (or no longer) a master that can answer: this command
            // fails like a lost connection, and the node is given up (the
            // master is looked for again)
            cmd->node_ = nullptr;
            finish(cmd, ngx_pairguard_redis_result_e::down, nullptr);
            std::string reason(err.substr(0, 60));
            retire(from, reason.c_str());
            return;
        }
        uint16_t slot = 0;
        pairguard::RedisEndpoint to;
        pairguard::RedisRedirect redirect = topology_ == pairguard::RedisTopology::cluster
                                                ? pairguard::parse_redis_redirect(err, slot, to)
                                                : pairguard::RedisRedirect::none;
        if (redirect != pairguard::RedisRedirect::none && ++cmd->redirects_ <= kMaxRedirects) {
            if (to.host.empty()) {
                to.host = from->ep.host;
            }
            node_t* n = node_for(to, true);
            if (redirect == pairguard::RedisRedirect::moved) {
                if (!slots_.empty()) {
                    slots_[slot] = n;
                }
                n->wanted = true;
                refresh_map();  // the rest of the map has likely moved too
            }
            if (n->state == node_t::state_e::idle && !n->reconnect_ev.timer_set) {
                n->failed = false;
                connect_node(n);
            }
            if (!cmd->timer_.timer_set) {
                ngx_add_timer(&cmd->timer_, conf_.timeout);  // it may have fired meanwhile
            }
            if (n->takes_commands()) {
                send_to(n, cmd, redirect == pairguard::RedisRedirect::ask);
            } else {
                finish(cmd, ngx_pairguard_redis_result_e::down, nullptr);
            }
            return;
        }
    }
    ngx_pairguard_redis_result_e res = ngx_pairguard_redis_result_e::ok;
    if (reply->type == REDIS_REPLY_ERROR) {
        res = ngx_pairguard_redis_result_e::error;
        // a plain command's error is its caller's to handle (the guard's
        // script-free reserve hands the operation to the script, which logs)
        if (!cmd->plain_ && ngx_current_msec - last_error_log_ >= 1000) {
            last_error_log_ = ngx_current_msec;
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0, "pairguard: redis %s: script %s failed: %*s",
                          from->ep.label().c_str(), cmd->script_.name.data(),
                          static_cast<size_t>(ngx_min(reply->len, 200)), reply->str);
        }
    }
    finish(cmd, res, reply);
}

// The command's one end: its callback (unless cancelled), and it is freed.
void ngx_pairguard_redis_t::finish(ngx_pairguard_redis_command_t* c, ngx_pairguard_redis_result_e res,
                                   redisReply* reply) {
    std::unique_ptr<ngx_pairguard_redis_command_t> cmd(c);
    if (overdue_ == c) {
        overdue_ = nullptr;
    }
    if (cmd->timer_.timer_set) {
        ngx_del_timer(&cmd->timer_);
    }
    ngx_pairguard_metric_store_done(res, cmd->sent_ns_);
    if (!cmd->cancelled_ && !exiting_ && cmd->cb_) {
        try {
            cmd->cb_(res, core_reply(reply));
        } catch (const std::exception& e) {
            ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0, "pairguard: redis callback failed: %s", e.what());
        }
    }
}

void ngx_pairguard_redis_t::cancel(ngx_pairguard_redis_command_t* cmd) {
    if (cmd != nullptr) {
        cmd->cancelled_ = true;
        cmd->cb_ = nullptr;
    }
}

void ngx_pairguard_redis_t::on_command_timeout(ngx_event_t* ev) noexcept {
    auto* cmd = static_cast<ngx_pairguard_redis_command_t*>(ev->data);
    ngx_pairguard_redis_t* self = cmd->client_;
    node_t* n = cmd->node_;
    if (n == nullptr) {
        // still waiting for a first connection (or the cluster map)
        for (auto it = self->unrouted_.begin(); it != self->unrouted_.end(); ++it) {
            if (*it == cmd) {
                self->unrouted_.erase(it);
                break;
            }
        }
        self->finish(cmd, ngx_pairguard_redis_result_e::timeout, nullptr);
        return;
    }
    // nginx expires timers after a loop iteration's events: a long iteration
    // can leave the reply unread in the socket when the timer fires. Read
    // what is there first (never blocks); only a reply still missing is a
    // timeout.
    for (auto it = n->queued.begin(); it != n->queued.end(); ++it) {
        if (*it == cmd) {
            n->queued.erase(it);  // its node never came up in time
            self->finish(cmd, ngx_pairguard_redis_result_e::timeout, nullptr);
            return;
        }
    }
    cmd->timed_out_ = true;
    self->overdue_ = cmd;
    n->link->read_now();
    if (self->overdue_ == nullptr) {
        return;  // answered (and freed) meanwhile, or its connection went
    }
    self->overdue_ = nullptr;
    // every command awaited on this connection hears of the timeout (this
    // one) or of the loss (the others)
    self->retire(n, "command timed out");
}
