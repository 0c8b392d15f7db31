#include "store.hpp"

#include <openssl/evp.h>

namespace pairguard {

StoreScript make_store_script(std::string_view name, std::string_view source) {
    return StoreScript{name, source, sha1_hex(source)};
}

Reply Reply::of_integer(int64_t v) {
    Reply r;
    r.type = Type::integer;
    r.integer = v;
    return r;
}

Reply Reply::of_string(std::string s) {
    Reply r;
    r.type = Type::string;
    r.str = std::move(s);
    return r;
}

Reply Reply::of_error(std::string s) {
    Reply r;
    r.type = Type::error;
    r.str = std::move(s);
    return r;
}

Reply Reply::of_array(std::vector<Reply> e) {
    Reply r;
    r.type = Type::array;
    r.elements = std::move(e);
    return r;
}

bool reply_integers(const Reply& reply, std::vector<int64_t>& out) {
    out.clear();
    if (reply.type != Reply::Type::array) {
        return false;
    }
    out.reserve(reply.elements.size());
    for (const Reply& e : reply.elements) {
        if (e.type != Reply::Type::integer) {
            return false;
        }
        out.push_back(e.integer);
    }
    return true;
}

std::string store_error_text(const StoreCall& call, const Reply& reply) {
    std::string name = call.script != nullptr ? std::string(call.script->name) : std::string("?");
    switch (reply.type) {
    case Reply::Type::error:
        return "script " + name + " failed: " + reply.str.substr(0, 200);
    case Reply::Type::nil:
        return "script " + name + ": no reply";
    default:
        return "unexpected reply from script " + name;
    }
}

std::string sha1_hex(std::string_view data) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha1(), nullptr) != 1) {
        return {};
    }
    static const char hex[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < len; i++) {
        out.push_back(hex[md[i] >> 4]);
        out.push_back(hex[md[i] & 0xf]);
    }
    return out;
}

}  // namespace pairguard
