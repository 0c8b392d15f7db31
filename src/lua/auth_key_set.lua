-- Sets (rotates) a user's public key: clears a revocation, drops pending
-- challenges and every session. KEYS: user, sessions, ch. ARGV: base,
-- channel, event, PEM, fingerprint. Returns 'ok' or 'not_found'.
-- @include auth_common.lua
-- @include events_common.lua
if redis.call('EXISTS', KEYS[1]) == 0 then return 'not_found' end
redis.call('HSET', KEYS[1], 'key', ARGV[4], 'key_fp', ARGV[5])
redis.call('HDEL', KEYS[1], 'revoked')
redis.call('DEL', KEYS[3])
drop_sessions(ARGV[1], KEYS[2], now_ms())
pg_emit(ARGV[2], ARGV[3])
return 'ok'
