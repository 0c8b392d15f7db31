// A worker's Redis: nginx's own connections carry the bytes (connect, TLS,
// resolver, timers: all on the event loop, never blocking), hiredis' RESP
// reader parses the replies, and the core encodes the commands. On top of one
// such connection (a link) sit the three topologies of SPEC section 1: one
// server, a master found through Sentinel, and Redis Cluster (a link per
// master, commands routed by slot, MOVED and ASK followed). docs/DESIGN.md
// explains the choice.
#pragma once

#include <hiredis/hiredis.h>

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "../core/pairing.hpp"
#include "../core/redis_spec.hpp"
#include "../core/resp.hpp"
#include "../ngx/ngx_pairguard.h"

namespace pairguard {
struct StoreScript;
}

struct ngx_pairguard_redis_conf_t {
    pairguard::RedisSpec spec;
    ngx_msec_t timeout = 100;
    // for each configured endpoint, the addresses found at configuration time
    // (nginx cannot resolve without a resolver on the loop); empty for unix
    std::vector<std::vector<std::string>> addrs;  // raw sockaddr bytes
    ngx_resolver_t* resolver = nullptr;  // the http block's, when it has one
    ngx_msec_t resolver_timeout = 30000;
    ngx_ssl_t* ssl = nullptr;             // `tls`: pool-owned, made at configuration
    std::string unresolved;  // a name not found at configuration time
    std::string label;       // the address words as configured, for logs
    std::string down_mode;   // store_down mode, for logs
};

enum class ngx_pairguard_redis_result_e { ok, error, timeout, down };

// The reply comes as the core's Reply (nil unless the result is ok or error):
// nothing above this client knows hiredis.
using ngx_pairguard_redis_cb_t = std::function<void(ngx_pairguard_redis_result_e, const pairguard::Reply&)>;

class ngx_pairguard_redis_command_t;
class ngx_pairguard_redis_link_t;
struct ngx_pairguard_redis_node_t;

class ngx_pairguard_redis_t {
public:
    explicit ngx_pairguard_redis_t(const ngx_pairguard_redis_conf_t& conf);
    ~ngx_pairguard_redis_t();
    ngx_pairguard_redis_t(const ngx_pairguard_redis_t&) = delete;
    ngx_pairguard_redis_t& operator=(const ngx_pairguard_redis_t&) = delete;

    // Makes this a subscriber (call before start()): it runs SUBSCRIBE
    // instead of loading scripts, hands every message to `on_message`, and
    // calls `on_resync` each time the subscription is (re)established, since
    // messages sent while it was down are lost.
    void subscribe(std::string channel, std::function<void(std::string_view)> on_message,
                   std::function<void()> on_resync);

    void start();
    // Worker exit: drops every connection; pending callbacks are not called.
    void stop();

    // Commands are taken when the store is up, and also while the first
    // connection is being made (worker start, reload): they queue behind the
    // handshake. After a failure, nothing waits on Redis until a new
    // connection has answered.
    bool accepting() const;

    bool cluster() const { return topology_ == pairguard::RedisTopology::cluster; }

    // Counts the connections made ready (a reconnect, a new master after a
    // failover): what was learned about Redis on one (its clock) is not
    // taken for the next.
    uint64_t connection_epoch() const { return epoch_; }

    // EVALSHA (falling back to EVAL once on NOSCRIPT). `tail` holds numkeys,
    // the keys and the arguments; built on resp_evalsha() it is sent as is.
    // In Redis Cluster it goes to the master of its first key's slot. nullptr
    // when the store is not taking commands: the caller decides without Redis
    // and nothing is queued. The callback runs exactly once unless the
    // command is cancelled.
    ngx_pairguard_redis_command_t* eval(const pairguard::StoreScript& script, pairguard::RespArgs&& tail,
                                        ngx_pairguard_redis_cb_t cb);
    ngx_pairguard_redis_command_t* eval(const pairguard::StoreScript& script, const std::vector<std::string>& keys,
                                        const std::vector<std::string>& args, ngx_pairguard_redis_cb_t cb);

    // A command without a script (`full`: the whole command, RESP array and
    // all; `name` for the log), with eval()'s routing, timeout and callback.
    ngx_pairguard_redis_command_t* command(const pairguard::StoreScript& name, pairguard::RespArgs&& full,
                                           ngx_pairguard_redis_cb_t cb);

    // The callback will not run; the command still completes (or times out)
    // on the connection, so a hanging Redis is still noticed.
    static void cancel(ngx_pairguard_redis_command_t* cmd);

private:
    friend class ngx_pairguard_redis_command_t;
    friend class ngx_pairguard_redis_link_t;
    friend struct ngx_pairguard_redis_node_t;

    using node_t = ngx_pairguard_redis_node_t;

    node_t* node_for(const pairguard::RedisEndpoint& ep, bool create);
    void node_up(node_t* n);
    void node_down(node_t* n, const char* reason);
    void retire(node_t* n, const char* reason);
    void drop_node(node_t* n);
    void connect_node(node_t* n);
    void handshake(node_t* n);
    ngx_pairguard_redis_command_t* submit(std::unique_ptr<ngx_pairguard_redis_command_t> cmd);
    void route(ngx_pairguard_redis_command_t* cmd);
    void send_to(node_t* n, ngx_pairguard_redis_command_t* cmd, bool asking);
    bool try_send(node_t* n, ngx_pairguard_redis_command_t* cmd, bool asking);
    void on_command_reply(ngx_pairguard_redis_command_t* cmd, node_t* from, redisReply* reply);
    void finish(ngx_pairguard_redis_command_t* cmd, ngx_pairguard_redis_result_e res, redisReply* reply);
    void store_down(const char* reason);
    void store_up();

    // Sentinel: ask the sentinels in turn; the answer connects the master.
    void discover();
    void ask_sentinel(size_t i);
    void watch_sentinels();
    // Cluster: read the slot map from any node that answers.
    void refresh_map();
    bool apply_slots(node_t* from, const redisReply* r);
    void flush_unrouted();

    // (Re)arms a timer of the connection's setup (connect and handshake, a
    // sentinel's answer, the cluster map), counted from now
    void arm_setup_timer(ngx_event_t* ev);

    static void on_retry(ngx_event_t* ev) noexcept;
    static void on_command_timeout(ngx_event_t* ev) noexcept;
    static void on_watch_retry(ngx_event_t* ev) noexcept;
    static void on_map_timeout(ngx_event_t* ev) noexcept;
    static void on_ask_timeout(ngx_event_t* ev) noexcept;
    static void on_watch_timer(ngx_event_t* ev) noexcept;
    static void on_stable(ngx_event_t* ev) noexcept;

    ngx_pairguard_redis_conf_t conf_;
    pairguard::RedisTopology topology_;
    std::vector<std::unique_ptr<node_t>> nodes_;
    node_t* primary_ = nullptr;          // single / sentinel: the server
    std::vector<node_t*> slots_;         // cluster: master of each slot
    bool map_ready_ = false;
    bool map_loading_ = false;
    bool exiting_ = false;
    bool down_logged_ = false;
    bool failed_once_ = false;           // a failure happened: do not queue
    ngx_msec_t backoff_ = 0;
    ngx_msec_t last_error_log_ = 0;
    ngx_event_t retry_ev_;               // rediscover / reread the map
    ngx_event_t stable_ev_;              // up long enough to count as back (store_up)
    ngx_event_t watch_retry_ev_;         // resubscribe to +switch-master
    ngx_event_t watch_timer_;            // pings the +switch-master subscription
    ngx_msec_t watch_seen_ = 0;          // last word from the watched sentinel
    ngx_event_t ask_timer_;              // the sentinel being asked must answer by then
    size_t ask_tried_ = 0;
    uint64_t ask_round_ = 0;             // moves at each ask and each answer
    bool ask_extended_ = false;          // the ask timer's one more period
    ngx_event_t map_timer_;              // CLUSTER SLOTS must be answered by then
    node_t* map_node_ = nullptr;         // the node asked for the map
    bool map_extended_ = false;          // the map timer's one more period
    ngx_pairguard_redis_command_t* overdue_ = nullptr;  // its timer fired: is the reply in?
    size_t next_sentinel_ = 0;
    std::unique_ptr<ngx_pairguard_redis_link_t> sentinel_link_;  // asking
    std::unique_ptr<ngx_pairguard_redis_link_t> sentinel_watch_;  // +switch-master
    std::deque<ngx_pairguard_redis_command_t*> unrouted_;  // cluster: map not read yet
    std::string channel_;    // subscriber mode when not empty
    std::function<void(std::string_view)> on_message_;
    std::function<void()> on_resync_;
    size_t seed_turn_ = 0;
    uint64_t epoch_ = 0;
};

class ngx_pairguard_redis_command_t {
public:
    // `plain`: `tail` is a whole command of its own, not a script's tail
    ngx_pairguard_redis_command_t(ngx_pairguard_redis_t* client, const pairguard::StoreScript& script,
                                  pairguard::RespArgs&& tail, ngx_pairguard_redis_cb_t cb, bool plain = false);
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
    ngx_pairguard_redis_node_t* node_ = nullptr;  // where it waits for its reply
    uint16_t slot_ = 0;
    bool has_slot_ = false;
    int redirects_ = 0;
    bool asking_ = false;
    bool by_source_ = false;  // sent as EVAL after a NOSCRIPT
    bool plain_ = false;      // not a script: nothing to send again on NOSCRIPT
    bool cancelled_ = false;
    bool timed_out_ = false;
    uint64_t sent_ns_ = 0;  // for the store latency histogram
};
