#include "cli_redis_conn.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <hiredis/read.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace pairguard::cli {

namespace {

std::string ssl_errors() {
    std::string out;
    unsigned long e;
    while ((e = ERR_get_error()) != 0) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        // "error:0A000086:SSL routines::certificate verify failed": keep the reason
        std::string s = buf;
        size_t colon = s.rfind(':');
        if (colon != std::string::npos && colon + 1 < s.size()) {
            s = s.substr(colon + 1);
        }
        if (out.find(s) == std::string::npos) {
            out += out.empty() ? s : "; " + s;
        }
    }
    return out;
}

void encode(std::string& out, const std::vector<std::string>& argv) {
    out += "*" + std::to_string(argv.size()) + "\r\n";
    for (const std::string& a : argv) {
        out += "$" + std::to_string(a.size()) + "\r\n";
        out += a;
        out += "\r\n";
    }
}

}  // namespace

bool is_ip_literal(const std::string& host) {
    unsigned char buf[sizeof(in6_addr)];
    return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

RedisConn::RedisConn(const RedisEndpoint& e, const RedisTls& tls, int64_t timeout_ms, const char* kind)
    : label_(std::string(kind) + " " + e.label()), timeout_ms_(timeout_ms > 0 ? timeout_ms : 2000) {
    try {
        if (!e.unix_path.empty()) {
            connect_unix(e.unix_path);
        } else {
            connect_tcp(e);
        }
        if (tls.on) {
            start_tls(e, tls);
        }
        reader_ = redisReaderCreate();
        if (reader_ == nullptr) {
            fail("out of memory");
        }
    } catch (...) {
        cleanup();
        throw;
    }
}

RedisConn::~RedisConn() { cleanup(); }

void RedisConn::cleanup() {
    if (ssl_ != nullptr) {
        if (!broken_) {
            SSL_shutdown(ssl_);  // one close_notify, no wait for the answer
        }
        SSL_free(ssl_);
        ssl_ = nullptr;
    }
    if (ctx_ != nullptr) {
        SSL_CTX_free(ctx_);
        ctx_ = nullptr;
    }
    if (fd_ >= 0) {
        close(fd_);
        fd_ = -1;
    }
    if (reader_ != nullptr) {
        redisReaderFree(reader_);
        reader_ = nullptr;
    }
}

void RedisConn::fail(const std::string& why) {
    broken_ = true;
    throw StoreUnreachable(label_ + " unreachable: " + why);
}

void RedisConn::wait_fd(bool for_write, const char* doing) {
    pollfd p{fd_, static_cast<short>(for_write ? POLLOUT : POLLIN), 0};
    int n;
    do {
        n = poll(&p, 1, static_cast<int>(timeout_ms_));
    } while (n < 0 && errno == EINTR);
    if (n == 0) {
        fail(std::string("no answer in time (") + doing + ")");
    }
    if (n < 0) {
        fail(std::string("poll: ") + std::strerror(errno));
    }
}

void RedisConn::connect_unix(const std::string& path) {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (path.size() >= sizeof sa.sun_path) {
        fail("socket path too long");
    }
    std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
        fail(std::string("socket: ") + std::strerror(errno));
    }
    if (connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 && errno != EINPROGRESS && errno != EAGAIN) {
        fail(std::strerror(errno));
    }
    wait_fd(true, "connect");
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
        fail(std::strerror(err));
    }
}

void RedisConn::connect_tcp(const RedisEndpoint& e) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* res = nullptr;
    int rc = getaddrinfo(e.host.c_str(), std::to_string(e.port).c_str(), &hints, &res);
    if (rc != 0) {
        fail(std::string("cannot resolve \"") + e.host + "\": " + gai_strerror(rc));
    }
    std::string why = "no address";
    for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            why = std::strerror(errno);
            continue;
        }
        int err = 0;
        if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            if (errno != EINPROGRESS) {
                err = errno;
            } else {
                pollfd p{fd, POLLOUT, 0};
                int n;
                do {
                    n = poll(&p, 1, static_cast<int>(timeout_ms_));
                } while (n < 0 && errno == EINTR);
                if (n == 0) {
                    close(fd);
                    why = "no answer in time (connect)";
                    continue;
                }
                socklen_t len = sizeof err;
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
            }
        }
        if (err != 0) {
            close(fd);
            why = std::strerror(err);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fd_ = fd;
        break;
    }
    freeaddrinfo(res);
    if (fd_ < 0) {
        fail(why);
    }
}

void RedisConn::start_tls(const RedisEndpoint& e, const RedisTls& tls) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (ctx_ == nullptr) {
        fail("TLS: " + ssl_errors());
    }
    SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
    if (tls.verify) {
        int ok = tls.trusted_certificate.empty()
                     ? SSL_CTX_set_default_verify_paths(ctx_)
                     : SSL_CTX_load_verify_locations(ctx_, tls.trusted_certificate.c_str(), nullptr);
        if (ok != 1) {
            fail("TLS: cannot load tls_trusted_certificate \"" + tls.trusted_certificate + "\": " + ssl_errors());
        }
        SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    } else {
        SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
    }
    if (!tls.certificate.empty()) {
        // an encrypted key would make OpenSSL ask on the terminal: refuse it instead
        SSL_CTX_set_default_passwd_cb(ctx_, [](char*, int, int, void*) { return 0; });
        if (SSL_CTX_use_certificate_chain_file(ctx_, tls.certificate.c_str()) != 1) {
            fail("TLS: cannot load tls_certificate \"" + tls.certificate + "\": " + ssl_errors());
        }
        if (SSL_CTX_use_PrivateKey_file(ctx_, tls.certificate_key.c_str(), SSL_FILETYPE_PEM) != 1
            || SSL_CTX_check_private_key(ctx_) != 1) {
            fail("TLS: cannot load tls_certificate_key \"" + tls.certificate_key + "\": " + ssl_errors());
        }
    }
    ssl_ = SSL_new(ctx_);
    if (ssl_ == nullptr || SSL_set_fd(ssl_, fd_) != 1) {
        fail("TLS: " + ssl_errors());
    }
    std::string name = tls.server_name.empty() ? e.host : tls.server_name;
    bool ip = is_ip_literal(name);
    if (!ip) {
        SSL_set_tlsext_host_name(ssl_, name.c_str());  // SNI: names only, never an address
    }
    if (tls.verify) {
        X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                    : X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
        if (ok != 1) {
            fail("TLS: invalid tls_server_name \"" + name + "\"");
        }
    }
    while (true) {
        ERR_clear_error();
        int rc = SSL_connect(ssl_);
        if (rc == 1) {
            break;
        }
        int err = SSL_get_error(ssl_, rc);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
            wait_fd(err == SSL_ERROR_WANT_WRITE, "TLS handshake");
            continue;
        }
        long verify = SSL_get_verify_result(ssl_);
        if (tls.verify && verify != X509_V_OK) {
            fail("TLS certificate verification failed: " + std::string(X509_verify_cert_error_string(verify))
                 + " (name checked: " + name + ")");
        }
        std::string why = ssl_errors();
        if (why.empty()) {
            why = err == SSL_ERROR_SYSCALL && errno != 0 ? std::strerror(errno) : "the server closed the connection";
        }
        fail("TLS handshake failed: " + why + " (is the server speaking TLS?)");
    }
}

void RedisConn::write_all(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
        if (ssl_ != nullptr) {
            ERR_clear_error();
            int n = SSL_write(ssl_, data.data() + off, static_cast<int>(data.size() - off));
            if (n > 0) {
                off += static_cast<size_t>(n);
                continue;
            }
            int err = SSL_get_error(ssl_, n);
            if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
                wait_fd(err == SSL_ERROR_WANT_WRITE, "write");
                continue;
            }
            std::string why = ssl_errors();
            fail("TLS write failed" + (why.empty() ? std::string() : ": " + why));
        }
        ssize_t n = send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += static_cast<size_t>(n);
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            wait_fd(true, "write");
        } else if (n < 0 && errno != EINTR) {
            fail(std::strerror(errno));
        }
    }
}

size_t RedisConn::read_some(char* buf, size_t len) {
    while (true) {
        if (ssl_ != nullptr) {
            ERR_clear_error();
            int n = SSL_read(ssl_, buf, static_cast<int>(len));
            if (n > 0) {
                return static_cast<size_t>(n);
            }
            int err = SSL_get_error(ssl_, n);
            if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
                wait_fd(err == SSL_ERROR_WANT_WRITE, "read");
                continue;
            }
            if (err == SSL_ERROR_ZERO_RETURN) {
                fail("connection closed by the server");
            }
            std::string why = ssl_errors();
            // TLS 1.3: a refused client certificate shows as an alert on the first read
            fail(why.empty() ? "connection closed by the server" : "TLS: " + why);
        }
        ssize_t n = recv(fd_, buf, len, 0);
        if (n > 0) {
            return static_cast<size_t>(n);
        }
        if (n == 0) {
            fail("connection closed by the server");
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            wait_fd(false, "read");
        } else if (errno != EINTR) {
            fail(std::strerror(errno));
        }
    }
}

std::vector<Reply> RedisConn::exchange(const std::vector<std::vector<std::string>>& commands) {
    if (broken_) {
        fail("connection lost earlier");
    }
    std::string out;
    for (const auto& argv : commands) {
        encode(out, argv);
    }
    write_all(out);
    OPENSSL_cleanse(out.data(), out.size());  // an AUTH carries a password
    std::vector<Reply> replies;
    replies.reserve(commands.size());
    char buf[16384];
    while (replies.size() < commands.size()) {
        void* raw = nullptr;
        if (redisReaderGetReply(reader_, &raw) != REDIS_OK) {
            fail(std::string("protocol error: ") + reader_->errstr);
        }
        if (raw != nullptr) {
            replies.push_back(reply_from_hiredis(static_cast<redisReply*>(raw)));
            freeReplyObject(raw);
            continue;
        }
        size_t n = read_some(buf, sizeof buf);
        if (redisReaderFeed(reader_, buf, n) != REDIS_OK) {
            fail(std::string("protocol error: ") + reader_->errstr);
        }
    }
    return replies;
}

Reply RedisConn::call(const std::vector<std::string>& argv) {
    return exchange({argv}).front();
}

}  // namespace pairguard::cli
