// The store's vocabulary, shared by the module, the CLI and the core's
// flows: a Redis script (embedded source and digest), one call of it, and a
// Redis reply independent of any client library (the module's client and
// the CLI convert theirs into it).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pairguard {

struct StoreScript {
    std::string_view name;
    std::string_view source;
    std::string sha1;  // hex, for EVALSHA
};

// A script described from its embedded source (the digest for EVALSHA).
StoreScript make_store_script(std::string_view name, std::string_view source);

// One script call: the module's client and the CLI both run it as EVALSHA
// (EVAL on NOSCRIPT).
struct StoreCall {
    const StoreScript* script = nullptr;
    std::vector<std::string> keys;
    std::vector<std::string> args;
};

// A Redis reply, independent of the client library (the clients convert).
struct Reply {
    enum class Type { nil, integer, string, status, array, error };
    Type type = Type::nil;
    int64_t integer = 0;
    std::string str;  // string, status and error
    std::vector<Reply> elements;

    static Reply nil_reply() { return Reply{}; }
    static Reply of_integer(int64_t v);
    static Reply of_string(std::string s);
    static Reply of_error(std::string s);
    static Reply of_array(std::vector<Reply> e);
};

// A reply that is a list of integers (what the guard scripts answer).
bool reply_integers(const Reply& reply, std::vector<int64_t>& out);

// What a failed call says, for a log line or an operator: the script's name
// and Redis' error text (at most 200 bytes), or the reply's unexpected type.
// Redis' words never carry a key's or an argument's value.
std::string store_error_text(const StoreCall& call, const Reply& reply);

std::string sha1_hex(std::string_view data);

}  // namespace pairguard
