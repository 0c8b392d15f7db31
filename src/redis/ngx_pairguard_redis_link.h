// One connection to one Redis server (or sentinel) on nginx's loop: the
// address resolved with nginx's resolver (or at configuration time),
// ngx_event_connect_peer, TLS with nginx's OpenSSL layer (SNI, name check,
// session reuse across reconnects), RESP replies parsed by hiredis'
// redisReader and handed out in order. It knows no topology and no
// handshake: its owner sends those.
#pragma once

#include <hiredis/hiredis.h>

#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "ngx_pairguard_redis.h"

class ngx_pairguard_redis_link_t {
public:
    using reply_fn = std::function<void(redisReply*)>;  // nullptr: the connection is gone

    ngx_pairguard_redis_link_t(const ngx_pairguard_redis_conf_t& conf, std::string what);
    ~ngx_pairguard_redis_link_t();
    ngx_pairguard_redis_link_t(const ngx_pairguard_redis_link_t&) = delete;
    ngx_pairguard_redis_link_t& operator=(const ngx_pairguard_redis_link_t&) = delete;

    // Where to connect next time (a closed link only). `preresolved`: the
    // addresses found at configuration time, used when there is no resolver.
    void target(const pairguard::RedisEndpoint& ep, const std::vector<std::string>* preresolved);

    // Resolve, connect, TLS; `on_ready` then, or `on_lost` (never both, and
    // never from inside open()).
    void open();

    // Closes now: every reply still awaited is handed nullptr (in order),
    // then `on_lost(reason)` runs when `notify` is set.
    void close(const char* reason, bool notify);

    // Queues one command (RESP) and the function its reply goes to (empty:
    // the reply is dropped). Written at the end of this loop iteration, in one
    // write with whatever else was queued. False when the link is closed.
    // `push`: the answers come as pushes (SUBSCRIBE), not as a reply.
    bool send(std::string_view resp, reply_fn fn, bool push = false);

    // Reads and hands out whatever replies are already in the socket; never
    // blocks. For a command whose timer fired after a long loop iteration.
    void read_now();

    // Does now whatever the socket already allows, never blocking: a
    // connect that completed (or failed), the TLS handshake's next step,
    // replies waiting. nginx expires timers after an iteration's events, so
    // a timer due at the end of a long iteration (a blocking handler, a
    // starved worker) fires before the events that came meanwhile are read.
    // True when something moved: a step of the connection, or bytes read.
    bool catch_up();

    bool open_or_opening() const { return state_ != state_e::closed; }
    bool ready() const { return state_ == state_e::ready; }
    size_t awaiting() const { return waiting_.size(); }
    const std::string& label() const { return label_; }
    bool session_reused() const { return session_reused_; }

    std::function<void()> on_ready;
    std::function<void(const char*)> on_lost;
    std::function<void(redisReply*)> on_push;  // a reply nobody waits for (subscriptions)

private:
    enum class state_e { closed, resolving, connecting, tls, ready };

    void fail(const char* reason);
    void release();
    void fail_waiting();
    void connect_to(const struct sockaddr* sa, socklen_t len);
    void connected();
    void tls_done();
    void became_ready();
    void flush();
    void dispatch(redisReply* r);

    static void on_resolved(ngx_resolver_ctx_t* ctx) noexcept;
    static void on_read_event(ngx_event_t* ev) noexcept;
    static void on_write_event(ngx_event_t* ev) noexcept;
    static void on_flush_event(ngx_event_t* ev) noexcept;
    static void on_tls_handshake(ngx_connection_t* c) noexcept;
    static void on_tls_session(ngx_connection_t* c) noexcept;
    static void on_failed_event(ngx_event_t* ev) noexcept;

    const ngx_pairguard_redis_conf_t& conf_;
    std::string what_;           // "redis", "sentinel"...: for logs
    pairguard::RedisEndpoint ep_;
    std::vector<std::string> preresolved_;
    std::string label_;
    std::string host_z_;         // for the resolver and SNI
    state_e state_ = state_e::closed;
    ngx_connection_t* c_ = nullptr;
    ngx_log_t quiet_log_;        // the connection's own log: emergencies only
    ngx_pool_t* pool_ = nullptr;
    ngx_resolver_ctx_t* rctx_ = nullptr;
    redisReader* reader_ = nullptr;
    std::string out_;
    std::deque<reply_fn> waiting_;
    ngx_event_t flush_ev_;
    ngx_event_t fail_ev_;        // reports a failure found inside open()
    std::string fail_reason_;
    ngx_ssl_session_t* session_ = nullptr;  // reused on the next connection
    bool session_reused_ = false;
    bool in_read_ = false;
    uint64_t received_ = 0;      // bytes read, over the link's life (catch_up)
};
