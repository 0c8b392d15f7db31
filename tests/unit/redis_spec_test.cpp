#include "redis_spec.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <unistd.h>

using namespace pairguard;

TEST(RedisSpec, SingleAddressAndParameters) {
    RedisSpec s;
    ASSERT_EQ(parse_redis_spec("10.0.0.5:6380 user=edge password=pw db=2 timeout=250ms prefix=x:", s), "");
    EXPECT_EQ(s.topology, RedisTopology::single);
    ASSERT_EQ(s.endpoints.size(), 1u);
    EXPECT_EQ(s.endpoints[0].host, "10.0.0.5");
    EXPECT_EQ(s.endpoints[0].port, 6380);
    EXPECT_EQ(s.user, "edge");
    EXPECT_EQ(s.password, "pw");
    EXPECT_EQ(s.db, 2);
    EXPECT_EQ(s.timeout_ms, 250);
    EXPECT_EQ(s.prefix, "x:");
    EXPECT_FALSE(s.tls.on);
}

TEST(RedisSpec, AddressForms) {
    RedisSpec s;
    ASSERT_EQ(parse_redis_spec("redis.example.com", s), "");
    EXPECT_EQ(s.endpoints[0].host, "redis.example.com");
    EXPECT_EQ(s.endpoints[0].port, 6379);
    ASSERT_EQ(parse_redis_spec("[::1]:7000", s), "");
    EXPECT_EQ(s.endpoints[0].host, "::1");
    EXPECT_EQ(s.endpoints[0].label(), "[::1]:7000");
    ASSERT_EQ(parse_redis_spec("unix:/run/redis.sock", s), "");
    EXPECT_EQ(s.endpoints[0].unix_path, "/run/redis.sock");
    for (const char* bad : {"host:", "host:0", "host:70000", "::1", "[::1", "unix:", "a,b:1"}) {
        EXPECT_NE(parse_redis_spec(bad, s), "") << bad;
    }
}

TEST(RedisSpec, SentinelAndCluster) {
    RedisSpec s;
    ASSERT_EQ(parse_redis_spec("sentinel=10.0.0.5:26379,10.0.0.6:26379 master=edge sentinel_user=su "
                               "sentinel_password=sp tls",
                               s),
              "");
    EXPECT_EQ(s.topology, RedisTopology::sentinel);
    ASSERT_EQ(s.endpoints.size(), 2u);
    EXPECT_EQ(s.endpoints[1].host, "10.0.0.6");
    EXPECT_EQ(s.master_name, "edge");
    EXPECT_EQ(s.sentinel_user, "su");
    EXPECT_EQ(s.sentinel_password, "sp");
    EXPECT_TRUE(s.tls.on);
    EXPECT_TRUE(s.tls.verify);

    EXPECT_NE(parse_redis_spec("sentinel=10.0.0.5:26379", s), "");          // no master
    EXPECT_NE(parse_redis_spec("10.0.0.5:6379 master=edge", s), "");        // master without sentinel
    EXPECT_NE(parse_redis_spec("sentinel=unix:/x master=m", s), "");        // no unix sentinels
    EXPECT_NE(parse_redis_spec("sentinel=a:1,,b:2 master=m", s), "");

    ASSERT_EQ(parse_redis_spec("cluster=127.0.0.1:7000,127.0.0.1:7001 password=p", s), "");
    EXPECT_EQ(s.topology, RedisTopology::cluster);
    EXPECT_EQ(s.endpoints.size(), 2u);
    EXPECT_NE(parse_redis_spec("cluster=127.0.0.1:7000 db=1", s), "");
}

TEST(RedisSpec, TlsParameters) {
    RedisSpec s;
    ASSERT_EQ(parse_redis_spec("r.example:6380 tls tls_verify=off tls_trusted_certificate=/ca.pem "
                               "tls_server_name=redis.internal tls_certificate=/c.pem tls_certificate_key=/k.pem",
                               s),
              "");
    EXPECT_TRUE(s.tls.on);
    EXPECT_FALSE(s.tls.verify);
    EXPECT_EQ(s.tls.trusted_certificate, "/ca.pem");
    EXPECT_EQ(s.tls.server_name, "redis.internal");
    EXPECT_EQ(s.tls.certificate, "/c.pem");
    EXPECT_EQ(s.tls.certificate_key, "/k.pem");
    EXPECT_NE(parse_redis_spec("r:1 tls_verify=off", s), "");         // needs tls
    EXPECT_NE(parse_redis_spec("r:1 tls tls_verify=maybe", s), "");
    EXPECT_NE(parse_redis_spec("r:1 tls tls_certificate=/c.pem", s), "");  // without key
    EXPECT_NE(parse_redis_spec("unix:/s tls", s), "");
}

TEST(RedisSpec, ErrorsNeverEchoPasswords) {
    RedisSpec s;
    std::string err = parse_redis_spec("r:1 password=hunter2 bogus=hunter3", s);
    EXPECT_NE(err, "");
    EXPECT_EQ(err.find("hunter"), std::string::npos);
    err = parse_redis_spec("r:1 passwrd=hunter2", s);
    EXPECT_EQ(err.find("hunter"), std::string::npos);
    EXPECT_NE(parse_redis_spec("r:1 password=a password_file=/etc/hostname", s), "");
    EXPECT_NE(parse_redis_spec("r:1 user=u", s), "");  // a user needs a password
    // a failed parse leaves the output untouched
    RedisSpec keep;
    keep.db = 7;
    EXPECT_NE(parse_redis_spec("r:1 db=x", keep), "");
    EXPECT_EQ(keep.db, 7);
}

TEST(RedisSpec, PasswordFile) {
    char path[] = "/tmp/pg_pw_XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    close(fd);
    std::ofstream(path) << "s3cret\n";
    RedisSpec s;
    ASSERT_EQ(parse_redis_spec(std::string("r:1 password_file=") + path, s), "");
    EXPECT_EQ(s.password, "s3cret");
    ASSERT_EQ(parse_redis_spec(std::string("sentinel=a:1 master=m sentinel_password_file=") + path, s), "");
    EXPECT_EQ(s.sentinel_password, "s3cret");
    std::remove(path);
    EXPECT_NE(parse_redis_spec(std::string("r:1 password_file=") + path, s), "");
    // a directory is a clear error, not an exception (found by fuzz_redis)
    EXPECT_EQ(parse_redis_spec("r:1 password_file=/", s), "password_file: \"/\" is not a file");
}

TEST(RedisSpec, ClusterKeySlot) {
    // values from the Redis Cluster specification and redis-cli CLUSTER KEYSLOT
    EXPECT_EQ(cluster_key_slot("123456789"), 12739);
    EXPECT_EQ(cluster_key_slot("foo"), 12182);
    EXPECT_EQ(cluster_key_slot("{user1000}.following"), cluster_key_slot("user1000"));
    EXPECT_EQ(cluster_key_slot("{}foo"), cluster_key_slot("{}foo"));  // empty tag: the whole key
    EXPECT_NE(cluster_key_slot("{}foo"), cluster_key_slot(""));
    EXPECT_EQ(cluster_key_slot("pairguard:{abc}"), cluster_key_slot("abc"));
}

TEST(RedisSpec, Redirects) {
    uint16_t slot = 0;
    RedisEndpoint to;
    EXPECT_EQ(parse_redis_redirect("MOVED 3999 127.0.0.1:6381", slot, to), RedisRedirect::moved);
    EXPECT_EQ(slot, 3999);
    EXPECT_EQ(to.host, "127.0.0.1");
    EXPECT_EQ(to.port, 6381);
    EXPECT_EQ(parse_redis_redirect("ASK 12 ::1:7002", slot, to), RedisRedirect::ask);
    EXPECT_EQ(to.host, "::1");
    EXPECT_EQ(to.port, 7002);
    EXPECT_EQ(parse_redis_redirect("MOVED 5 :7003", slot, to), RedisRedirect::moved);
    EXPECT_EQ(to.host, "");
    EXPECT_EQ(to.port, 7003);
    EXPECT_EQ(parse_redis_redirect("MOVED 16384 a:1", slot, to), RedisRedirect::none);
    EXPECT_EQ(parse_redis_redirect("ERR something", slot, to), RedisRedirect::none);
    EXPECT_EQ(parse_redis_redirect("MOVED x a:1", slot, to), RedisRedirect::none);
}
