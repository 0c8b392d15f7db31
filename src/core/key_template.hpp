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

// Whether a key names an account: it has a variable other than the
// client's address and the server's (an argument, a header, a body field,
// a cookie).
bool key_names_account(const std::vector<KeyPart>& parts);

// Whether a key is the client's address and nothing the client chooses:
// its variables are all the client's address ($remote_addr,
// $binary_remote_addr, $pairguard_client_net; at least one), with
// literals. Its history is its caller's own (or, behind a shared address,
// that address' as a whole): no caller can name another's account in it.
// Not $realip_remote_addr nor $proxy_protocol_addr: the first is the proxy
// in front once realip has run, the second is empty on a listener without
// proxy_protocol. Names are compared as nginx does, without regard to case.
bool key_pinned_to_client(const std::vector<KeyPart>& parts);

}  // namespace pairguard
