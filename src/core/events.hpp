// Events as people and log shippers see them (SPEC section 5). The store's
// scripts publish "KIND|..." payloads on PREFIX "events" and append the same
// payload (field `e`) to the capped stream events_stream(PREFIX); this turns
// one into a one-line JSON object. Tags become their short label (the first
// 8 hex digits of the HMAC, as in the logs); a session's token hash is left
// out altogether. No event holds a code, password, token or key.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pairguard {

// PREFIX "{events}-stream": its own hash tag (one slot for the stream).
std::string events_stream(std::string_view prefix);

// {"type":...,["ts_ms":N,]...} for a known payload, else nullopt. ts_ms 0:
// left out.
//   approved|TAG|UH, revoked|TAG|UH           pairing approval, revocation
//   requested|p|TAG|UH                         a pairing code was requested
//   wrong_approval|p|TAG|BURNED                a wrong code was offered
//   locked|p|TAG|MS  locked|g|GTAG|MS  locked|a|UTAG|MS  locked|aa|ATAG|MS
//   locked|d|DTAG|MS                           a trusted device's own lock
//   lock_ended|g|GTAG  lock_ended|d|DTAG       seen by the first request after it
//   unlocked|p|TAG  unlocked|g|GTAG  unlocked|d|DTAG   an operator lifted a lock
//   revoked_user|UTAG  revoked_session|UTAG|TH logins and sessions ended
std::optional<std::string> event_json(std::string_view payload, int64_t ts_ms = 0);

// The milliseconds of a stream entry id "MS-SEQ" (0 when malformed).
int64_t stream_id_ms(std::string_view id);

}  // namespace pairguard
