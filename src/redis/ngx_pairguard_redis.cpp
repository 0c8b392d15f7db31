#include "ngx_pairguard_redis.h"

#include <cstring>
#include <memory>

#include "../core/store_scripts.hpp"
#include "../ngx/ngx_pairguard_metrics.h"

namespace {

constexpr ngx_msec_t kBackoffMin = 50;
constexpr ngx_msec_t kBackoffMax = 2000;
constexpr ngx_msec_t kConnectTimeoutMin = 1000;

void init_timer(ngx_event_t* ev, ngx_event_handler_pt handler, void* data, bool cancelable) {
    ngx_memzero(ev, sizeof(ngx_event_t));
    ev->handler = handler;
    ev->data = data;
    ev->log = ngx_cycle->log;
    ev->cancelable = cancelable ? 1 : 0;
}

}  // namespace

ngx_pairguard_redis_command_t::ngx_pairguard_redis_command_t(ngx_pairguard_redis_t* client,
                                                             const pairguard::StoreScript& script,
                                                             pairguard::RespArgs&& tail,
                                                             ngx_pairguard_redis_cb_t cb)
    : client_(client), script_(script), cb_(std::move(cb)) {
    if (tail.head == 0) {
        pairguard::RespArgs full = pairguard::resp_evalsha(script.sha1, tail.count);
        full.add_encoded(tail.data, tail.count);
        tail = std::move(full);
    }
    tail_offset_ = tail.head;
    tail_count_ = tail.count;
    cmd_ = std::move(tail.data);
    // not cancelable: a request waits on it, and it is what notices a hang
    init_timer(&timer_, ngx_pairguard_redis_t::on_command_timeout, this, false);
}

ngx_pairguard_redis_command_t::~ngx_pairguard_redis_command_t() {
    if (timer_.timer_set) {
        ngx_del_timer(&timer_);
    }
}

ngx_pairguard_redis_t::ngx_pairguard_redis_t(ngx_pairguard_redis_conf_t conf) : conf_(std::move(conf)) {
    init_timer(&reconnect_ev_, on_reconnect, this, true);
    init_timer(&connect_timer_, on_connect_timeout, this, true);
    init_timer(&flush_ev_, on_flush, this, true);
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

void ngx_pairguard_redis_t::start() {
    connect();
}

void ngx_pairguard_redis_t::stop() {
    exiting_ = true;
    if (reconnect_ev_.timer_set) {
        ngx_del_timer(&reconnect_ev_);
    }
    if (connect_timer_.timer_set) {
        ngx_del_timer(&connect_timer_);
    }
    if (flush_ev_.posted) {
        ngx_delete_posted_event(&flush_ev_);
    }
    if (ac_ != nullptr) {
        redisAsyncContext* ac = ac_;
        ac_ = nullptr;
        state_ = state_e::idle;
        redisAsyncFree(ac);
    }
}

void ngx_pairguard_redis_t::connect() {
    if (exiting_ || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    redisAsyncContext* ac = conf_.unix_path.empty() ? redisAsyncConnect(conf_.host.c_str(), conf_.port)
                                                    : redisAsyncConnectUnix(conf_.unix_path.c_str());
    if (ac == nullptr) {
        lost("out of memory");
        schedule_reconnect();
        return;
    }
    if (ac->err) {
        std::string reason = ac->errstr;
        redisAsyncFree(ac);
        lost(reason.c_str());
        schedule_reconnect();
        return;
    }

    ngx_connection_t* c = ngx_get_connection(ac->c.fd, ngx_cycle->log);
    if (c == nullptr) {
        redisAsyncFree(ac);
        lost("no free connection");
        schedule_reconnect();
        return;
    }
    c->data = this;
    c->read->handler = on_read;
    c->write->handler = on_write;
    c->read->log = ngx_cycle->log;
    c->write->log = ngx_cycle->log;

    ac_ = ac;
    conn_ = c;
    ac->data = this;
    ac->ev.data = this;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);

    state_ = state_e::connecting;
    ngx_add_timer(&connect_timer_, ngx_max(conf_.timeout * 5, kConnectTimeoutMin));

    // hiredis 0.14 only notices the connection once it has something to write
    send_handshake();
}

void ngx_pairguard_redis_t::send_handshake() {
    if (!conf_.password.empty()) {
        if (conf_.user.empty()) {
            const char* argv[] = {"AUTH", conf_.password.c_str()};
            size_t lens[] = {4, conf_.password.size()};
            redisAsyncCommandArgv(ac_, on_handshake_reply, nullptr, 2, argv, lens);
        } else {
            const char* argv[] = {"AUTH", conf_.user.c_str(), conf_.password.c_str()};
            size_t lens[] = {4, conf_.user.size(), conf_.password.size()};
            redisAsyncCommandArgv(ac_, on_handshake_reply, nullptr, 3, argv, lens);
        }
    }
    if (conf_.db != 0) {
        std::string db = std::to_string(conf_.db);
        const char* argv[] = {"SELECT", db.c_str()};
        size_t lens[] = {6, db.size()};
        redisAsyncCommandArgv(ac_, on_handshake_reply, nullptr, 2, argv, lens);
    }
    if (!channel_.empty()) {
        const char* argv[] = {"SUBSCRIBE", channel_.c_str()};
        size_t lens[] = {9, channel_.size()};
        redisAsyncCommandArgv(ac_, on_subscription, this, 2, argv, lens);
        return;
    }
    // the guard's one script; the endpoints' scripts load on first use
    // (NOSCRIPT), and the last handshake reply marks the store up
    const pairguard::StoreScript& batch = pairguard::guard_batch_script();
    const char* argv[] = {"SCRIPT", "LOAD", batch.source.data()};
    size_t lens[] = {6, 4, batch.source.size()};
    redisAsyncCommandArgv(ac_, on_handshake_reply, this, 3, argv, lens);
}

void ngx_pairguard_redis_t::on_handshake_reply(redisAsyncContext* ac, void* r, void* privdata) noexcept {
    auto* self = static_cast<ngx_pairguard_redis_t*>(ac->data);
    auto* reply = static_cast<redisReply*>(r);
    if (reply == nullptr || self == nullptr || self->ac_ != ac) {
        return;  // the connection is going away; lost() has been or will be called
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        // Redis' own words (never the password): "WRONGPASS ...", "NOAUTH ..."
        char reason[128];
        size_t n = ngx_min(reply->len, sizeof(reason) - 1);
        ngx_memcpy(reason, reply->str, n);
        reason[n] = '\0';
        self->drop(reason);
        return;
    }
    if (privdata != nullptr) {
        self->became_up();
    }
}

void ngx_pairguard_redis_t::on_subscription(redisAsyncContext* ac, void* r, void*) noexcept {
    auto* self = static_cast<ngx_pairguard_redis_t*>(ac->data);
    auto* reply = static_cast<redisReply*>(r);
    if (reply == nullptr || self == nullptr || self->ac_ != ac || self->exiting_) {
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 || reply->element[0]->type != REDIS_REPLY_STRING) {
        return;
    }
    std::string_view kind(reply->element[0]->str, reply->element[0]->len);
    try {
        if (kind == "subscribe") {
            self->became_up();
            if (self->on_resync_) {
                self->on_resync_();
            }
        } else if (kind == "message" && reply->element[2]->type == REDIS_REPLY_STRING && self->on_message_) {
            self->on_message_(std::string_view(reply->element[2]->str, reply->element[2]->len));
        }
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0, "pairguard: event handler failed: %s", e.what());
    }
}

void ngx_pairguard_redis_t::became_up() {
    if (connect_timer_.timer_set) {
        ngx_del_timer(&connect_timer_);
    }
    state_ = state_e::up;
    ngx_pairguard_metric_store_up(true, !channel_.empty());
    backoff_ = 0;
    if (down_logged_) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0, "pairguard: redis %s available", conf_.label.c_str());
        down_logged_ = false;
    }
}

void ngx_pairguard_redis_t::on_connect(const redisAsyncContext* ac, int status) noexcept {
    auto* self = static_cast<ngx_pairguard_redis_t*>(ac->data);
    if (status != REDIS_OK && self != nullptr && self->ac_ == ac) {
        // hiredis frees the context itself after this callback
        self->lost(ac->errstr);
        self->schedule_reconnect();
    }
}

void ngx_pairguard_redis_t::on_disconnect(const redisAsyncContext* ac, int status) noexcept {
    auto* self = static_cast<ngx_pairguard_redis_t*>(ac->data);
    if (self != nullptr && self->ac_ == ac) {
        self->lost(status == REDIS_OK ? "connection closed" : ac->errstr);
        self->schedule_reconnect();
    }
}

// Our side of a connection that is gone or going: no new commands, log once.
void ngx_pairguard_redis_t::lost(const char* reason) {
    ac_ = nullptr;
    state_ = state_e::idle;
    if (connect_timer_.timer_set) {
        ngx_del_timer(&connect_timer_);
    }
    if (!down_logged_ && !exiting_) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0, "pairguard: redis %s unavailable (%s), store_down %s",
                      conf_.label.c_str(), reason != nullptr ? reason : "unknown", conf_.down_mode.c_str());
        down_logged_ = true;
        ngx_pairguard_metric_store_up(false, !channel_.empty());
    }
}

// We give up on the connection: every pending callback runs (timed out or
// down) from inside redisAsyncFree, after the store is already marked down.
void ngx_pairguard_redis_t::drop(const char* reason) {
    if (ac_ == nullptr) {
        return;
    }
    redisAsyncContext* ac = ac_;
    lost(reason);
    schedule_reconnect();
    redisAsyncFree(ac);
}

void ngx_pairguard_redis_t::schedule_reconnect() {
    if (exiting_ || reconnect_ev_.timer_set) {
        return;
    }
    backoff_ = backoff_ == 0 ? kBackoffMin : ngx_min(backoff_ * 2, kBackoffMax);
    ngx_add_timer(&reconnect_ev_, backoff_);
}

void ngx_pairguard_redis_t::on_reconnect(ngx_event_t* ev) noexcept {
    auto* self = static_cast<ngx_pairguard_redis_t*>(ev->data);
    if (self->ac_ == nullptr) {
        self->connect();
    }
}

void ngx_pairguard_redis_t::on_connect_timeout(ngx_event_t* ev) noexcept {
    auto* self = static_cast<ngx_pairguard_redis_t*>(ev->data);
    self->drop("connect timed out");
}

void ngx_pairguard_redis_t::on_command_timeout(ngx_event_t* ev) noexcept {
    auto* cmd = static_cast<ngx_pairguard_redis_command_t*>(ev->data);
    ngx_pairguard_redis_t* self = cmd->client_;
    // nginx expires timers after a loop iteration's events: a long iteration
    // can leave the reply unread in the socket when the timer fires. Read
    // what is there first (never blocks); only a reply still missing is a
    // timeout.
    if (self->ac_ != nullptr && (self->ac_->c.flags & REDIS_CONNECTED)) {
        self->overdue_ = cmd;
        redisAsyncHandleRead(self->ac_);
        if (self->overdue_ == nullptr) {
            return;  // answered (and freed) meanwhile, or the connection went
        }
        self->overdue_ = nullptr;
    }
    cmd->timed_out_ = true;
    // frees the context: the command's own callback runs inside, reporting
    // the timeout, and frees the command
    self->drop("command timed out");
}

ngx_pairguard_redis_command_t* ngx_pairguard_redis_t::eval(const pairguard::StoreScript& script,
                                                           pairguard::RespArgs&& tail,
                                                           ngx_pairguard_redis_cb_t cb) {
    if (!accepting() || !channel_.empty()) {
        return nullptr;
    }
    if (tail.head != 0 && tail.count != tail.declared) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0, "pairguard: script %s given %uz arguments, %uz declared",
                      script.name.data(), tail.count, tail.declared);
        return nullptr;
    }
    auto cmd = std::make_unique<ngx_pairguard_redis_command_t>(this, script, std::move(tail), std::move(cb));
    if (!send(cmd.get())) {
        return nullptr;
    }
    ngx_add_timer(&cmd->timer_, conf_.timeout);
    cmd->sent_ns_ = ngx_pairguard_metric_store_sent();
    return cmd.release();  // owned by hiredis' callback list until on_reply
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

bool ngx_pairguard_redis_t::send(ngx_pairguard_redis_command_t* cmd) noexcept try {
    if (!cmd->by_source_) {
        return redisAsyncFormattedCommand(ac_, on_reply, cmd, cmd->cmd_.data(), cmd->cmd_.size()) == REDIS_OK;
    }
    // EVAL with the script's source, then the very same numkeys, keys, args
    pairguard::RespArgs head;
    head.add("EVAL");
    head.add(cmd->script_.source);
    std::string eval = pairguard::resp_array_header(2 + cmd->tail_count_);
    eval.append(head.data);
    eval.append(cmd->cmd_, cmd->tail_offset_, std::string::npos);
    return redisAsyncFormattedCommand(ac_, on_reply, cmd, eval.data(), eval.size()) == REDIS_OK;
} catch (const std::exception&) {
    return false;  // out of memory: the command fails like a lost connection
}

void ngx_pairguard_redis_t::cancel(ngx_pairguard_redis_command_t* cmd) {
    if (cmd != nullptr) {
        cmd->cancelled_ = true;
        cmd->cb_ = nullptr;
    }
}

void ngx_pairguard_redis_t::on_reply(redisAsyncContext* ac, void* r, void* privdata) noexcept {
    std::unique_ptr<ngx_pairguard_redis_command_t> cmd(static_cast<ngx_pairguard_redis_command_t*>(privdata));
    auto* reply = static_cast<redisReply*>(r);
    ngx_pairguard_redis_t* self = cmd->client_;
    if (self->overdue_ == cmd.get()) {
        self->overdue_ = nullptr;
    }

    if (reply != nullptr && reply->type == REDIS_REPLY_ERROR && !cmd->by_source_
        && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0 && self->ac_ == ac) {
        // the scripts were flushed under us: send the source this once
        cmd->by_source_ = true;
        if (self->send(cmd.get())) {
            if (!cmd->timer_.timer_set) {
                ngx_add_timer(&cmd->timer_, self->conf_.timeout);  // it may have fired meanwhile
            }
            cmd.release();
            return;
        }
    }

    if (cmd->timer_.timer_set) {
        ngx_del_timer(&cmd->timer_);
    }

    ngx_pairguard_redis_result_e res;
    if (reply == nullptr) {
        res = cmd->timed_out_ ? ngx_pairguard_redis_result_e::timeout : ngx_pairguard_redis_result_e::down;
    } else if (reply->type == REDIS_REPLY_ERROR) {
        res = ngx_pairguard_redis_result_e::error;
        if (ngx_current_msec - self->last_error_log_ >= 1000) {
            self->last_error_log_ = ngx_current_msec;
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0, "pairguard: redis %s: script %s failed: %*s",
                          self->conf_.label.c_str(), cmd->script_.name.data(), static_cast<size_t>(ngx_min(reply->len, 200)),
                          reply->str);
        }
    } else {
        res = ngx_pairguard_redis_result_e::ok;
    }

    ngx_pairguard_metric_store_done(res, cmd->sent_ns_);
    if (!cmd->cancelled_ && !self->exiting_ && cmd->cb_) {
        try {
            cmd->cb_(res, reply);
        } catch (const std::exception& e) {
            ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0, "pairguard: redis callback failed: %s", e.what());
        }
    }
}

void ngx_pairguard_redis_t::on_read(ngx_event_t* ev) noexcept {
    auto* c = static_cast<ngx_connection_t*>(ev->data);
    auto* self = static_cast<ngx_pairguard_redis_t*>(c->data);
    if (self->ac_ != nullptr) {
        redisAsyncHandleRead(self->ac_);
    }
}

void ngx_pairguard_redis_t::on_write(ngx_event_t* ev) noexcept {
    auto* c = static_cast<ngx_connection_t*>(ev->data);
    auto* self = static_cast<ngx_pairguard_redis_t*>(c->data);
    if (self->ac_ != nullptr) {
        redisAsyncHandleWrite(self->ac_);
    }
}

// Level-triggered events: hiredis reads at most one buffer per call and says
// when it wants to write, so it must hear again while data is waiting.
void ngx_pairguard_redis_t::ev_add_read(void* data) noexcept {
    auto* self = static_cast<ngx_pairguard_redis_t*>(data);
    if (self->conn_ != nullptr && !self->conn_->read->active) {
        ngx_add_event(self->conn_->read, NGX_READ_EVENT, 0);
    }
}

void ngx_pairguard_redis_t::ev_del_read(void* data) noexcept {
    auto* self = static_cast<ngx_pairguard_redis_t*>(data);
    if (self->conn_ != nullptr && self->conn_->read->active) {
        ngx_del_event(self->conn_->read, NGX_READ_EVENT, 0);
    }
}

// Once connected, output is written from a posted event at the end of the
// loop iteration: everything queued meanwhile goes out in one write, with no
// epoll_ctl calls. Only a full socket buffer (or a connect in progress) waits
// for a real write event.
void ngx_pairguard_redis_t::ev_add_write(void* data) noexcept {
    auto* self = static_cast<ngx_pairguard_redis_t*>(data);
    if (self->conn_ == nullptr) {
        return;
    }
    bool connected = self->ac_ != nullptr && (self->ac_->c.flags & REDIS_CONNECTED);
    if (connected && !self->in_flush_) {
        if (!self->flush_ev_.posted) {
            ngx_post_event(&self->flush_ev_, &ngx_posted_events);
        }
        return;
    }
    if (!self->conn_->write->active) {
        ngx_add_event(self->conn_->write, NGX_WRITE_EVENT, 0);
    }
}

void ngx_pairguard_redis_t::on_flush(ngx_event_t* ev) noexcept {
    auto* self = static_cast<ngx_pairguard_redis_t*>(ev->data);
    if (self->ac_ != nullptr) {
        self->in_flush_ = true;
        redisAsyncHandleWrite(self->ac_);
        self->in_flush_ = false;
    }
}

void ngx_pairguard_redis_t::ev_del_write(void* data) noexcept {
    auto* self = static_cast<ngx_pairguard_redis_t*>(data);
    if (self->conn_ != nullptr && self->conn_->write->active) {
        ngx_del_event(self->conn_->write, NGX_WRITE_EVENT, 0);
    }
}

// hiredis is about to close the socket it owns: give our connection back
// without closing the fd, and make events still queued for it stale.
void ngx_pairguard_redis_t::ev_cleanup(void* data) noexcept {
    auto* self = static_cast<ngx_pairguard_redis_t*>(data);
    if (self->flush_ev_.posted) {
        ngx_delete_posted_event(&self->flush_ev_);
    }
    ngx_connection_t* c = self->conn_;
    if (c == nullptr) {
        return;
    }
    self->conn_ = nullptr;
    if (c->read->active) {
        ngx_del_event(c->read, NGX_READ_EVENT, NGX_CLOSE_EVENT);
    }
    if (c->write->active) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_CLOSE_EVENT);
    }
    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }
    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }
    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;
}
