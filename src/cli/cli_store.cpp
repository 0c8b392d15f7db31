#include "cli_store.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sys/time.h>

#include "duration.hpp"

namespace pairguard::cli {

namespace {

bool parse_int(std::string_view v, int64_t& out) {
    if (v.empty()) {
        return false;
    }
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
    return ec == std::errc() && p == v.data() + v.size();
}

std::string strip_newline(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) {
        s.pop_back();
    }
    return s;
}

struct ReplyDeleter {
    void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

std::vector<const char*> c_argv(const std::vector<std::string>& argv, std::vector<size_t>& lens) {
    std::vector<const char*> out;
    for (const std::string& a : argv) {
        out.push_back(a.data());
        lens.push_back(a.size());
    }
    return out;
}

}  // namespace

std::string parse_redis_target(std::string_view spec, RedisTarget& out) {
    std::vector<std::string_view> words;
    size_t i = 0;
    while (i < spec.size()) {
        while (i < spec.size() && (spec[i] == ' ' || spec[i] == '\t')) {
            i++;
        }
        size_t start = i;
        while (i < spec.size() && spec[i] != ' ' && spec[i] != '\t') {
            i++;
        }
        if (i > start) {
            words.push_back(spec.substr(start, i - start));
        }
    }
    if (words.empty()) {
        return "empty Redis address";
    }

    std::string_view addr = words[0];
    if (addr.rfind("unix:", 0) == 0) {
        if (addr.size() == 5) {
            return "invalid address \"" + std::string(addr) + "\"";
        }
        out.unix_path = std::string(addr.substr(5));
    } else {
        std::string_view host = addr, port;
        if (!addr.empty() && addr[0] == '[') {
            size_t close = addr.find(']');
            if (close == std::string_view::npos) {
                return "invalid address \"" + std::string(addr) + "\"";
            }
            host = addr.substr(1, close - 1);
            if (close + 1 < addr.size()) {
                if (addr[close + 1] != ':') {
                    return "invalid address \"" + std::string(addr) + "\"";
                }
                port = addr.substr(close + 2);
            }
        } else if (addr.find(':') != std::string_view::npos && addr.find(':') == addr.rfind(':')) {
            host = addr.substr(0, addr.find(':'));
            port = addr.substr(addr.find(':') + 1);
        }
        int64_t p = 6379;
        if (host.empty() || (!port.empty() && (!parse_int(port, p) || p < 1 || p > 65535))
            || (port.empty() && addr.back() == ':')) {
            return "invalid address \"" + std::string(addr) + "\"";
        }
        out.host = std::string(host);
        out.port = static_cast<int>(p);
    }

    std::string password_file;
    for (size_t w = 1; w < words.size(); w++) {
        std::string_view arg = words[w];
        size_t eq = arg.find('=');
        std::string_view name = arg.substr(0, eq == std::string_view::npos ? arg.size() : eq);
        std::string_view value = eq == std::string_view::npos ? std::string_view() : arg.substr(eq + 1);
        int64_t n = 0;
        if (eq == std::string_view::npos) {
            return "invalid parameter \"" + std::string(arg) + "\"";
        } else if (name == "password") {
            out.password = std::string(value);
        } else if (name == "password_file") {
            password_file = std::string(value);
        } else if (name == "user" && !value.empty()) {
            out.user = std::string(value);
        } else if (name == "db" && parse_int(value, n) && n >= 0 && n < 1 << 20) {
            out.db = static_cast<int>(n);
        } else if (name == "timeout" && parse_duration_ms(value).value_or(0) > 0) {
            out.timeout_ms = *parse_duration_ms(value);
        } else if (name == "prefix" && !value.empty()) {
            out.prefix = std::string(value);
        } else {
            // never echo a value that may be a password
            return "invalid parameter \"" + std::string(name) + "\"";
        }
    }
    if (!password_file.empty()) {
        if (!out.password.empty()) {
            return "both \"password\" and \"password_file\"";
        }
        std::ifstream f(password_file, std::ios::binary);
        if (!f) {
            return "cannot read \"" + password_file + "\": " + std::strerror(errno);
        }
        std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        out.password = strip_newline(std::move(text));
    }
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

SyncRedis::SyncRedis(const RedisTarget& t) {
    timeval tv{static_cast<time_t>(t.timeout_ms / 1000), static_cast<suseconds_t>((t.timeout_ms % 1000) * 1000)};
    label_ = t.unix_path.empty() ? t.host + ":" + std::to_string(t.port) : "unix:" + t.unix_path;
    ctx_.reset(t.unix_path.empty() ? redisConnectWithTimeout(t.host.c_str(), t.port, tv)
                                   : redisConnectUnixWithTimeout(t.unix_path.c_str(), tv));
    if (!ctx_) {
        throw StoreUnreachable("redis " + label_ + ": out of memory");
    }
    if (ctx_->err) {
        lost();
    }
    if (redisSetTimeout(ctx_.get(), tv) != REDIS_OK) {
        lost();
    }
    if (!t.password.empty()) {
        std::vector<std::string> auth{"AUTH"};
        if (!t.user.empty()) {
            auth.push_back(t.user);
        }
        auth.push_back(t.password);
        Reply r = command(auth);
        OPENSSL_cleanse(auth.back().data(), auth.back().size());
        if (r.type == Reply::Type::error) {
            throw StoreUnreachable("redis " + label_ + ": authentication failed: " + r.str);
        }
    }
    if (t.db != 0) {
        Reply r = command({"SELECT", std::to_string(t.db)});
        if (r.type == Reply::Type::error) {
            throw StoreUnreachable("redis " + label_ + ": SELECT failed: " + r.str);
        }
    }
}

void SyncRedis::lost() {
    std::string why = ctx_ && ctx_->errstr[0] ? ctx_->errstr : "connection failed";
    if (ctx_ && ctx_->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINPROGRESS)) {
        why = "no answer in time";
    }
    throw StoreUnreachable("redis " + label_ + " unreachable: " + why);
}

Reply SyncRedis::command(const std::vector<std::string>& argv) {
    std::vector<size_t> lens;
    std::vector<const char*> args = c_argv(argv, lens);
    void* raw = redisCommandArgv(ctx_.get(), static_cast<int>(args.size()), args.data(), lens.data());
    ReplyPtr r(static_cast<redisReply*>(raw));
    if (!r) {
        lost();
    }
    return reply_from_hiredis(r.get());
}

std::vector<Reply> SyncRedis::pipeline(const std::vector<std::vector<std::string>>& commands) {
    for (const auto& argv : commands) {
        std::vector<size_t> lens;
        std::vector<const char*> args = c_argv(argv, lens);
        if (redisAppendCommandArgv(ctx_.get(), static_cast<int>(args.size()), args.data(), lens.data()) != REDIS_OK) {
            lost();
        }
    }
    std::vector<Reply> out;
    for (size_t i = 0; i < commands.size(); i++) {
        void* raw = nullptr;
        if (redisGetReply(ctx_.get(), &raw) != REDIS_OK) {
            lost();
        }
        ReplyPtr r(static_cast<redisReply*>(raw));
        out.push_back(reply_from_hiredis(r.get()));
    }
    return out;
}

Reply SyncRedis::run(const StoreCall& call) {
    std::vector<std::string> argv{"EVALSHA", call.script->sha1, std::to_string(call.keys.size())};
    argv.insert(argv.end(), call.keys.begin(), call.keys.end());
    argv.insert(argv.end(), call.args.begin(), call.args.end());
    Reply r = command(argv);
    if (r.type == Reply::Type::error && r.str.rfind("NOSCRIPT", 0) == 0) {
        argv[0] = "EVAL";
        argv[1] = std::string(call.script->source);
        r = command(argv);
    }
    return r;
}

std::vector<Reply> SyncRedis::run_many(const std::vector<StoreCall>& calls) {
    std::vector<const StoreScript*> loaded;
    std::vector<std::vector<std::string>> commands;
    for (const StoreCall& call : calls) {
        if (std::find(loaded.begin(), loaded.end(), call.script) == loaded.end()) {
            Reply r = command({"SCRIPT", "LOAD", std::string(call.script->source)});
            if (r.type == Reply::Type::error) {
                return std::vector<Reply>(calls.size(), r);
            }
            loaded.push_back(call.script);
        }
        std::vector<std::string> argv{"EVALSHA", call.script->sha1, std::to_string(call.keys.size())};
        argv.insert(argv.end(), call.keys.begin(), call.keys.end());
        argv.insert(argv.end(), call.args.begin(), call.args.end());
        commands.push_back(std::move(argv));
    }
    return pipeline(commands);
}

}  // namespace pairguard::cli
