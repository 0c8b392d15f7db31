-- Ends every session of a user. KEYS: sessions. ARGV: base, channel, event.
-- Returns how many were live.
-- @include auth_common.lua
-- @include events_common.lua
local n = drop_sessions(ARGV[1], KEYS[1], now_ms())
pg_emit(ARGV[2], ARGV[3])
return n
