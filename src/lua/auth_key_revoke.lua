-- Revokes a user's key: every login method refuses the user until a new
-- key is set; challenges and sessions are dropped. KEYS: user, sessions, ch.
-- ARGV: base, channel, event, reason. Returns 'ok', 'not_found' or 'no_key'.
-- @include auth_common.lua
-- @include events_common.lua
if redis.call('EXISTS', KEYS[1]) == 0 then return 'not_found' end
if redis.call('HEXISTS', KEYS[1], 'key') == 0 then return 'no_key' end
local now = now_ms()
redis.call('HSET', KEYS[1], 'revoked', cjson.encode({reason = ARGV[4], revoked_ms = now}))
redis.call('DEL', KEYS[3])
drop_sessions(ARGV[1], KEYS[2], now)
pg_emit(ARGV[2], ARGV[3])
return 'ok'
