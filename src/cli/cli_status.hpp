// pairguardctl status: a node's pairguard_status JSON, fetched with a tiny
// HTTP/1.0 client (plain HTTP, meant for a loopback or admin address), shown
// as a table.
#pragma once

#include <string>

namespace pairguard::cli {

struct HttpUrl {
    std::string host;
    std::string port = "80";
    std::string path = "/";
};

// "http://HOST[:PORT][/PATH]"; "" or the error.
std::string parse_http_url(const std::string& url, HttpUrl& out);

// `pairguardctl status [--url URL] [--json]` (argv[1] is "status"); returns
// the exit status.
int status_main(int argc, char** argv);

}  // namespace pairguard::cli
