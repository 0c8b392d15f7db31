// Where Redis is and how to reach it: the words of `pairguard_redis` and of
// pairguardctl's --redis (SPEC section 1), parsed once here for both, and the
// Redis Cluster key slot. No nginx and no socket here.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pairguard {

struct RedisEndpoint {
    std::string host;       // a name or a numeric address (IPv6 without brackets)
    int port = 6379;
    std::string unix_path;  // instead of host:port when set

    std::string label() const;  // "host:port", "[v6]:port" or "unix:/path"
};

struct RedisTls {
    bool on = false;
    bool verify = true;
    std::string trusted_certificate;  // CA file (PEM)
    std::string server_name;          // SNI and name check; default: the host name
    std::string certificate;          // client certificate (PEM), with
    std::string certificate_key;      // its key
};

enum class RedisTopology { single, sentinel, cluster };

struct RedisSpec {
    RedisTopology topology = RedisTopology::single;
    // single: the server; sentinel: the sentinels; cluster: the seed nodes
    std::vector<RedisEndpoint> endpoints;
    std::string master_name;  // sentinel
    std::string user;
    std::string password;     // from password= or password_file=
    std::string sentinel_user;
    std::string sentinel_password;
    int db = 0;
    int64_t timeout_ms = 0;   // 0: not given (the caller's default)
    std::string prefix;       // empty: not given ("pairguard:")
    RedisTls tls;
};

// Parses the words after the directive name (or the --redis string split on
// blanks). Returns "" on success, else what is wrong, naming the parameter
// but never echoing a value that may be a password. Password files are read
// here (one trailing newline stripped).
std::string parse_redis_spec(const std::vector<std::string_view>& words, RedisSpec& out);
std::string parse_redis_spec(std::string_view line, RedisSpec& out);

// The words of a --redis string: split on blanks and tabs.
std::vector<std::string_view> split_redis_words(std::string_view line);

// "HOST:PORT", "HOST" (port 6379), "[V6]:PORT" or "unix:/path".
bool parse_redis_endpoint(std::string_view text, RedisEndpoint& out, bool allow_unix = true);

// Redis Cluster: the slot of a key (CRC16/XMODEM of the hash tag when the key
// has a non-empty {...}, else of the whole key, modulo 16384).
constexpr uint16_t kClusterSlots = 16384;
uint16_t cluster_key_slot(std::string_view key);

// A MOVED or ASK error's target: "MOVED 3999 127.0.0.1:6381" gives slot 3999
// and the endpoint; false for any other error text.
enum class RedisRedirect { none, moved, ask };
RedisRedirect parse_redis_redirect(std::string_view error, uint16_t& slot, RedisEndpoint& to);

}  // namespace pairguard
