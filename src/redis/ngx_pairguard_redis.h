// A worker's connection to Redis: hiredis' async context driven by nginx's
// event loop, per-command timeouts on nginx timers (hiredis 0.14 has none),
// reconnection with backoff, and cancellable commands.
#pragma once

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "../core/resp.hpp"
#include "../ngx/ngx_pairguard.h"

namespace pairguard {
struct StoreScript;
}

struct ngx_pairguard_redis_conf_t {
    std::string host;       // numeric address, resolved at configuration time
    int port = 6379;
    std::string unix_path;  // instead of host:port when set
    std::string user;
    std::string password;
    int db = 0;
    ngx_msec_t timeout = 100;
    std::string label;       // ADDRESS as configured, for logs
    std::string down_mode;   // store_down mode, for logs
};

enum class ngx_pairguard_redis_result_e { ok, error, timeout, down };

using ngx_pairguard_redis_cb_t = std::function<void(ngx_pairguard_redis_result_e, redisReply*)>;

class ngx_pairguard_redis_command_t;

class ngx_pairguard_redis_t {
public:
    explicit ngx_pairguard_redis_t(ngx_pairguard_redis_conf_t conf);
    ~ngx_pairguard_redis_t();
    ngx_pairguard_redis_t(const ngx_pairguard_redis_t&) = delete;
    ngx_pairguard_redis_t& operator=(const ngx_pairguard_redis_t&) = delete;

    // Makes this a subscriber connection (call before start()): it runs
    // SUBSCRIBE instead of loading scripts, hands every message to
    // `on_message`, and calls `on_resync` each time the subscription is
    // (re)established, since messages sent while it was down are lost.
    void subscribe(std::string channel, std::function<void(std::string_view)> on_message,
                   std::function<void()> on_resync);

    void start();
    // Worker exit: drops the connection; pending callbacks are not called.
    void stop();

    // Commands are taken when the store is up, and also while a connection
    // is being made that follows no failure (worker start, reload): they queue
    // behind the handshake. After a failure, nothing waits on Redis until a
    // new connection has been answered.
    bool accepting() const {
        return ac_ != nullptr && (state_ == state_e::up || (state_ == state_e::connecting && !down_logged_));
    }

    // EVALSHA (falling back to EVAL once on NOSCRIPT). `tail` holds numkeys,
    // the keys and the arguments; built on resp_evalsha() it is sent as is. nullptr when the store is not taking
    // commands: the caller decides without Redis and nothing is queued.
    // The callback runs exactly once unless the command is cancelled.
    ngx_pairguard_redis_command_t* eval(const pairguard::StoreScript& script, pairguard::RespArgs&& tail,
                                        ngx_pairguard_redis_cb_t cb);
    ngx_pairguard_redis_command_t* eval(const pairguard::StoreScript& script, const std::vector<std::string>& keys,
                                        const std::vector<std::string>& args, ngx_pairguard_redis_cb_t cb);

    // The callback will not run; the command still completes (or times out)
    // on the connection, so a hanging Redis is still noticed.
    static void cancel(ngx_pairguard_redis_command_t* cmd);

private:
    enum class state_e { idle, connecting, up };

    friend class ngx_pairguard_redis_command_t;

    void connect();
    void drop(const char* reason);
    void lost(const char* reason);
    void schedule_reconnect();
    void became_up();
    bool send(ngx_pairguard_redis_command_t* cmd) noexcept;
    void send_handshake();

    static void on_read(ngx_event_t* ev) noexcept;
    static void on_write(ngx_event_t* ev) noexcept;
    static void on_flush(ngx_event_t* ev) noexcept;
    static void on_reconnect(ngx_event_t* ev) noexcept;
    static void on_connect_timeout(ngx_event_t* ev) noexcept;
    static void on_command_timeout(ngx_event_t* ev) noexcept;
    static void on_connect(const redisAsyncContext* ac, int status) noexcept;
    static void on_disconnect(const redisAsyncContext* ac, int status) noexcept;
    static void on_reply(redisAsyncContext* ac, void* reply, void* privdata) noexcept;
    static void on_handshake_reply(redisAsyncContext* ac, void* reply, void* privdata) noexcept;
    static void on_subscription(redisAsyncContext* ac, void* reply, void* privdata) noexcept;
    static void ev_add_read(void* data) noexcept;
    static void ev_del_read(void* data) noexcept;
    static void ev_add_write(void* data) noexcept;
    static void ev_del_write(void* data) noexcept;
    static void ev_cleanup(void* data) noexcept;

    ngx_pairguard_redis_conf_t conf_;
    redisAsyncContext* ac_ = nullptr;
    ngx_connection_t* conn_ = nullptr;
    state_e state_ = state_e::idle;
    bool exiting_ = false;
    bool down_logged_ = false;
    ngx_msec_t backoff_ = 0;
    ngx_msec_t last_error_log_ = 0;
    ngx_event_t reconnect_ev_;
    ngx_event_t connect_timer_;
    ngx_event_t flush_ev_;   // posted: writes what this loop iteration queued
    bool in_flush_ = false;
    ngx_pairguard_redis_command_t* overdue_ = nullptr;  // its timer fired: is the reply in?
    std::string channel_;    // subscriber mode when not empty
    std::function<void(std::string_view)> on_message_;
    std::function<void()> on_resync_;
};

class ngx_pairguard_redis_command_t {
public:
    ngx_pairguard_redis_command_t(ngx_pairguard_redis_t* client, const pairguard::StoreScript& script,
                                  pairguard::RespArgs&& tail, ngx_pairguard_redis_cb_t cb);
    ~ngx_pairguard_redis_command_t();

private:
    friend class ngx_pairguard_redis_t;

    ngx_pairguard_redis_t* client_;
    const pairguard::StoreScript& script_;
    std::string cmd_;        // the whole EVALSHA in RESP
    size_t tail_offset_;     // where numkeys starts, for the EVAL fallback
    size_t tail_count_;
    ngx_pairguard_redis_cb_t cb_;
    ngx_event_t timer_;
    bool by_source_ = false;  // sent as EVAL after a NOSCRIPT
    bool cancelled_ = false;
    bool timed_out_ = false;
    uint64_t sent_ns_ = 0;  // for the store latency histogram
};
