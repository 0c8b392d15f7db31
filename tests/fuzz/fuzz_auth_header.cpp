// Authorization headers: the RFC 7235 parameter lists and Project
// Haystack's HELLO / SCRAM / BEARER / PLAINTEXT schemes.
#include <string>
#include <string_view>

#include "scram.hpp"

using namespace pairguard;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    if (auto h = parse_auth_header(text)) {
        for (const auto& [name, value] : h->params) {
            if (h->param(name) == nullptr) {
                __builtin_trap();
            }
        }
        (void)h->is("scram");
    }
    (void)parse_auth_params(text);
    (void)haystack::parse_authorization(text);
    return 0;
}
