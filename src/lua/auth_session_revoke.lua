-- Ends one session. KEYS: session, sessions. ARGV: token hash, channel,
-- event. Returns 1 when it existed, else 0.
-- @include events_common.lua
local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if n == 1 then pg_emit(ARGV[2], ARGV[3]) end
return n
