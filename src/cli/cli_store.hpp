// What pairguardctl (and its test tool) need around the core: where Redis
// is and how to log in (the directive's words), the secret file, and
// blocking calls to one Redis, the master of a Sentinel set or a Redis
// Cluster, over TCP or TLS, with connect and command timeouts. The module
// has its own, asynchronous, side.
#pragma once

#include <hiredis/hiredis.h>

#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "pairing.hpp"
#include "redis_spec.hpp"

namespace pairguard::cli {

// Where Redis is: the words of `pairguard_redis` (SPEC section 1), parsed by
// the core's parse_redis_spec, with the CLI's defaults (timeout 2000 ms,
// prefix "pairguard:").
using RedisTarget = RedisSpec;
constexpr int64_t kCliRedisTimeoutMs = 2000;

// "ADDRESS [password=P | password_file=PATH] [user=U] [db=N] [timeout=TIME]
// [prefix=STR] [tls ...]", "sentinel=HOST:PORT,... master=NAME ..." or
// "cluster=HOST:PORT,... ...", as in `pairguard_redis`. The password, when
// the words give none, is $PAIRGUARD_REDIS_PASSWORD. The files the TLS
// words name must be readable. Returns an empty string on success, else
// what is wrong (never a password).
std::string parse_redis_target(std::string_view spec, RedisTarget& out);

// The secret file byte for byte, exactly as the module reads it (at most its
// first 4096 bytes, no newline stripped). Throws std::runtime_error.
std::string read_secret_file(const std::string& path);

// Redis could not be reached, or stopped answering: exit status 3.
struct StoreUnreachable : std::runtime_error {
    using std::runtime_error::runtime_error;
};

Reply reply_from_hiredis(const redisReply* r);

// Redis Cluster: the key a command is routed by (its first key: argv[1],
// the first of EVAL/EVALSHA's keys, the first stream of XREAD), or none for
// a command without keys (TIME, SCRIPT, SCAN...), which any master answers.
std::optional<std::string_view> cluster_route_key(const std::vector<std::string>& argv);

class RedisConn;

// Blocking calls to the Redis the target names: one server, the master the
// sentinels give (confirmed with ROLE), or a Redis Cluster (each command
// routed by the slot of its first key, MOVED and ASK followed).
class SyncRedis {
public:
    // Connects, authenticates and selects the database. Throws StoreUnreachable.
    explicit SyncRedis(const RedisTarget& target);
    ~SyncRedis();

    // One command. Redis error replies come back as Reply::Type::error; a
    // lost or silent connection throws StoreUnreachable.
    Reply command(const std::vector<std::string>& argv);

    // Several commands in one round trip (per node), replies in order.
    std::vector<Reply> pipeline(const std::vector<std::vector<std::string>>& commands);

    // EVALSHA, and EVAL when Redis does not know the script yet.
    Reply run(const StoreCall& call);

    // Several script calls in one round trip per node (their scripts loaded first).
    std::vector<Reply> run_many(const std::vector<StoreCall>& calls);

    // SCAN MATCH `match` over the whole store (in a Cluster, every master):
    // `batch` gets the new keys of each step (each key once).
    void scan(const std::string& match, const std::function<void(const std::vector<std::string>&)>& batch);

    bool cluster() const { return spec_.topology == RedisTopology::cluster; }

private:
    RedisSpec spec_;
    std::vector<RedisEndpoint> nodes_;               // cluster: every node seen; else the one server
    std::vector<std::unique_ptr<RedisConn>> conns_;  // by node, opened when first used
    std::vector<std::vector<std::string>> loaded_;   // by node: sha1 of the scripts loaded
    std::vector<int> slot_node_;                     // cluster: node of each slot, -1 unknown

    RedisConn& conn(size_t node);
    std::unique_ptr<RedisConn> open(const RedisEndpoint& e, bool sentinel);
    size_t node_index(const RedisEndpoint& e);
    void drop(size_t node);
    void find_master();
    void refresh_slots();
    size_t route(const std::vector<std::string>& argv);
    std::vector<size_t> masters();
    Reply cluster_command(const std::vector<std::string>& argv, size_t node, bool asking);
};

}  // namespace pairguard::cli
