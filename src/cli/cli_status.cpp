#include "cli_status.hpp"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <stdexcept>
#include <string_view>

#include "metrics.hpp"

namespace pairguard::cli {

namespace {

constexpr const char* kDefaultUrl = "http://127.0.0.1/pairguard/status";
constexpr size_t kMaxBody = 16 * 1024 * 1024;

const char kUsage[] =
    "usage: pairguardctl status [--url URL] [--json]\n"
    "  URL: a pairguard_status location, http://HOST[:PORT]/PATH\n"
    "       (default http://127.0.0.1/pairguard/status, or PAIRGUARD_STATUS_URL)\n"
    "  --json: print the node's JSON as it is\n";

struct Fd {
    int fd = -1;
    ~Fd() {
        if (fd >= 0) {
            close(fd);
        }
    }
};

// GET url; returns the body of a 200 answer, throws otherwise.
std::string http_get(const HttpUrl& u) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = getaddrinfo(u.host.c_str(), u.port.c_str(), &hints, &res);
    if (rc != 0) {
        throw std::runtime_error(u.host + ": " + gai_strerror(rc));
    }
    Fd s;
    std::string last_error = "no address";
    for (addrinfo* a = res; a != nullptr && s.fd < 0; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) {
            continue;
        }
        timeval tv{5, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            s.fd = fd;
        } else {
            last_error = std::string("connect: ") + strerror(errno);
            close(fd);
        }
    }
    freeaddrinfo(res);
    if (s.fd < 0) {
        throw std::runtime_error(u.host + ":" + u.port + ": " + last_error);
    }
    std::string req = "GET " + u.path + " HTTP/1.0\r\nHost: " + u.host + "\r\nAccept: application/json\r\n\r\n";
    for (size_t off = 0; off < req.size();) {
        ssize_t n = send(s.fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
        if (n <= 0) {
            throw std::runtime_error(std::string("send: ") + strerror(errno));
        }
        off += static_cast<size_t>(n);
    }
    std::string resp;
    char buf[16384];
    for (;;) {
        ssize_t n = recv(s.fd, buf, sizeof(buf), 0);
        if (n < 0) {
            throw std::runtime_error(std::string("recv: ") + strerror(errno));
        }
        if (n == 0) {
            break;
        }
        resp.append(buf, static_cast<size_t>(n));
        if (resp.size() > kMaxBody) {
            throw std::runtime_error("answer too large");
        }
    }
    size_t head_end = resp.find("\r\n\r\n");
    if (resp.compare(0, 5, "HTTP/") != 0 || head_end == std::string::npos) {
        throw std::runtime_error("not an HTTP answer");
    }
    size_t sp = resp.find(' ');
    std::string status = resp.substr(sp + 1, 3);
    if (status != "200") {
        std::string line = resp.substr(0, resp.find("\r\n"));
        throw std::runtime_error("the node answered \"" + line + "\"");
    }
    return resp.substr(head_end + 4);
}

}  // namespace

std::string parse_http_url(const std::string& url, HttpUrl& out) {
    out = HttpUrl{};
    std::string_view rest = url;
    if (rest.rfind("http://", 0) != 0) {
        return "only http:// URLs (the status location is for loopback or an admin network)";
    }
    rest.remove_prefix(7);
    size_t slash = rest.find('/');
    std::string_view hostport = rest.substr(0, slash);
    out.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
    if (!hostport.empty() && hostport.front() == '[') {
        size_t close = hostport.find(']');
        if (close == std::string_view::npos) {
            return "invalid host in \"" + url + "\"";
        }
        out.host = std::string(hostport.substr(1, close - 1));
        hostport.remove_prefix(close + 1);
        if (!hostport.empty() && hostport.front() == ':') {
            out.port = std::string(hostport.substr(1));
        }
    } else {
        size_t colon = hostport.rfind(':');
        out.host = std::string(hostport.substr(0, colon));
        if (colon != std::string_view::npos) {
            out.port = std::string(hostport.substr(colon + 1));
        }
    }
    if (out.host.empty() || out.port.empty() || out.port.find_first_not_of("0123456789") != std::string::npos) {
        return "invalid host or port in \"" + url + "\"";
    }
    for (char c : out.path) {
        if (c <= ' ' || c == 0x7f) {
            return "invalid path in \"" + url + "\"";
        }
    }
    return "";
}

int status_main(int argc, char** argv) {
    const char* env_url = getenv("PAIRGUARD_STATUS_URL");
    std::string url = env_url != nullptr && *env_url ? env_url : kDefaultUrl;
    bool json = false;
    for (int i = 2; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--url" && i + 1 < argc) {
            url = argv[++i];
        } else if (a == "--json") {
            json = true;
        } else if (a == "--help") {
            std::cout << kUsage;
            return 0;
        } else {
            std::cerr << "pairguardctl: unknown argument \"" << a << "\"\n" << kUsage;
            return 2;
        }
    }
    HttpUrl u;
    std::string err = parse_http_url(url, u);
    if (!err.empty()) {
        std::cerr << "pairguardctl: --url: " << err << "\n";
        return 2;
    }
    std::string body;
    try {
        body = http_get(u);
    } catch (const std::exception& e) {
        std::cerr << "pairguardctl: status: " << e.what() << "\n";
        return 3;
    }
    if (json) {
        std::cout << body << (body.empty() || body.back() != '\n' ? "\n" : "");
        return 0;
    }
    std::string table = pairguard::metrics::status_table(body, err);
    if (!err.empty()) {
        std::cerr << "pairguardctl: status: " << err << "\n";
        return 1;
    }
    std::cout << table;
    return 0;
}

}  // namespace pairguard::cli
