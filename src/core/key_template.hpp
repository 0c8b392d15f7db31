// A policy's key=VALUE: literal text and variables ("$remote_addr",
// "${http_x_account}"). The nginx glue evaluates it through indexed variables
// rather than nginx's script engine, whose debug log prints every variable's
// value — and a key may be a pairing code.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace pairguard {

struct KeyPart {
    bool variable = false;
    std::string text;  // the literal, or the variable's name without '$'
};

// Returns an empty string on success, else an error message.
std::string parse_key_template(std::string_view in, std::vector<KeyPart>& out);

}  // namespace pairguard
