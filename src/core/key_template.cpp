#include "key_template.hpp"

#include <algorithm>
#include <initializer_list>

namespace pairguard {

namespace {

bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// nginx's variable names ignore case: $REMOTE_ADDR is $remote_addr
bool one_of(const std::string& name, std::initializer_list<std::string_view> names) {
    for (std::string_view n : names) {
        if (name.size() == n.size() && std::equal(n.begin(), n.end(), name.begin(), [](char a, char b) {
                return a == (b >= 'A' && b <= 'Z' ? static_cast<char>(b - 'A' + 'a') : b);
            })) {
            return true;
        }
    }
    return false;
}

bool client_address(const std::string& name) {
    return one_of(name, {"remote_addr", "binary_remote_addr", "pairguard_client_net"});
}

}  // namespace

bool key_names_account(const std::vector<KeyPart>& parts) {
    for (const auto& kp : parts) {
        if (kp.variable &&
            !one_of(kp.text, {"remote_addr", "binary_remote_addr", "pairguard_client_net", "realip_remote_addr",
                              "proxy_protocol_addr", "remote_port", "server_addr", "server_port", "host", "scheme"})) {
            return true;
        }
    }
    return false;
}

bool key_pinned_to_client(const std::vector<KeyPart>& parts) {
    bool address = false;
    for (const auto& kp : parts) {
        if (kp.variable) {
            if (!client_address(kp.text)) {
                return false;
            }
            address = true;
        }
    }
    return address;
}

std::string parse_key_template(std::string_view in, std::vector<KeyPart>& out) {
    out.clear();
    std::string literal;
    size_t i = 0;
    while (i < in.size()) {
        if (in[i] != '$') {
            literal.push_back(in[i++]);
            continue;
        }
        i++;
        std::string name;
        if (i < in.size() && in[i] == '{') {
            size_t close = in.find('}', i);
            if (close == std::string_view::npos) {
                return "unclosed \"{\" in key";
            }
            name = std::string(in.substr(i + 1, close - i - 1));
            i = close + 1;
            for (char c : name) {
                if (!name_char(c)) {
                    return "invalid variable name \"" + name + "\" in key";
                }
            }
        } else {
            while (i < in.size() && name_char(in[i])) {
                name.push_back(in[i++]);
            }
        }
        if (name.empty()) {
            return "invalid variable name in key";
        }
        if (name[0] >= '0' && name[0] <= '9') {
            return "regex captures are not supported in key";
        }
        if (!literal.empty()) {
            out.push_back(KeyPart{false, std::move(literal)});
            literal.clear();
        }
        out.push_back(KeyPart{true, std::move(name)});
    }
    if (!literal.empty()) {
        out.push_back(KeyPart{false, std::move(literal)});
    }
    return {};
}

}  // namespace pairguard
