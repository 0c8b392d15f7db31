#include <gtest/gtest.h>

#include "cli_status.hpp"
#include "metrics.hpp"

using namespace pairguard::metrics;

namespace {

Snapshot sample() {
    Snapshot s;
    s.store_up = true;
    s.store_commands = 7;
    s.store_errors = {1, 0, 2};
    s.latency_buckets[0] = 3;  // <= 0.25 ms
    s.latency_buckets[2] = 1;  // <= 1 ms
    s.latency_sum_ns = 1500000;
    PolicyCounters p;
    p.name = "login";
    p.decisions[allowed] = 5;
    p.decisions[dry_run] = 2;
    p.outcomes[0] = 4;
    p.lockouts = 1;
    p.local_verdicts = 3;
    s.policies.push_back(p);
    s.pairing[0][0] = 2;
    s.auth[password][index_of(kAuthResults, "invalid_credentials")] = 1;
    return s;
}

}  // namespace

TEST(Metrics, PrometheusHasHelpTypeAndCumulativeBuckets) {
    std::string text = render_prometheus(sample());
    for (const char* name : {"pairguard_store_up", "pairguard_store_commands_total", "pairguard_store_errors_total",
                             "pairguard_store_latency_seconds", "pairguard_decisions_total", "pairguard_outcomes_total",
                             "pairguard_lockouts_total", "pairguard_local_verdicts_total", "pairguard_pairing_total",
                             "pairguard_auth_total"}) {
        EXPECT_NE(text.find(std::string("# HELP ") + name + " "), std::string::npos) << name;
        EXPECT_NE(text.find(std::string("# TYPE ") + name + " "), std::string::npos) << name;
    }
    EXPECT_NE(text.find("pairguard_store_latency_seconds_bucket{le=\"0.00025\"} 3\n"), std::string::npos);
    EXPECT_NE(text.find("pairguard_store_latency_seconds_bucket{le=\"0.0005\"} 3\n"), std::string::npos);
    EXPECT_NE(text.find("pairguard_store_latency_seconds_bucket{le=\"1\"} 4\n"), std::string::npos);
    EXPECT_NE(text.find("pairguard_store_latency_seconds_bucket{le=\"+Inf\"} 4\n"), std::string::npos);
    EXPECT_NE(text.find("pairguard_store_latency_seconds_count 4\n"), std::string::npos);
    EXPECT_NE(text.find("pairguard_store_latency_seconds_sum 0.0015\n"), std::string::npos);
    EXPECT_NE(text.find("pairguard_decisions_total{policy=\"login\",decision=\"dry_run\"} 2\n"), std::string::npos);
    EXPECT_NE(text.find("pairguard_decisions_total{policy=\"login\",decision=\"busy\"} 0\n"), std::string::npos);
    EXPECT_NE(text.find("pairguard_pairing_total{endpoint=\"request\",result=\"ok\"} 2\n"), std::string::npos);
    EXPECT_EQ(text.find("endpoint=\"approve\""), std::string::npos) << "unseen results are left out";
    EXPECT_NE(text.find("pairguard_auth_total{method=\"password\",result=\"invalid_credentials\"} 1\n"),
              std::string::npos);
}

TEST(Metrics, PolicyNamesAreEscaped) {
    Snapshot s;
    PolicyCounters p;
    p.name = "a\"b\\c";
    s.policies.push_back(p);
    EXPECT_NE(render_prometheus(s).find("policy=\"a\\\"b\\\\c\""), std::string::npos);
}

TEST(Metrics, JsonHoldsTheSameNumbers) {
    std::string json = render_json(sample());
    EXPECT_NE(json.find("\"store\":{\"up\":1,\"commands\":7,\"errors\":{\"error\":1,\"timeout\":0,\"down\":2}"),
              std::string::npos)
        << json;
    EXPECT_NE(json.find("\"login\":{\"decisions\":{\"allowed\":5,\"locked\":0,\"busy\":0,\"key_required\":0,\"dry_run\":2}"),
              std::string::npos)
        << json;
    EXPECT_NE(json.find("\"lockouts\":1,\"local_verdicts\":3"), std::string::npos) << json;
    EXPECT_NE(json.find("\"pairing\":{\"request\":{\"ok\":2}}"), std::string::npos) << json;
    EXPECT_NE(json.find("\"auth\":{\"password\":{\"invalid_credentials\":1}}"), std::string::npos) << json;
}

TEST(Metrics, AnswersMapToFixedResults) {
    EXPECT_STREQ(kPairingResults[pairing_result(201, "{\"code\":\"ABCD2345\"}")], "ok");
    EXPECT_STREQ(kPairingResults[pairing_result(404, "{\"error\":\"invalid_code\"}")], "invalid_code");
    EXPECT_STREQ(kPairingResults[pairing_result(400, "{\"error\":\"invalid_request\",\"message\":\"x\"}")],
                 "invalid_request");
    EXPECT_STREQ(kPairingResults[pairing_result(418, "{\"error\":\"made_up_by_someone\"}")], "other");
    EXPECT_STREQ(kPairingResults[pairing_result(500, "not json")], "other");
    EXPECT_STREQ(kAuthResults[auth_result(200, "{}", false, false)], "ok");
    EXPECT_STREQ(kAuthResults[auth_result(200, "{}", false, true)], "challenge");
    EXPECT_STREQ(kAuthResults[auth_result(401, "{\"error\":\"unauthorized\"}", true, false)], "continue");
    EXPECT_STREQ(kAuthResults[auth_result(403, "", false, false)], "refused");
    EXPECT_STREQ(kAuthResults[auth_result(403, "{\"error\":\"invalid_credentials\"}", false, false)],
                 "invalid_credentials");
    EXPECT_EQ(haystack_method("SCRAM handshakeToken=x"), scram);
    EXPECT_EQ(haystack_method("hello username=x"), scram);
    EXPECT_EQ(haystack_method("PLAINTEXT username=x"), plaintext);
    EXPECT_EQ(haystack_method("BEARER authToken=x"), session);
}

TEST(Metrics, StatusTableShowsPoliciesAndQuantiles) {
    std::string err;
    std::string table = status_table(render_json(sample()), err);
    EXPECT_EQ(err, "");
    EXPECT_NE(table.find("store: up  commands 7  errors error 1 timeout 0 down 2"), std::string::npos) << table;
    EXPECT_NE(table.find("latency p50 <=0.25ms p99 <=1ms"), std::string::npos) << table;
    EXPECT_NE(table.find("login"), std::string::npos);
    EXPECT_NE(table.find("PAIRING"), std::string::npos);
    EXPECT_EQ(status_table("{\"x\":1}", err), "");
    EXPECT_NE(err, "");
}

TEST(Metrics, StatusUrls) {
    pairguard::cli::HttpUrl u;
    EXPECT_EQ(pairguard::cli::parse_http_url("http://127.0.0.1:8080/pairguard/status?format=json", u), "");
    EXPECT_EQ(u.host, "127.0.0.1");
    EXPECT_EQ(u.port, "8080");
    EXPECT_EQ(u.path, "/pairguard/status?format=json");
    EXPECT_EQ(pairguard::cli::parse_http_url("http://[::1]/s", u), "");
    EXPECT_EQ(u.host, "::1");
    EXPECT_EQ(u.port, "80");
    EXPECT_NE(pairguard::cli::parse_http_url("https://x/", u), "");
    EXPECT_NE(pairguard::cli::parse_http_url("http://x:y/", u), "");
}
