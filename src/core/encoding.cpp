#include "encoding.hpp"

#include <openssl/evp.h>

namespace pairguard {

std::string base64(const uint8_t* data, size_t len) {
    std::string out(4 * ((len + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(len));
    out.resize(static_cast<size_t>(n));
    return out;
}

std::string base64(std::string_view data) {
    return base64(reinterpret_cast<const uint8_t*>(data.data()), data.size());
}

std::string base64_unpadded(const uint8_t* data, size_t len) {
    std::string out = base64(data, len);
    while (!out.empty() && out.back() == '=') {
        out.pop_back();
    }
    return out;
}

bool base64_decode_lenient(std::string_view in, std::string& out) {
    out.clear();
    size_t pad = 0;
    while (pad < in.size() && pad < 2 && in[in.size() - 1 - pad] == '=') {
        pad++;
    }
    std::string_view body = in.substr(0, in.size() - pad);
    if (body.size() % 4 == 1 || (pad > 0 && (body.size() + pad) % 4 != 0)) {
        return false;
    }
    uint32_t acc = 0;
    int bits = 0;
    out.reserve(body.size() * 3 / 4);
    for (char c : body) {
        int v;
        if (c >= 'A' && c <= 'Z') {
            v = c - 'A';
        } else if (c >= 'a' && c <= 'z') {
            v = c - 'a' + 26;
        } else if (c >= '0' && c <= '9') {
            v = c - '0' + 52;
        } else if (c == '+' || c == '-') {
            v = 62;
        } else if (c == '/' || c == '_') {
            v = 63;
        } else {
            return false;
        }
        acc = (acc << 6) | static_cast<uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((acc >> bits) & 0xff));
        }
    }
    return (acc & ((1u << bits) - 1)) == 0;
}

bool utf8_valid(std::string_view s, bool text) {
    size_t i = 0;
    while (i < s.size()) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            if (text && (c < 0x20 || c == 0x7f)) {
                return false;
            }
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + n >= s.size()) {
            return false;  // truncated sequence
        }
        for (size_t k = 1; k <= n; k++) {
            auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xc0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (cc & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff)) {
            return false;
        }
        if (text && cp >= 0x80 && cp <= 0x9f) {
            return false;
        }
        i += n + 1;
    }
    return true;
}

bool utf8_text(std::string_view s) {
    return utf8_valid(s, true);
}

}  // namespace pairguard
