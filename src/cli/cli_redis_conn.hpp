// One blocking connection from pairguardctl to one Redis node or sentinel:
// TCP or a unix socket, TLS with OpenSSL when asked (verified against the
// trusted CA unless tls_verify=off, SNI and name check, client certificate),
// replies parsed by hiredis' RESP reader. Connect, handshake and every read
// or write are bounded by the timeout. Blocking is fine in a CLI; the module
// has its own client on nginx's loop.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cli_store.hpp"
#include "redis_spec.hpp"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;
struct redisReader;

namespace pairguard::cli {

class RedisConn {
public:
    // Connects (and shakes hands). Throws StoreUnreachable naming the node
    // ("redis HOST:PORT", or with kind "sentinel", "sentinel HOST:PORT").
    RedisConn(const RedisEndpoint& endpoint, const RedisTls& tls, int64_t timeout_ms, const char* kind = "redis");
    ~RedisConn();
    RedisConn(const RedisConn&) = delete;
    RedisConn& operator=(const RedisConn&) = delete;

    const std::string& label() const { return label_; }

    // Writes the commands at once and reads one reply each, in order. Redis
    // errors are Reply::Type::error; a lost or silent connection throws
    // StoreUnreachable (the connection is then unusable).
    std::vector<Reply> exchange(const std::vector<std::vector<std::string>>& commands);
    Reply call(const std::vector<std::string>& argv);

private:
    std::string label_;
    int fd_ = -1;
    int64_t timeout_ms_;
    SSL_CTX* ctx_ = nullptr;
    SSL* ssl_ = nullptr;
    redisReader* reader_ = nullptr;
    bool broken_ = false;

    void cleanup();
    void connect_tcp(const RedisEndpoint& e);
    void connect_unix(const std::string& path);
    void start_tls(const RedisEndpoint& e, const RedisTls& tls);
    void wait_fd(bool for_write, const char* doing);
    void write_all(const std::string& data);
    size_t read_some(char* buf, size_t len);
    [[noreturn]] void fail(const std::string& why);
};

// true when `host` is a numeric IPv4 or IPv6 address
bool is_ip_literal(const std::string& host);

}  // namespace pairguard::cli
