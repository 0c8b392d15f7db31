-- Deletes a user with its sessions, challenges and failures.
-- KEYS: user, sessions, ch, fail, lock. ARGV: base, channel, event
-- ("revoked_user|UTAG"). Returns 'ok', 'not_found' or 'protected'.
-- @include auth_common.lua
-- @include events_common.lua
if redis.call('EXISTS', KEYS[1]) == 0 then return 'not_found' end
if redis.call('HGET', KEYS[1], 'protected') == '1' then return 'protected' end
drop_sessions(ARGV[1], KEYS[2], now_ms())
redis.call('DEL', KEYS[1], KEYS[3], KEYS[4], KEYS[5])
pg_emit(ARGV[2], ARGV[3])
return 'ok'
