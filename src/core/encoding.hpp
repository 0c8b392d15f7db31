// Encodings the auth core shares: standard base64 (RFC 4648 section 4) for
// SCRAM attributes, nonces and signatures, and one lenient decoder for what
// clients send, since they mix the two alphabets and drop padding.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pairguard {

// Standard base64 with padding.
std::string base64(const uint8_t* data, size_t len);
std::string base64(std::string_view data);
// Standard base64 without its padding (PHC strings, and base64url's base).
std::string base64_unpadded(const uint8_t* data, size_t len);

// Standard or URL-safe alphabet (even mixed), padding optional; if present it
// must be right ("==" only after 2 symbols of a group, "=" only after 3) and
// last. No whitespace. False on anything else, including leftover bits that
// are not zero (so that each byte string has one accepted spelling per
// alphabet and padding choice).
bool base64_decode_lenient(std::string_view in, std::string& out);

// Well-formed UTF-8 (no overlongs, no surrogates, nothing past U+10FFFF);
// with `text`, also no C0 or C1 control character and no DEL (names end up in
// tables on an owner's terminal).
bool utf8_valid(std::string_view s, bool text);
bool utf8_text(std::string_view s);  // utf8_valid(s, true)

}  // namespace pairguard
