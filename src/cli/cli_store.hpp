// What pairguardctl (and its test tool) need around the core: where Redis
// is and how to log in, the secret file, and blocking hiredis calls with
// connect and command timeouts. The module has its own, asynchronous, side.
#pragma once

#include <hiredis/hiredis.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "pairing.hpp"

namespace pairguard::cli {

struct RedisTarget {
    std::string host = "127.0.0.1";
    int port = 6379;
    std::string unix_path;  // instead of host:port when set
    std::string user;
    std::string password;
    int db = 0;
    int64_t timeout_ms = 2000;
    std::string prefix = "pairguard:";
};

// "ADDRESS [password=P | password_file=PATH] [user=U] [db=N] [timeout=TIME]
// [prefix=STR]", as in `pairguard_redis`; ADDRESS is HOST:PORT, HOST,
// [IPV6]:PORT or unix:/path. Returns an empty string on success, else what is
// wrong (never a password).
std::string parse_redis_target(std::string_view spec, RedisTarget& out);

// The secret file byte for byte, exactly as the module reads it (at most its
// first 4096 bytes, no newline stripped). Throws std::runtime_error.
std::string read_secret_file(const std::string& path);

// Redis could not be reached, or stopped answering: exit status 3.
struct StoreUnreachable : std::runtime_error {
    using std::runtime_error::runtime_error;
};

Reply reply_from_hiredis(const redisReply* r);

class SyncRedis {
public:
    // Connects, authenticates and selects the database. Throws StoreUnreachable.
    explicit SyncRedis(const RedisTarget& target);

    // One command. Redis error replies come back as Reply::Type::error; a
    // lost or silent connection throws StoreUnreachable.
    Reply command(const std::vector<std::string>& argv);

    // Several commands in one round trip, replies in order.
    std::vector<Reply> pipeline(const std::vector<std::vector<std::string>>& commands);

    // EVALSHA, and EVAL when Redis does not know the script yet.
    Reply run(const StoreCall& call);

    // Several script calls in one round trip (their scripts loaded first).
    std::vector<Reply> run_many(const std::vector<StoreCall>& calls);

private:
    struct ContextDeleter {
        void operator()(redisContext* c) const { redisFree(c); }
    };
    std::unique_ptr<redisContext, ContextDeleter> ctx_;
    std::string label_;

    [[noreturn]] void lost();
};

}  // namespace pairguard::cli
