#include "metrics.hpp"

#include <cstdio>
#include <stdexcept>

#include "json.hpp"

namespace pairguard::metrics {

namespace {

bool starts_with_ci(std::string_view s, std::string_view prefix) {
    if (s.size() < prefix.size()) {
        return false;
    }
    for (size_t i = 0; i < prefix.size(); i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
        if (c != prefix[i]) {
            return false;
        }
    }
    return true;
}

std::string number(double v) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.9g", v);
    return buf;
}

std::string bound(size_t i) {
    return i < kLatencyBounds.size() ? number(kLatencyBounds[i]) : "+Inf";
}

// Label values come from the configuration (policy names) or the fixed
// lists above; escaped all the same.
std::string escape_label(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (char c : v) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '"') {
            out += "\\\"";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

struct Writer {
    std::string out;

    void head(const char* name, const char* type, const char* help) {
        out += "# HELP ";
        out += name;
        out += ' ';
        out += help;
        out += "\n# TYPE ";
        out += name;
        out += ' ';
        out += type;
        out += '\n';
    }

    // labels: name="value" pairs, already escaped
    void sample(const char* name, std::string_view labels, const std::string& value) {
        out += name;
        if (!labels.empty()) {
            out += '{';
            out += labels;
            out += '}';
        }
        out += ' ';
        out += value;
        out += '\n';
    }

    void sample(const char* name, std::string_view labels, uint64_t value) {
        sample(name, labels, std::to_string(value));
    }
};

std::string label(const char* name, std::string_view value) {
    return std::string(name) + "=\"" + escape_label(value) + "\"";
}

json_t* jnum(uint64_t v) {
    return json_integer(static_cast<json_int_t>(v));
}

template <size_t N, size_t M>
json_t* seen_results(const std::array<uint64_t, N>& counts, const std::array<const char*, M>& names) {
    json_t* o = json_object();
    if (o == nullptr) {
        throw std::bad_alloc();
    }
    for (size_t i = 0; i < N; i++) {
        if (counts[i] != 0) {
            json_set(o, names[i], jnum(counts[i]));
        }
    }
    return o;
}

json_t* object_or_throw() {
    json_t* o = json_object();
    if (o == nullptr) {
        throw std::bad_alloc();
    }
    return o;
}

uint64_t member_u64(json_t* obj, const char* key) {
    json_t* v = json_object_get(obj, key);
    return json_is_integer(v) ? static_cast<uint64_t>(json_integer_value(v)) : 0;
}

// The upper bound of the bucket holding quantile q (a histogram_quantile
// without interpolation): "" when nothing was observed.
std::string quantile_bound(json_t* buckets, uint64_t count, double q) {
    if (count == 0 || !json_is_object(buckets)) {
        return "-";
    }
    double want = q * static_cast<double>(count);
    for (size_t i = 0; i < kLatencyBuckets; i++) {
        std::string b = bound(i);
        uint64_t cumulative = member_u64(buckets, b.c_str());
        if (static_cast<double>(cumulative) >= want) {
            if (i == kLatencyBounds.size()) {
                return ">1s";
            }
            return "<=" + number(kLatencyBounds[i] * 1000) + "ms";
        }
    }
    return "-";
}

void pad(std::string& out, std::string_view s, size_t width, bool right) {
    if (right) {
        out.append(width > s.size() ? width - s.size() : 0, ' ');
        out += s;
    } else {
        out += s;
        out.append(width > s.size() ? width - s.size() : 0, ' ');
    }
}

}  // namespace

std::string error_code(std::string_view body) {
    if (body.empty() || body.front() != '{') {
        return "";
    }
    JsonPtr j = json_load_object(body);
    return j ? json_get_string(j.get(), "error") : "";
}

size_t pairing_result(int status, std::string_view body) {
    if (status >= 200 && status < 300) {
        return 0;
    }
    return index_of(kPairingResults, error_code(body));
}

size_t auth_result(int status, std::string_view body, bool scram_continues, bool challenge_endpoint) {
    if (status >= 200 && status < 300) {
        return challenge_endpoint ? index_of(kAuthResults, "challenge") : 0;
    }
    if (status == 401 && scram_continues) {
        return index_of(kAuthResults, "continue");
    }
    std::string code = error_code(body);
    if (code.empty() && status == 403) {
        return index_of(kAuthResults, "refused");
    }
    return index_of(kAuthResults, code);
}

AuthMethod haystack_method(std::string_view authorization) {
    if (starts_with_ci(authorization, "plaintext")) {
        return plaintext;
    }
    if (starts_with_ci(authorization, "bearer")) {
        return session;
    }
    return scram;
}

std::string render_prometheus(const Snapshot& s) {
    Writer w;
    w.out.reserve(2048 + s.policies.size() * 1024);

    w.head("pairguard_store_up", "gauge", "Whether this node's workers reach the store (1) or not (0).");
    w.sample("pairguard_store_up", "", s.store_up ? 1 : 0);

    w.head("pairguard_store_commands_total", "counter", "Store commands sent by this node's workers.");
    w.sample("pairguard_store_commands_total", "", s.store_commands);

    w.head("pairguard_store_errors_total", "counter", "Store commands that failed, by reason.");
    for (size_t i = 0; i < kStoreErrors.size(); i++) {
        w.sample("pairguard_store_errors_total", label("reason", kStoreErrors[i]), s.store_errors[i]);
    }

    w.head("pairguard_store_latency_seconds", "histogram", "Time from queueing a store command to its reply.");
    uint64_t cumulative = 0;
    for (size_t i = 0; i < kLatencyBuckets; i++) {
        cumulative += s.latency_buckets[i];
        w.sample("pairguard_store_latency_seconds_bucket", label("le", bound(i)), cumulative);
    }
    w.sample("pairguard_store_latency_seconds_sum", "", number(static_cast<double>(s.latency_sum_ns) / 1e9));
    w.sample("pairguard_store_latency_seconds_count", "", cumulative);

    w.head("pairguard_decisions_total", "counter",
           "Guard decisions per policy; dry_run counts what a dry run would have refused.");
    for (const auto& p : s.policies) {
        std::string pl = label("policy", p.name);
        for (size_t i = 0; i < kDecisions.size(); i++) {
            w.sample("pairguard_decisions_total", pl + "," + label("decision", kDecisions[i]), p.decisions[i]);
        }
    }
    w.head("pairguard_outcomes_total", "counter", "Upstream answers classified per policy.");
    for (const auto& p : s.policies) {
        std::string pl = label("policy", p.name);
        for (size_t i = 0; i < kOutcomes.size(); i++) {
            w.sample("pairguard_outcomes_total", pl + "," + label("outcome", kOutcomes[i]), p.outcomes[i]);
        }
    }
    w.head("pairguard_lockouts_total", "counter", "Locks started per policy.");
    for (const auto& p : s.policies) {
        w.sample("pairguard_lockouts_total", label("policy", p.name), p.lockouts);
    }
    w.head("pairguard_local_verdicts_total", "counter",
           "Requests refused from this node's shared memory, without the store.");
    for (const auto& p : s.policies) {
        w.sample("pairguard_local_verdicts_total", label("policy", p.name), p.local_verdicts);
    }

    w.head("pairguard_pairing_total", "counter", "Pairing endpoint answers by endpoint and result.");
    for (size_t e = 0; e < kPairingEndpoints.size(); e++) {
        for (size_t i = 0; i < kPairingResults.size(); i++) {
            if (s.pairing[e][i] != 0) {
                w.sample("pairguard_pairing_total",
                         label("endpoint", kPairingEndpoints[e]) + "," + label("result", kPairingResults[i]),
                         s.pairing[e][i]);
            }
        }
    }
    w.head("pairguard_auth_total", "counter", "Authentication answers by method and result.");
    for (size_t m = 0; m < kAuthMethods.size(); m++) {
        for (size_t i = 0; i < kAuthResults.size(); i++) {
            if (s.auth[m][i] != 0) {
                w.sample("pairguard_auth_total",
                         label("method", kAuthMethods[m]) + "," + label("result", kAuthResults[i]), s.auth[m][i]);
            }
        }
    }
    return std::move(w.out);
}

std::string render_json(const Snapshot& s) {
    JsonPtr root(object_or_throw());

    json_t* store = object_or_throw();
    json_set(root.get(), "store", store);
    json_set(store, "up", json_integer(s.store_up ? 1 : 0));
    json_set(store, "commands", jnum(s.store_commands));
    json_t* errors = object_or_throw();
    json_set(store, "errors", errors);
    for (size_t i = 0; i < kStoreErrors.size(); i++) {
        json_set(errors, kStoreErrors[i], jnum(s.store_errors[i]));
    }
    json_t* latency = object_or_throw();
    json_set(store, "latency_seconds", latency);
    json_t* buckets = object_or_throw();
    uint64_t cumulative = 0;
    for (size_t i = 0; i < kLatencyBuckets; i++) {
        cumulative += s.latency_buckets[i];
        json_set(buckets, bound(i).c_str(), jnum(cumulative));
    }
    json_set(latency, "count", jnum(cumulative));
    json_set(latency, "sum", json_real(static_cast<double>(s.latency_sum_ns) / 1e9));
    json_set(latency, "buckets", buckets);

    json_t* policies = object_or_throw();
    json_set(root.get(), "policies", policies);
    for (const auto& p : s.policies) {
        json_t* o = object_or_throw();
        json_set(policies, p.name.c_str(), o);
        json_t* d = object_or_throw();
        json_set(o, "decisions", d);
        for (size_t i = 0; i < kDecisions.size(); i++) {
            json_set(d, kDecisions[i], jnum(p.decisions[i]));
        }
        json_t* out = object_or_throw();
        json_set(o, "outcomes", out);
        for (size_t i = 0; i < kOutcomes.size(); i++) {
            json_set(out, kOutcomes[i], jnum(p.outcomes[i]));
        }
        json_set(o, "lockouts", jnum(p.lockouts));
        json_set(o, "local_verdicts", jnum(p.local_verdicts));
    }

    json_t* pairing = object_or_throw();
    json_set(root.get(), "pairing", pairing);
    for (size_t e = 0; e < kPairingEndpoints.size(); e++) {
        json_t* o = seen_results(s.pairing[e], kPairingResults);
        if (json_object_size(o) == 0) {
            json_decref(o);
            continue;
        }
        json_set(pairing, kPairingEndpoints[e], o);
    }
    json_t* auth = object_or_throw();
    json_set(root.get(), "auth", auth);
    for (size_t m = 0; m < kAuthMethods.size(); m++) {
        json_t* o = seen_results(s.auth[m], kAuthResults);
        if (json_object_size(o) == 0) {
            json_decref(o);
            continue;
        }
        json_set(auth, kAuthMethods[m], o);
    }
    return json_dump(root);
}

std::string status_table(std::string_view text, std::string& err) {
    JsonPtr root = json_load_object(text);
    json_t* store = root ? json_object_get(root.get(), "store") : nullptr;
    json_t* policies = root ? json_object_get(root.get(), "policies") : nullptr;
    if (!json_is_object(store) || !json_is_object(policies)) {
        err = "not a pairguard_status document";
        return "";
    }
    std::string out;
    json_t* errors = json_object_get(store, "errors");
    json_t* latency = json_object_get(store, "latency_seconds");
    uint64_t count = member_u64(latency, "count");
    out += "store: " + std::string(member_u64(store, "up") ? "up" : "DOWN");
    out += "  commands " + std::to_string(member_u64(store, "commands"));
    out += "  errors";
    for (const char* reason : kStoreErrors) {
        out += std::string(" ") + reason + " " + std::to_string(member_u64(errors, reason));
    }
    json_t* buckets = json_object_get(latency, "buckets");
    out += "  latency p50 " + quantile_bound(buckets, count, 0.5) + " p99 " + quantile_bound(buckets, count, 0.99);
    out += "\n\n";

    static const std::array<const char*, 11> heads = {"POLICY",  "ALLOWED", "LOCKED",  "BUSY",     "KEY_REQ", "DRY_RUN",
                                                      "FAILURE", "SUCCESS", "NEUTRAL", "LOCKOUTS", "LOCAL"};
    size_t name_w = 6;
    const char* name;
    json_t* p;
    json_object_foreach(policies, name, p) {
        name_w = std::max(name_w, std::string_view(name).size());
    }
    for (size_t i = 0; i < heads.size(); i++) {
        pad(out, heads[i], i == 0 ? name_w : 9, i != 0);
        out += i + 1 < heads.size() ? " " : "\n";
    }
    json_object_foreach(policies, name, p) {
        json_t* d = json_object_get(p, "decisions");
        json_t* o = json_object_get(p, "outcomes");
        std::vector<uint64_t> row;
        for (const char* k : kDecisions) {
            row.push_back(member_u64(d, k));
        }
        for (const char* k : kOutcomes) {
            row.push_back(member_u64(o, k));
        }
        row.push_back(member_u64(p, "lockouts"));
        row.push_back(member_u64(p, "local_verdicts"));
        pad(out, name, name_w, false);
        for (uint64_t v : row) {
            out += ' ';
            pad(out, std::to_string(v), 9, true);
        }
        out += '\n';
    }
    if (json_object_size(policies) == 0) {
        out += "(no policies)\n";
    }

    for (const char* section : {"pairing", "auth"}) {
        json_t* sec = json_object_get(root.get(), section);
        if (!json_is_object(sec) || json_object_size(sec) == 0) {
            continue;
        }
        out += '\n';
        std::string head = section;
        for (auto& c : head) {
            c = static_cast<char>(c - 'a' + 'A');
        }
        pad(out, head, 10, false);
        out += " ";
        pad(out, "RESULT", 20, false);
        out += " COUNT\n";
        const char* key;
        json_t* results;
        json_object_foreach(sec, key, results) {
            const char* result;
            json_t* n;
            json_object_foreach(results, result, n) {
                pad(out, key, 10, false);
                out += " ";
                pad(out, result, 20, false);
                out += " " + std::to_string(json_is_integer(n) ? json_integer_value(n) : 0) + "\n";
            }
        }
    }
    return out;
}

}  // namespace pairguard::metrics
