#include "ngx_pairguard_redis_link.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/un.h>

#include <cstring>

#include <openssl/x509v3.h>

namespace {

void init_event(ngx_event_t* ev, ngx_event_handler_pt handler, void* data) {
    ngx_memzero(ev, sizeof(ngx_event_t));
    ev->handler = handler;
    ev->data = data;
    ev->log = ngx_cycle->log;
}

}  // namespace

ngx_pairguard_redis_link_t::ngx_pairguard_redis_link_t(const ngx_pairguard_redis_conf_t& conf, std::string what)
    : conf_(conf), what_(std::move(what)) {
    init_event(&flush_ev_, on_flush_event, this);
    init_event(&fail_ev_, on_failed_event, this);
}

ngx_pairguard_redis_link_t::~ngx_pairguard_redis_link_t() {
    on_lost = nullptr;
    on_ready = nullptr;
    on_push = nullptr;
    close(nullptr, false);
    if (session_ != nullptr) {
        ngx_ssl_free_session(session_);
    }
}

void ngx_pairguard_redis_link_t::target(const pairguard::RedisEndpoint& ep,
                                        const std::vector<std::string>* preresolved) {
    if (ep.label() != ep_.label() && session_ != nullptr) {
        ngx_ssl_free_session(session_);  // a session belongs to one server
        session_ = nullptr;
    }
    ep_ = ep;
    label_ = ep.label();
    host_z_ = ep.host;
    preresolved_ = preresolved != nullptr ? *preresolved : std::vector<std::string>();
}

void ngx_pairguard_redis_link_t::open() {
    if (state_ != state_e::closed || fail_ev_.posted) {
        return;
    }
    if (reader_ == nullptr) {
        reader_ = redisReaderCreate();
        if (reader_ == nullptr) {
            fail("out of memory");
            return;
        }
    }

    if (!ep_.unix_path.empty()) {
        struct sockaddr_un sun;
        ngx_memzero(&sun, sizeof(sun));
        sun.sun_family = AF_UNIX;
        if (ep_.unix_path.size() >= sizeof(sun.sun_path)) {
            fail("unix socket path too long");
            return;
        }
        ngx_memcpy(sun.sun_path, ep_.unix_path.data(), ep_.unix_path.size());
        connect_to(reinterpret_cast<struct sockaddr*>(&sun), sizeof(sun));
        return;
    }

    // a numeric address needs nobody
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    ngx_memzero(&sin, sizeof(sin));
    ngx_memzero(&sin6, sizeof(sin6));
    if (inet_pton(AF_INET, host_z_.c_str(), &sin.sin_addr) == 1) {
        sin.sin_family = AF_INET;
        sin.sin_port = htons(static_cast<uint16_t>(ep_.port));
        connect_to(reinterpret_cast<struct sockaddr*>(&sin), sizeof(sin));
        return;
    }
    if (inet_pton(AF_INET6, host_z_.c_str(), &sin6.sin6_addr) == 1) {
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons(static_cast<uint16_t>(ep_.port));
        connect_to(reinterpret_cast<struct sockaddr*>(&sin6), sizeof(sin6));
        return;
    }

    // a name: nginx's resolver, at every (re)connection, when the http block
    // has one; else what was found at configuration time
    if (conf_.resolver != nullptr) {
        ngx_resolver_ctx_t* ctx = ngx_resolve_start(conf_.resolver, nullptr);
        if (ctx == nullptr) {
            fail("out of memory");
            return;
        }
        if (ctx != NGX_NO_RESOLVER) {
            ctx->name.data = reinterpret_cast<u_char*>(host_z_.data());
            ctx->name.len = host_z_.size();
            ctx->handler = on_resolved;
            ctx->data = this;
            ctx->timeout = conf_.resolver_timeout;
            rctx_ = ctx;
            state_ = state_e::resolving;
            if (ngx_resolve_name(ctx) != NGX_OK) {
                rctx_ = nullptr;  // freed by the resolver
                state_ = state_e::closed;
                fail("cannot start resolving");
            }
            return;
        }
    }
    if (preresolved_.empty()) {
        fail("host name not resolved (no resolver in the http block)");
        return;
    }
    const std::string& sa = preresolved_[0];
    connect_to(reinterpret_cast<const struct sockaddr*>(sa.data()), static_cast<socklen_t>(sa.size()));
}

void ngx_pairguard_redis_link_t::on_resolved(ngx_resolver_ctx_t* ctx) noexcept {
    auto* self = static_cast<ngx_pairguard_redis_link_t*>(ctx->data);
    self->rctx_ = nullptr;
    if (ctx->state != 0 || ctx->naddrs == 0) {
        std::string reason = std::string("cannot resolve ") + self->host_z_ + ": "
                             + (ctx->state != 0 ? ngx_resolver_strerror(ctx->state) : "no address");
        ngx_resolve_name_done(ctx);
        self->state_ = state_e::closed;
        self->fail(reason.c_str());
        return;
    }
    // the first address; a later reconnection resolves again
    std::string sa(reinterpret_cast<const char*>(ctx->addrs[0].sockaddr), ctx->addrs[0].socklen);
    ngx_resolve_name_done(ctx);
    ngx_inet_set_port(reinterpret_cast<struct sockaddr*>(sa.data()), static_cast<in_port_t>(self->ep_.port));
    self->state_ = state_e::closed;
    self->connect_to(reinterpret_cast<const struct sockaddr*>(sa.data()), static_cast<socklen_t>(sa.size()));
}

void ngx_pairguard_redis_link_t::connect_to(const struct sockaddr* sa, socklen_t len) {
    pool_ = ngx_create_pool(1024, ngx_cycle->log);
    if (pool_ == nullptr) {
        fail("out of memory");
        return;
    }
    auto* copy = static_cast<struct sockaddr*>(ngx_palloc(pool_, len));
    auto* name = static_cast<ngx_str_t*>(ngx_palloc(pool_, sizeof(ngx_str_t)));
    if (copy == nullptr || name == nullptr) {
        fail("out of memory");
        return;
    }
    ngx_memcpy(copy, sa, len);
    name->data = reinterpret_cast<u_char*>(label_.data());
    name->len = label_.size();

    ngx_peer_connection_t pc;
    ngx_memzero(&pc, sizeof(pc));
    pc.sockaddr = copy;
    pc.socklen = len;
    pc.name = name;
    pc.get = ngx_event_get_peer;
    // nginx's own words about this connection (connect() failed, SSL_read()
    // failed...) would come at every reconnection attempt: the owner logs
    // the store's state once instead, with the reason
    quiet_log_ = *ngx_cycle->log;
    quiet_log_.log_level = NGX_LOG_EMERG;
    pc.log = &quiet_log_;
    pc.log_error = NGX_ERROR_ERR;

    ngx_int_t rc = ngx_event_connect_peer(&pc);
    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED || pc.connection == nullptr) {
        ngx_err_t err = ngx_socket_errno;
        if (pc.connection != nullptr) {
            ngx_close_connection(pc.connection);
        }
        std::string reason = std::string("connect() failed: ") + (err != 0 ? strerror(err) : "no connection");
        fail(reason.c_str());
        return;
    }
    c_ = pc.connection;
    c_->data = this;
    c_->pool = pool_;
    c_->read->handler = on_read_event;
    c_->write->handler = on_write_event;
    state_ = state_e::connecting;
    if (rc == NGX_OK) {
        connected();
    }
    // NGX_AGAIN: the write event says when the connection is made
}

void ngx_pairguard_redis_link_t::connected() {
    int err = 0;
    socklen_t len = sizeof(int);
    if (getsockopt(c_->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1) {
        err = ngx_socket_errno;
    }
    if (err != 0) {
        fail(strerror(err));
        return;
    }
    ngx_tcp_nodelay(c_);
    if (conf_.ssl == nullptr) {
        became_ready();
        return;
    }

    state_ = state_e::tls;
    if (ngx_ssl_create_connection(conf_.ssl, c_, NGX_SSL_BUFFER | NGX_SSL_CLIENT) != NGX_OK) {
        fail("cannot create a TLS connection");
        return;
    }
    // a write retried after WANT_WRITE starts with the same bytes, but the
    // buffer may have grown (and moved) meanwhile: commands keep coming
    SSL_set_mode(c_->ssl->connection, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    const pairguard::RedisTls& tls = conf_.spec.tls;
    const std::string& sni = tls.server_name.empty() ? host_z_ : tls.server_name;
    // as per RFC 6066, no literal address as a server name
    unsigned char buf[sizeof(struct in6_addr)];
    if (!sni.empty() && inet_pton(AF_INET, sni.c_str(), buf) != 1 && inet_pton(AF_INET6, sni.c_str(), buf) != 1) {
        if (SSL_set_tlsext_host_name(c_->ssl->connection, const_cast<char*>(sni.c_str())) == 0) {
            fail("cannot set the TLS server name");
            return;
        }
    }
    c_->ssl->save_session = on_tls_session;
    if (session_ != nullptr && ngx_ssl_set_session(c_, session_) != NGX_OK) {
        fail("cannot reuse the TLS session");
        return;
    }
    ngx_int_t rc = ngx_ssl_handshake(c_);
    if (rc == NGX_AGAIN) {
        c_->ssl->handler = on_tls_handshake;
        return;
    }
    tls_done();
}

void ngx_pairguard_redis_link_t::on_tls_handshake(ngx_connection_t* c) noexcept {
    static_cast<ngx_pairguard_redis_link_t*>(c->data)->tls_done();
}

// TLS 1.3 sends its tickets after the handshake: kept as they come, for the
// next connection to the same server.
void ngx_pairguard_redis_link_t::on_tls_session(ngx_connection_t* c) noexcept {
    auto* self = static_cast<ngx_pairguard_redis_link_t*>(c->data);
    ngx_ssl_session_t* s = ngx_ssl_get_session(c);
    if (s == nullptr) {
        return;
    }
    if (self->session_ != nullptr) {
        ngx_ssl_free_session(self->session_);
    }
    self->session_ = s;
}

void ngx_pairguard_redis_link_t::tls_done() {
    if (c_ == nullptr || c_->ssl == nullptr || !c_->ssl->handshaked) {
        fail("TLS handshake failed");
        return;
    }
    const pairguard::RedisTls& tls = conf_.spec.tls;
    if (tls.verify) {
        long rc = SSL_get_verify_result(c_->ssl->connection);
        if (rc != X509_V_OK) {
            std::string reason = std::string("TLS certificate verify error: ") + X509_verify_cert_error_string(rc);
            fail(reason.c_str());
            return;
        }
        const std::string& name = tls.server_name.empty() ? host_z_ : tls.server_name;
        bool match = false;
        unsigned char buf[sizeof(struct in6_addr)];
        if (inet_pton(AF_INET, name.c_str(), buf) == 1 || inet_pton(AF_INET6, name.c_str(), buf) == 1) {
            // an address: its IP SAN (nginx's name check knows only names)
            X509* cert = SSL_get1_peer_certificate(c_->ssl->connection);
            match = cert != nullptr && X509_check_ip_asc(cert, name.c_str(), 0) == 1;
            if (cert != nullptr) {
                X509_free(cert);
            }
        } else {
            ngx_str_t n = {name.size(), reinterpret_cast<u_char*>(const_cast<char*>(name.data()))};
            match = ngx_ssl_check_host(c_, &n) == NGX_OK;
        }
        if (!match) {
            std::string reason = "TLS certificate does not match \"" + name + "\"";
            fail(reason.c_str());
            return;
        }
    }
    session_reused_ = SSL_session_reused(c_->ssl->connection) == 1;
    c_->read->handler = on_read_event;
    c_->write->handler = on_write_event;
    became_ready();
}

void ngx_pairguard_redis_link_t::became_ready() {
    state_ = state_e::ready;
    if (on_ready) {
        on_ready();
    }
    if (state_ == state_e::ready && !out_.empty()) {
        flush();
    }
    // anything already waiting (level of a TLS buffer, a fast reply)
    if (state_ == state_e::ready && c_->read->ready) {
        on_read_event(c_->read);
    }
}

// A failure: the owner hears of it (and the replies awaited get nullptr)
// from a posted event, never from inside the call that found it (open() is
// called by the owner itself).
void ngx_pairguard_redis_link_t::fail(const char* reason) {
    fail_reason_ = reason != nullptr ? reason : "unknown";
    release();
    state_ = state_e::closed;
    if (!fail_ev_.posted) {
        ngx_post_event(&fail_ev_, &ngx_posted_events);
    }
}

void ngx_pairguard_redis_link_t::on_failed_event(ngx_event_t* ev) noexcept {
    auto* self = static_cast<ngx_pairguard_redis_link_t*>(ev->data);
    std::string reason = std::move(self->fail_reason_);
    self->fail_waiting();
    if (self->state_ == state_e::closed && self->on_lost) {
        self->on_lost(reason.c_str());
    }
}

void ngx_pairguard_redis_link_t::release() {
    if (flush_ev_.posted) {
        ngx_delete_posted_event(&flush_ev_);
    }
    if (rctx_ != nullptr) {
        ngx_resolve_name_done(rctx_);
        rctx_ = nullptr;
    }
    if (c_ != nullptr) {
        ngx_connection_t* c = c_;
        c_ = nullptr;
        if (c->ssl != nullptr) {
            c->ssl->no_wait_shutdown = 1;
            c->ssl->no_send_shutdown = 1;
            (void) ngx_ssl_shutdown(c);
        }
        ngx_close_connection(c);
    }
    if (pool_ != nullptr) {
        ngx_destroy_pool(pool_);
        pool_ = nullptr;
    }
    if (reader_ != nullptr) {
        redisReaderFree(reader_);
        reader_ = nullptr;
    }
    out_.clear();
}

void ngx_pairguard_redis_link_t::fail_waiting() {
    std::deque<reply_fn> waiting;
    waiting.swap(waiting_);
    for (auto& fn : waiting) {
        if (fn) {
            fn(nullptr);
        }
    }
}

void ngx_pairguard_redis_link_t::close(const char* reason, bool notify) {
    if (fail_ev_.posted) {
        ngx_delete_posted_event(&fail_ev_);
    }
    fail_reason_.clear();
    bool was_open = state_ != state_e::closed;
    release();
    state_ = state_e::closed;
    fail_waiting();
    if (notify && was_open && on_lost) {
        on_lost(reason != nullptr ? reason : "connection closed");
    }
}

bool ngx_pairguard_redis_link_t::send(std::string_view resp, reply_fn fn, bool push) {
    if (state_ == state_e::closed) {
        return false;
    }
    try {
        // the reply's place first: bytes on the wire with no one awaiting
        // their reply would hand every later reply to the wrong command
        if (!push) {
            waiting_.push_back(std::move(fn));
        }
        try {
            out_.append(resp);
        } catch (const std::exception&) {
            if (!push) {
                waiting_.pop_back();
            }
            return false;
        }
    } catch (const std::exception&) {
        return false;
    }
    if (state_ == state_e::ready && !flush_ev_.posted) {
        ngx_post_event(&flush_ev_, &ngx_posted_events);
    }
    return true;
}

void ngx_pairguard_redis_link_t::on_flush_event(ngx_event_t* ev) noexcept {
    auto* self = static_cast<ngx_pairguard_redis_link_t*>(ev->data);
    if (self->state_ == state_e::ready) {
        self->flush();
    }
}

// Writes what is queued; a full socket buffer waits for the write event.
void ngx_pairguard_redis_link_t::flush() {
    while (!out_.empty() && c_ != nullptr) {
        if (!c_->write->ready) {
            break;
        }
        ssize_t n = c_->send(c_, reinterpret_cast<u_char*>(out_.data()), out_.size());
        if (n == NGX_AGAIN) {
            break;
        }
        if (n == NGX_ERROR || n <= 0) {
            close(c_->ssl != nullptr ? "TLS write failed" : "write failed", true);
            return;
        }
        out_.erase(0, static_cast<size_t>(n));
    }
    if (c_ != nullptr && ngx_handle_write_event(c_->write, 0) != NGX_OK) {
        close("cannot wait for write", true);
    }
}

void ngx_pairguard_redis_link_t::on_write_event(ngx_event_t* ev) noexcept {
    auto* c = static_cast<ngx_connection_t*>(ev->data);
    auto* self = static_cast<ngx_pairguard_redis_link_t*>(c->data);
    if (self->state_ == state_e::connecting) {
        self->connected();
        return;
    }
    if (self->state_ == state_e::ready) {
        self->flush();
    }
}

void ngx_pairguard_redis_link_t::read_now() {
    if (state_ == state_e::ready && c_ != nullptr && !in_read_) {
        // look even if epoll has not said so yet: ready, and the amount
        // unknown (with EPOLLRDHUP, nginx's recv answers "again" without
        // reading once a read came back short, until epoll reports more)
        c_->read->ready = 1;
        c_->read->available = -1;
        on_read_event(c_->read);
    }
}

bool ngx_pairguard_redis_link_t::catch_up() {
    if (c_ == nullptr || in_read_) {
        return false;
    }
    switch (state_) {
    case state_e::connecting: {
        // made or refused: writable (connected() reads which)
        struct pollfd p = {c_->fd, POLLOUT, 0};
        if (poll(&p, 1, 0) != 1) {
            return false;
        }
        connected();
        return true;
    }
    case state_e::tls: {
        // a step is progress even when more are needed (TLS 1.2 takes two
        // round trips): what the handshake read from the socket
        BIO* rbio = SSL_get_rbio(c_->ssl->connection);
        uint64_t read_before = rbio != nullptr ? BIO_number_read(rbio) : 0;
        if (ngx_ssl_handshake(c_) == NGX_AGAIN) {
            return rbio != nullptr && BIO_number_read(rbio) != read_before;
        }
        tls_done();
        return true;
    }
    case state_e::ready: {
        uint64_t before = received_;
        read_now();
        return received_ != before;
    }
    default:
        return false;
    }
}

void ngx_pairguard_redis_link_t::on_read_event(ngx_event_t* ev) noexcept {
    auto* c = static_cast<ngx_connection_t*>(ev->data);
    auto* self = static_cast<ngx_pairguard_redis_link_t*>(c->data);
    if (self->state_ == state_e::connecting) {
        self->connected();
        return;
    }
    if (self->state_ != state_e::ready || self->in_read_) {
        return;
    }
    self->in_read_ = true;
    u_char buf[16384];
    while (self->state_ == state_e::ready && self->c_ != nullptr) {
        ssize_t n = self->c_->recv(self->c_, buf, sizeof(buf));
        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(self->c_->read, 0) != NGX_OK) {
                self->in_read_ = false;
                self->close("cannot wait for read", true);
                return;
            }
            break;
        }
        if (n == 0 || n == NGX_ERROR) {
            self->in_read_ = false;
            self->close(n == 0 ? "connection closed" : self->c_->ssl != nullptr ? "TLS read failed" : "read failed", true);
            return;
        }
        self->received_ += static_cast<uint64_t>(n);
        if (redisReaderFeed(self->reader_, reinterpret_cast<const char*>(buf), static_cast<size_t>(n)) != REDIS_OK) {
            self->in_read_ = false;
            self->close("bad reply", true);
            return;
        }
        for (;;) {
            void* r = nullptr;
            if (self->reader_ == nullptr || redisReaderGetReply(self->reader_, &r) != REDIS_OK) {
                if (self->state_ == state_e::ready) {
                    self->in_read_ = false;
                    self->close("protocol error", true);
                    return;
                }
                break;
            }
            if (r == nullptr) {
                break;
            }
            self->dispatch(static_cast<redisReply*>(r));
            if (self->state_ != state_e::ready) {
                break;  // the connection was closed by a callback
            }
        }
    }
    self->in_read_ = false;
}

void ngx_pairguard_redis_link_t::dispatch(redisReply* r) {
    if (!waiting_.empty()) {
        reply_fn fn = std::move(waiting_.front());
        waiting_.pop_front();
        if (fn) {
            fn(r);
        }
    } else if (on_push) {
        on_push(r);
    }
    freeReplyObject(r);
}
