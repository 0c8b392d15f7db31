// pairguardctl's Redis side without a server: which key routes a command in
// a Redis Cluster, and what --redis accepts (the directive's words with the
// CLI's defaults).
#include <gtest/gtest.h>

#include <cstdlib>

#include "cli_redis_conn.hpp"
#include "cli_store.hpp"

using namespace pairguard;
using namespace pairguard::cli;

TEST(CliRedis, RouteKeyIsTheFirstKey) {
    EXPECT_EQ(cluster_route_key({"GET", "k"}).value(), "k");
    EXPECT_EQ(cluster_route_key({"xrevrange", "s", "+", "-"}).value(), "s");
    EXPECT_EQ(cluster_route_key({"EVALSHA", "abc", "2", "k1", "k2", "a"}).value(), "k1");
    EXPECT_EQ(cluster_route_key({"eval", "return 1", "1", "k1"}).value(), "k1");
    EXPECT_FALSE(cluster_route_key({"EVALSHA", "abc", "0", "a"}).has_value());
    EXPECT_EQ(cluster_route_key({"XREAD", "BLOCK", "1000", "STREAMS", "p{events}-stream", "0-0"}).value(),
              "p{events}-stream");
    EXPECT_FALSE(cluster_route_key({"TIME"}).has_value());
    EXPECT_FALSE(cluster_route_key({"SCRIPT", "LOAD", "return 1"}).has_value());
    EXPECT_FALSE(cluster_route_key({"SCAN", "0", "MATCH", "x*"}).has_value());
}

TEST(CliRedis, TargetDefaults) {
    unsetenv("PAIRGUARD_REDIS_PASSWORD");
    RedisTarget t;
    ASSERT_EQ(parse_redis_target("10.0.0.1:6380", t), "");
    EXPECT_EQ(t.topology, RedisTopology::single);
    EXPECT_EQ(t.endpoints.at(0).host, "10.0.0.1");
    EXPECT_EQ(t.endpoints.at(0).port, 6380);
    EXPECT_EQ(t.timeout_ms, kCliRedisTimeoutMs);
    EXPECT_EQ(t.prefix, "pairguard:");
    ASSERT_EQ(parse_redis_target("cluster=a:1,b:2 timeout=300ms prefix=x: tls tls_verify=off", t), "");
    EXPECT_EQ(t.topology, RedisTopology::cluster);
    EXPECT_EQ(t.endpoints.size(), 2u);
    EXPECT_EQ(t.timeout_ms, 300);
    EXPECT_EQ(t.prefix, "x:");
    EXPECT_TRUE(t.tls.on);
    EXPECT_FALSE(t.tls.verify);
    ASSERT_EQ(parse_redis_target("sentinel=s1:26379,s2 master=edge sentinel_password=sp password=p", t), "");
    EXPECT_EQ(t.topology, RedisTopology::sentinel);
    EXPECT_EQ(t.master_name, "edge");
    EXPECT_EQ(t.endpoints.at(1).port, 6379);
}

TEST(CliRedis, TargetErrorsNeverEchoPasswords) {
    RedisTarget t;
    std::string err = parse_redis_target("h:1 password=hunter2 bogus=hunter2", t);
    EXPECT_NE(err, "");
    EXPECT_EQ(err.find("hunter2"), std::string::npos);
    EXPECT_NE(parse_redis_target("h:1 tls tls_trusted_certificate=/nonexistent/ca.pem", t).find("cannot read"),
              std::string::npos);
}

TEST(CliRedis, PasswordFromTheEnvironment) {
    setenv("PAIRGUARD_REDIS_PASSWORD", "from-env", 1);
    RedisTarget t;
    ASSERT_EQ(parse_redis_target("h:1 user=u", t), "");  // user= needs a password: the environment's
    EXPECT_EQ(t.password, "from-env");
    ASSERT_EQ(parse_redis_target("h:1 password=given", t), "");
    EXPECT_EQ(t.password, "given");
    unsetenv("PAIRGUARD_REDIS_PASSWORD");
}

TEST(CliRedis, IpLiterals) {
    EXPECT_TRUE(is_ip_literal("127.0.0.1"));
    EXPECT_TRUE(is_ip_literal("::1"));
    EXPECT_FALSE(is_ip_literal("localhost"));
    EXPECT_FALSE(is_ip_literal("redis.example.org"));
}
