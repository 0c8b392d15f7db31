#include "cli_auth.hpp"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>

#include "encoding.hpp"
#include "keys.hpp"

namespace pairguard::cli {

SecretString& SecretString::operator=(SecretString&& o) noexcept {
    if (this != &o) {
        wipe();
        s_ = std::move(o.s_);
        o.wipe();
    }
    return *this;
}

void SecretString::wipe() {
    if (!s_.empty()) {
        OPENSSL_cleanse(s_.data(), s_.size());
    }
    s_.clear();
    s_.shrink_to_fit();
}

namespace {

// Well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF).
bool utf8_valid(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        auto c = static_cast<unsigned char>(s[i]);
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + n >= s.size()) {
            return false;
        }
        for (size_t k = 1; k <= n; k++) {
            auto d = static_cast<unsigned char>(s[i + k]);
            if ((d & 0xc0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (d & 0x3f);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff
            || (cp >= 0xd800 && cp <= 0xdfff)) {
            return false;
        }
        i += n + 1;
    }
    return true;
}

// ---- terminal echo, restored on the way out however it comes ----

int g_tty_fd = -1;
struct termios g_saved_termios;

void restore_tty() {
    if (g_tty_fd >= 0) {
        tcsetattr(g_tty_fd, TCSAFLUSH, &g_saved_termios);
        g_tty_fd = -1;
    }
}

extern "C" void on_fatal_signal(int sig) {
    restore_tty();
    signal(sig, SIG_DFL);
    raise(sig);
}

class EchoOff {
public:
    explicit EchoOff(int fd) {
        struct termios t;
        if (tcgetattr(fd, &t) != 0) {
            return;
        }
        g_saved_termios = t;
        g_tty_fd = fd;
        for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) {
            signal(sig, on_fatal_signal);
        }
        t.c_lflag &= ~static_cast<tcflag_t>(ECHO);
        t.c_lflag |= ECHONL;
        tcsetattr(fd, TCSAFLUSH, &t);
    }
    ~EchoOff() {
        restore_tty();
        for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) {
            signal(sig, SIG_DFL);
        }
    }
    EchoOff(const EchoOff&) = delete;
    EchoOff& operator=(const EchoOff&) = delete;
};

// Up to `max` bytes from fd: to end of file, or (line = true) to the first
// newline (kept). Sets *too_long when more was there.
SecretString read_fd(int fd, size_t max, bool line, bool* too_long) {
    std::string buf;
    buf.reserve(max + 1);  // never reallocated: no copy of the secret left behind
    *too_long = false;
    char ch;
    for (;;) {
        ssize_t n = read(fd, &ch, 1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            int e = errno;
            OPENSSL_cleanse(&ch, 1);
            SecretString wipe(std::move(buf));
            throw InputError(std::string("cannot read the password: ") + std::strerror(e));
        }
        if (n == 0) {
            break;
        }
        if (buf.size() >= max) {
            *too_long = true;
            if (line && ch == '\n') {
                break;
            }
            continue;  // drain (a terminal line or a pipe) without keeping it
        }
        buf.push_back(ch);
        if (line && ch == '\n') {
            break;
        }
    }
    OPENSSL_cleanse(&ch, 1);
    return SecretString(std::move(buf));
}

SecretString strip_newline(SecretString s) {
    std::string_view v = s.view();
    size_t cut = 0;
    if (v.size() >= 2 && v.substr(v.size() - 2) == "\r\n") {
        cut = 2;
    } else if (!v.empty() && v.back() == '\n') {
        cut = 1;
    }
    if (cut == 0) {
        return s;
    }
    std::string out;
    out.reserve(v.size());
    out.assign(v.data(), v.size() - cut);
    return SecretString(std::move(out));
}

SecretString prompt_line(int fd, const char* prompt) {
    int tty = open("/dev/tty", O_WRONLY | O_CLOEXEC);
    int out = tty >= 0 ? tty : STDERR_FILENO;
    ssize_t ignored = write(out, prompt, std::strlen(prompt));
    (void)ignored;
    bool too_long = false;
    SecretString s;
    {
        EchoOff off(fd);
        s = read_fd(fd, kPasswordMaxBytes + 2, true, &too_long);
    }
    if (tty >= 0) {
        close(tty);
    }
    if (too_long) {
        throw InputError("the password is longer than " + std::to_string(kPasswordMaxBytes) + " bytes");
    }
    if (s.empty() || s.view().back() != '\n') {
        throw InputError("no password (end of input)");
    }
    return s;
}

}  // namespace

std::string password_problem(std::string_view password) {
    if (password.empty()) {
        return "the password is empty";
    }
    if (password.size() > kPasswordMaxBytes) {
        return "the password is longer than " + std::to_string(kPasswordMaxBytes) + " bytes";
    }
    if (password.find('\0') != std::string_view::npos) {
        return "the password contains a NUL byte";
    }
    if (password.find_first_of("\r\n") != std::string_view::npos) {
        return "the password contains a line break (only one trailing newline is stripped)";
    }
    if (!utf8_valid(password)) {
        return "the password is not UTF-8 text";
    }
    return "";
}

SecretString read_password(int fd, bool confirm) {
    SecretString pw;
    if (isatty(fd)) {
        pw = strip_newline(prompt_line(fd, "Password: "));
        std::string problem = password_problem(pw.view());
        if (!problem.empty()) {
            throw InputError(problem);
        }
        if (confirm) {
            SecretString again = strip_newline(prompt_line(fd, "Password (again): "));
            if (!equal_ct(pw.view(), again.view())) {
                throw InputError("the passwords do not match");
            }
        }
        return pw;
    }
    bool too_long = false;
    pw = read_fd(fd, kPasswordMaxBytes + 2, false, &too_long);
    if (too_long) {
        throw InputError("the password is longer than " + std::to_string(kPasswordMaxBytes) + " bytes");
    }
    pw = strip_newline(std::move(pw));
    std::string problem = password_problem(pw.view());
    if (!problem.empty()) {
        throw InputError(problem);
    }
    return pw;
}

std::string read_small_file(const std::string& path, size_t max) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) {
        throw InputError("cannot read " + path + ": " + std::strerror(errno));
    }
    std::unique_ptr<FILE, int (*)(FILE*)> closer(f, std::fclose);
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) {
        out.append(buf, n);
        if (out.size() > max) {
            throw InputError(path + " is larger than " + std::to_string(max) + " bytes");
        }
    }
    if (std::ferror(f)) {
        throw InputError("cannot read " + path + ": " + std::strerror(errno));
    }
    return out;
}

PublicKey read_public_key_file(const std::string& path) {
    std::string pem = read_small_file(path, kKeyFileMaxBytes);
    std::string why;
    auto key = PublicKey::from_pem(pem, &why);
    if (!key) {
        throw InputError(path + ": " + (why.empty() ? "not a usable public key" : why));
    }
    return *key;
}

// ---- challenge and response files ----

namespace {

struct JsonDeleter {
    void operator()(json_t* j) const { json_decref(j); }
};
using JsonPtr = std::unique_ptr<json_t, JsonDeleter>;

JsonPtr parse_object(std::string_view text) {
    json_error_t err;
    JsonPtr j(json_loadb(text.data(), text.size(), JSON_REJECT_DUPLICATES, &err));
    if (!j || !json_is_object(j.get())) {
        return nullptr;
    }
    return j;
}

std::optional<std::string> str_field(json_t* obj, const char* name) {
    json_t* v = json_object_get(obj, name);
    if (!json_is_string(v)) {
        return std::nullopt;
    }
    return std::string(json_string_value(v), json_string_length(v));
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
        s.remove_suffix(1);
    }
    return s;
}

}  // namespace

std::string render_challenge_file(const ChallengeFile& c) {
    std::string out = "{\"version\":" + json_string(kAuthMessageTag);
    out += ",\"user\":" + json_string(c.user);
    out += ",\"host\":" + json_string(c.host);
    out += ",\"nonce\":" + json_string(c.nonce);
    out += ",\"expires_at\":" + std::to_string(c.expires_at);
    out += ",\"message\":" + json_string(auth_signed_message(c.host, c.user, c.nonce));
    out += "}\n";
    return out;
}

std::optional<ChallengeFile> parse_challenge_file(std::string_view text) {
    JsonPtr j = parse_object(text);
    if (!j) {
        return std::nullopt;
    }
    auto version = str_field(j.get(), "version");
    auto user = str_field(j.get(), "user");
    auto host = str_field(j.get(), "host");
    auto nonce = str_field(j.get(), "nonce");
    json_t* exp = json_object_get(j.get(), "expires_at");
    if (!version || *version != kAuthMessageTag || !user || !host || !nonce || !json_is_integer(exp)) {
        return std::nullopt;
    }
    ChallengeFile c{*user, *host, *nonce, static_cast<int64_t>(json_integer_value(exp))};
    if (json_object_get(j.get(), "message") != nullptr) {
        auto message = str_field(j.get(), "message");
        if (!message || *message != auth_signed_message(c.host, c.user, c.nonce)) {
            return std::nullopt;
        }
    }
    return c;
}

SignatureResponse parse_response_file(std::string_view content) {
    SignatureResponse r;
    std::string_view t = trim(content);
    if (t.empty()) {
        throw InputError("the response file is empty");
    }
    if (t.front() == '{') {
        JsonPtr j = parse_object(t);
        if (j) {
            auto sig = str_field(j.get(), "signature");
            if (!sig) {
                throw InputError("the response file has no \"signature\" string");
            }
            if (sig->size() > kSignatureMaxChars || !base64_decode_lenient(trim(*sig), r.signature)) {
                throw InputError("the response file's signature is not base64");
            }
            r.nonce = str_field(j.get(), "nonce");
            r.host = str_field(j.get(), "host");
            r.user = str_field(j.get(), "user");
            return r;
        }
    }
    if (t.size() <= kSignatureMaxChars && base64_decode_lenient(t, r.signature)) {
        return r;
    }
    // raw signature bytes (openssl pkeyutl -sign -out FILE): at most a DER
    // ECDSA P-256 signature (72 bytes)
    if (content.size() > 128) {
        throw InputError("the response file holds neither a base64 nor a raw signature");
    }
    r.signature.assign(content.data(), content.size());
    return r;
}

// ---- output ----

std::string json_string(std::string_view s) {
    std::string out = "\"";
    size_t i = 0;
    while (i < s.size()) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x80) {
            // copy one well-formed UTF-8 sequence, or U+FFFD for a bad byte
            size_t n = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
            if (n > 0 && i + n <= s.size() && utf8_valid(s.substr(i, n))) {
                out.append(s.substr(i, n));
                i += n;
            } else {
                out += "\xef\xbf\xbd";
                i++;
            }
            continue;
        }
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (c < 0x20 || c == 0x7f) {
                    char buf[8];
                    std::snprintf(buf, sizeof(buf), "\\u%04x", c);
                    out += buf;
                } else {
                    out.push_back(static_cast<char>(c));
                }
        }
        i++;
    }
    out += "\"";
    return out;
}

std::string utc_time_ms(int64_t unix_ms) {
    time_t t = static_cast<time_t>(unix_ms / 1000);
    struct tm tm;
    char buf[32];
    if (gmtime_r(&t, &tm) == nullptr || std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%SZ", &tm) == 0) {
        return std::to_string(unix_ms / 1000);
    }
    return buf;
}

}  // namespace pairguard::cli
