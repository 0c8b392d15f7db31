#include "cli_store.hpp"

#include <openssl/crypto.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "cli_redis_conn.hpp"

namespace pairguard::cli {

std::string parse_redis_target(std::string_view spec, RedisTarget& out) {
    std::vector<std::string_view> words = split_redis_words(spec);
    // $PAIRGUARD_REDIS_PASSWORD when the words give no password (it may go
    // with user=, which the parser checks)
    std::string env_password;
    const char* env = std::getenv("PAIRGUARD_REDIS_PASSWORD");
    bool has_password = std::any_of(words.begin(), words.end(), [](std::string_view w) {
        return w.rfind("password=", 0) == 0 || w.rfind("password_file=", 0) == 0;
    });
    if (!words.empty() && !has_password && env != nullptr && *env != '\0') {
        env_password = std::string("password=") + env;
        words.push_back(env_password);
    }
    RedisSpec r;
    std::string err = parse_redis_spec(words, r);
    OPENSSL_cleanse(env_password.data(), env_password.size());
    if (!err.empty()) {
        return err;
    }
    if (r.timeout_ms == 0) {
        r.timeout_ms = kCliRedisTimeoutMs;
    }
    if (r.prefix.empty()) {
        r.prefix = "pairguard:";
    }
    const std::pair<const char*, const std::string*> files[] = {
        {"tls_trusted_certificate", &r.tls.trusted_certificate},
        {"tls_certificate", &r.tls.certificate},
        {"tls_certificate_key", &r.tls.certificate_key},
    };
    for (const auto& [name, path] : files) {
        if (!path->empty() && access(path->c_str(), R_OK) != 0) {
            return std::string(name) + ": cannot read \"" + *path + "\": " + std::strerror(errno);
        }
    }
    out = std::move(r);
    return {};
}

std::string read_secret_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        throw std::runtime_error("cannot read secret file \"" + path + "\": " + std::strerror(errno));
    }
    // the module reads one block of 4096 bytes and keeps every byte of it
    std::string secret(4096, '\0');
    f.read(secret.data(), static_cast<std::streamsize>(secret.size()));
    secret.resize(static_cast<size_t>(f.gcount()));
    if (f.bad()) {
        OPENSSL_cleanse(secret.data(), secret.size());
        throw std::runtime_error("cannot read secret file \"" + path + "\"");
    }
    if (secret.size() < kSecretMinBytes) {
        throw std::runtime_error("secret file \"" + path + "\" holds " + std::to_string(secret.size())
                                 + " bytes, at least " + std::to_string(kSecretMinBytes) + " are needed");
    }
    return secret;
}

Reply reply_from_hiredis(const redisReply* r) {
    Reply out;
    if (r == nullptr) {
        return out;
    }
    switch (r->type) {
    case REDIS_REPLY_INTEGER: out = Reply::of_integer(r->integer); break;
    case REDIS_REPLY_STRING: out = Reply::of_string(std::string(r->str, r->len)); break;
    case REDIS_REPLY_STATUS:
        out.type = Reply::Type::status;
        out.str.assign(r->str, r->len);
        break;
    case REDIS_REPLY_ERROR: out = Reply::of_error(std::string(r->str, r->len)); break;
    case REDIS_REPLY_ARRAY: {
        std::vector<Reply> e;
        for (size_t i = 0; i < r->elements; i++) {
            e.push_back(reply_from_hiredis(r->element[i]));
        }
        out = Reply::of_array(std::move(e));
        break;
    }
    case REDIS_REPLY_NIL:
    default: break;
    }
    return out;
}

namespace {

std::string upper(std::string_view s) {
    std::string out(s);
    for (char& ch : out) {
        if (ch >= 'a' && ch <= 'z') {
            ch = static_cast<char>(ch - 'a' + 'A');
        }
    }
    return out;
}

bool is_redirect_or_retry(const Reply& r) {
    return r.type == Reply::Type::error
           && (r.str.rfind("MOVED ", 0) == 0 || r.str.rfind("ASK ", 0) == 0 || r.str.rfind("TRYAGAIN", 0) == 0
               || r.str.rfind("CLUSTERDOWN", 0) == 0);
}

void pause_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

std::vector<std::string> evalsha_argv(const StoreCall& call) {
    std::vector<std::string> argv{"EVALSHA", call.script->sha1, std::to_string(call.keys.size())};
    argv.insert(argv.end(), call.keys.begin(), call.keys.end());
    argv.insert(argv.end(), call.args.begin(), call.args.end());
    return argv;
}

}  // namespace

std::optional<std::string_view> cluster_route_key(const std::vector<std::string>& argv) {
    if (argv.size() < 2) {
        return std::nullopt;
    }
    std::string cmd = upper(argv[0]);
    if (cmd == "EVAL" || cmd == "EVALSHA" || cmd == "EVAL_RO" || cmd == "EVALSHA_RO" || cmd == "FCALL") {
        if (argv.size() > 3 && argv[2] != "0") {
            return std::string_view(argv[3]);
        }
        return std::nullopt;
    }
    if (cmd == "XREAD" || cmd == "XREADGROUP") {
        for (size_t i = 1; i + 1 < argv.size(); i++) {
            if (upper(argv[i]) == "STREAMS") {
                return std::string_view(argv[i + 1]);
            }
        }
        return std::nullopt;
    }
    static const char* const keyless[] = {"TIME", "PING", "SCRIPT", "INFO", "SCAN", "CLUSTER", "ROLE", "AUTH",
                                          "SELECT", "ECHO", "DBSIZE", "FLUSHALL", "FLUSHDB", "CONFIG", "HELLO",
                                          "CLIENT", "COMMAND", "ACL", "READONLY", "READWRITE", "ASKING", "SENTINEL"};
    for (const char* k : keyless) {
        if (cmd == k) {
            return std::nullopt;
        }
    }
    return std::string_view(argv[1]);
}

SyncRedis::SyncRedis(const RedisTarget& t) : spec_(t) {
    // OpenSSL writes with write(2): a server that hangs up must not kill the CLI
    std::signal(SIGPIPE, SIG_IGN);
    if (spec_.endpoints.empty()) {
        throw StoreUnreachable("redis: no address");
    }
    switch (spec_.topology) {
    case RedisTopology::single:
        node_index(spec_.endpoints.front());
        conn(0);
        break;
    case RedisTopology::sentinel: find_master(); break;
    case RedisTopology::cluster:
        slot_node_.assign(kClusterSlots, -1);
        refresh_slots();
        break;
    }
}

SyncRedis::~SyncRedis() = default;

std::unique_ptr<RedisConn> SyncRedis::open(const RedisEndpoint& e, bool sentinel) {
    auto c = std::make_unique<RedisConn>(e, spec_.tls, spec_.timeout_ms, sentinel ? "sentinel" : "redis");
    const std::string& user = sentinel ? spec_.sentinel_user : spec_.user;
    const std::string& password = sentinel ? spec_.sentinel_password : spec_.password;
    if (!password.empty()) {
        std::vector<std::string> auth{"AUTH"};
        if (!user.empty()) {
            auth.push_back(user);
        }
        auth.push_back(password);
        Reply r = c->call(auth);
        OPENSSL_cleanse(auth.back().data(), auth.back().size());
        if (r.type == Reply::Type::error) {
            throw StoreUnreachable(c->label() + ": authentication failed: " + r.str);
        }
    }
    if (!sentinel && spec_.db != 0 && spec_.topology != RedisTopology::cluster) {
        Reply r = c->call({"SELECT", std::to_string(spec_.db)});
        if (r.type == Reply::Type::error) {
            throw StoreUnreachable(c->label() + ": SELECT failed: " + r.str);
        }
    }
    return c;
}

size_t SyncRedis::node_index(const RedisEndpoint& e) {
    for (size_t i = 0; i < nodes_.size(); i++) {
        if (nodes_[i].host == e.host && nodes_[i].port == e.port && nodes_[i].unix_path == e.unix_path) {
            return i;
        }
    }
    nodes_.push_back(e);
    conns_.emplace_back();
    loaded_.emplace_back();
    return nodes_.size() - 1;
}

RedisConn& SyncRedis::conn(size_t node) {
    if (!conns_[node]) {
        conns_[node] = open(nodes_[node], false);
    }
    return *conns_[node];
}

void SyncRedis::drop(size_t node) {
    conns_[node].reset();
    loaded_[node].clear();
}

void SyncRedis::find_master() {
    std::string why;
    auto note = [&why](const std::string& s) { why += (why.empty() ? "" : "; ") + s; };
    for (const RedisEndpoint& s : spec_.endpoints) {
        try {
            std::unique_ptr<RedisConn> sentinel = open(s, true);
            Reply r = sentinel->call({"SENTINEL", "get-master-addr-by-name", spec_.master_name});
            if (r.type == Reply::Type::error) {
                note(sentinel->label() + ": " + r.str);
                continue;
            }
            if (r.type != Reply::Type::array || r.elements.size() != 2 || r.elements[0].str.empty()) {
                note(sentinel->label() + " does not know master \"" + spec_.master_name + "\"");
                continue;
            }
            RedisEndpoint m;
            m.host = r.elements[0].str;
            m.port = std::atoi(r.elements[1].str.c_str());
            std::unique_ptr<RedisConn> c = open(m, false);
            Reply role = c->call({"ROLE"});
            if (role.type != Reply::Type::array || role.elements.empty() || role.elements[0].str != "master") {
                note(c->label() + " (given by " + sentinel->label() + ") is not a master: ROLE says "
                     + (role.type == Reply::Type::array && !role.elements.empty() ? role.elements[0].str : role.str));
                continue;
            }
            size_t i = node_index(m);
            conns_[i] = std::move(c);
            return;
        } catch (const StoreUnreachable& e) {
            note(e.what());
        }
    }
    throw StoreUnreachable("redis: no sentinel gave a master \"" + spec_.master_name + "\" that ROLE confirms (" + why
                           + ")");
}

std::vector<size_t> SyncRedis::masters() {
    std::vector<size_t> out;
    for (int n : slot_node_) {
        if (n >= 0 && std::find(out.begin(), out.end(), static_cast<size_t>(n)) == out.end()) {
            out.push_back(static_cast<size_t>(n));
        }
    }
    return out;
}

void SyncRedis::refresh_slots() {
    std::vector<RedisEndpoint> ask;
    for (size_t n : masters()) {
        ask.push_back(nodes_[n]);
    }
    ask.insert(ask.end(), spec_.endpoints.begin(), spec_.endpoints.end());
    std::string why;
    for (const RedisEndpoint& e : ask) {
        size_t idx = node_index(e);
        try {
            Reply r = conn(idx).call({"CLUSTER", "SLOTS"});
            if (r.type != Reply::Type::array) {
                why += (why.empty() ? "" : "; ") + e.label() + ": CLUSTER SLOTS: " + r.str;
                continue;
            }
            std::vector<int> map(kClusterSlots, -1);
            bool any = false;
            for (const Reply& range : r.elements) {
                if (range.type != Reply::Type::array || range.elements.size() < 3
                    || range.elements[2].type != Reply::Type::array || range.elements[2].elements.size() < 2) {
                    continue;
                }
                int64_t from = range.elements[0].integer, to = range.elements[1].integer;
                RedisEndpoint m;
                m.host = range.elements[2].elements[0].str;
                if (m.host.empty() || m.host == "?") {
                    m.host = e.host;  // "the node you asked"
                }
                m.port = static_cast<int>(range.elements[2].elements[1].integer);
                int node = static_cast<int>(node_index(m));
                for (int64_t s = std::max<int64_t>(from, 0); s <= to && s < kClusterSlots; s++) {
                    map[static_cast<size_t>(s)] = node;
                    any = true;
                }
            }
            if (!any) {
                why += (why.empty() ? "" : "; ") + e.label() + " has no slots";
                continue;
            }
            slot_node_ = std::move(map);
            return;
        } catch (const StoreUnreachable& ex) {
            drop(idx);
            why += (why.empty() ? "" : "; ") + std::string(ex.what());
        }
    }
    throw StoreUnreachable("redis cluster: no node gave the slot map (" + why + ")");
}

size_t SyncRedis::route(const std::vector<std::string>& argv) {
    if (!cluster()) {
        return 0;
    }
    std::optional<std::string_view> key = cluster_route_key(argv);
    if (!key) {
        std::vector<size_t> m = masters();
        if (m.empty()) {
            refresh_slots();
            m = masters();
        }
        return m.front();
    }
    uint16_t slot = cluster_key_slot(*key);
    if (slot_node_[slot] < 0) {
        refresh_slots();
        if (slot_node_[slot] < 0) {
            throw StoreUnreachable("redis cluster: slot " + std::to_string(slot) + " has no master");
        }
    }
    return static_cast<size_t>(slot_node_[slot]);
}

Reply SyncRedis::command(const std::vector<std::string>& argv) {
    if (!cluster()) {
        return conn(0).call(argv);
    }
    size_t node = route(argv);
    bool asking = false;
    for (int hop = 0; hop < 16; hop++) {
        RedisConn* c = nullptr;
        try {
            c = &conn(node);
        } catch (const StoreUnreachable&) {
            // the node is gone (a failover): nothing was sent, ask for the
            // map again and retry a few times
            if (hop >= 6) {
                throw;
            }
            pause_ms(200 * (hop + 1));
            try {
                refresh_slots();
            } catch (const StoreUnreachable&) {
            }
            node = route(argv);
            asking = false;
            continue;
        }
        Reply r;
        try {
            r = asking ? c->exchange({{"ASKING"}, argv}).back() : c->call(argv);
        } catch (const StoreUnreachable&) {
            drop(node);
            throw;
        }
        uint16_t slot = 0;
        RedisEndpoint to;
        RedisRedirect redirect = r.type == Reply::Type::error ? parse_redis_redirect(r.str, slot, to) : RedisRedirect::none;
        if (redirect != RedisRedirect::none && to.host.empty()) {
            to.host = nodes_[node].host;
        }
        if (redirect == RedisRedirect::moved) {
            size_t target = node_index(to);
            try {
                refresh_slots();
            } catch (const StoreUnreachable&) {
            }
            slot_node_[slot] = static_cast<int>(target);  // what the node said wins
            node = target;
            asking = false;
            continue;
        }
        if (redirect == RedisRedirect::ask) {
            node = node_index(to);
            asking = true;
            continue;
        }
        if (r.type == Reply::Type::error && (r.str.rfind("TRYAGAIN", 0) == 0 || r.str.rfind("CLUSTERDOWN", 0) == 0)) {
            pause_ms(100);
            asking = false;
            node = route(argv);
            continue;
        }
        return r;
    }
    throw StoreUnreachable("redis cluster: too many redirections for " + argv[0]);
}

std::vector<Reply> SyncRedis::pipeline(const std::vector<std::vector<std::string>>& commands) {
    if (!cluster()) {
        return conn(0).exchange(commands);
    }
    std::vector<Reply> out(commands.size());
    std::vector<bool> done(commands.size(), false);
    std::map<size_t, std::vector<size_t>> groups;  // node -> indexes, in order
    for (size_t i = 0; i < commands.size(); i++) {
        groups[route(commands[i])].push_back(i);
    }
    for (const auto& [node, idxs] : groups) {
        RedisConn* c = nullptr;
        try {
            c = &conn(node);
        } catch (const StoreUnreachable&) {
            continue;  // one by one below, where a moved slot is found again
        }
        std::vector<std::vector<std::string>> batch;
        for (size_t i : idxs) {
            batch.push_back(commands[i]);
        }
        std::vector<Reply> replies;
        try {
            replies = c->exchange(batch);
        } catch (const StoreUnreachable&) {
            drop(node);
            throw;
        }
        for (size_t k = 0; k < idxs.size(); k++) {
            out[idxs[k]] = std::move(replies[k]);
            done[idxs[k]] = true;
        }
    }
    for (size_t i = 0; i < commands.size(); i++) {
        if (!done[i] || is_redirect_or_retry(out[i])) {
            out[i] = command(commands[i]);
        }
    }
    return out;
}

Reply SyncRedis::run(const StoreCall& call) {
    std::vector<std::string> argv = evalsha_argv(call);
    Reply r = command(argv);
    if (r.type == Reply::Type::error && r.str.rfind("NOSCRIPT", 0) == 0) {
        argv[0] = "EVAL";
        argv[1] = std::string(call.script->source);
        r = command(argv);
    }
    return r;
}

std::vector<Reply> SyncRedis::run_many(const std::vector<StoreCall>& calls) {
    std::vector<std::vector<std::string>> commands;
    for (const StoreCall& call : calls) {
        commands.push_back(evalsha_argv(call));
        size_t node = route(commands.back());
        std::vector<std::string>& loaded = loaded_[node];
        if (std::find(loaded.begin(), loaded.end(), call.script->sha1) == loaded.end()) {
            Reply r = conn(node).call({"SCRIPT", "LOAD", std::string(call.script->source)});
            if (r.type == Reply::Type::error) {
                return std::vector<Reply>(calls.size(), r);
            }
            loaded_[node].push_back(call.script->sha1);
        }
    }
    std::vector<Reply> replies = pipeline(commands);
    for (size_t i = 0; i < replies.size(); i++) {
        // a slot that moved to a node that has not seen the script
        if (replies[i].type == Reply::Type::error && replies[i].str.rfind("NOSCRIPT", 0) == 0) {
            replies[i] = run(calls[i]);
        }
    }
    return replies;
}

void SyncRedis::scan(const std::string& match, const std::function<void(const std::vector<std::string>&)>& batch) {
    std::vector<size_t> nodes = cluster() ? masters() : std::vector<size_t>{0};
    std::set<std::string> seen;  // SCAN may give a key twice
    for (size_t node : nodes) {
        std::string cursor = "0";
        do {
            Reply r = conn(node).call({"SCAN", cursor, "MATCH", match, "COUNT", "1000"});
            if (r.type != Reply::Type::array || r.elements.size() != 2 || r.elements[1].type != Reply::Type::array) {
                throw StoreUnreachable(nodes_[node].label() + ": unexpected reply to SCAN"
                                       + (r.type == Reply::Type::error ? ": " + r.str : std::string()));
            }
            cursor = r.elements[0].str;
            std::vector<std::string> keys;
            for (const Reply& k : r.elements[1].elements) {
                if (seen.insert(k.str).second) {
                    keys.push_back(k.str);
                }
            }
            if (!keys.empty()) {
                batch(keys);
            }
        } while (cursor != "0");
    }
}

}  // namespace pairguard::cli
