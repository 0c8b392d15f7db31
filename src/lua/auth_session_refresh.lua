-- Replaces a session by a new one of the same user and method.
-- KEYS: old session, sessions, new session, user. ARGV: old hash, new hash,
-- ttl ms, channel, event. Returns {1, expires_ms}, or nil when the old
-- session is gone or the user is no longer allowed in.
-- @include auth_common.lua
-- @include events_common.lua
local now = now_ms()
local v = redis.call('GET', KEYS[1])
if not v then return false end
local ok, s = pcall(cjson.decode, v)
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
-- the old token's caches must go; a refresh is not an owner's event
pg_emit(ARGV[4], ARGV[5], true)
local u = redis.call('HMGET', KEYS[4], 'name', 'revoked')
if not ok or type(s) ~= 'table' or not u[1] or u[2] then return false end
local ttl = tonumber(ARGV[3])
local exp = now + ttl
redis.call('SET', KEYS[3], cjson.encode({user = u[1], created_ms = now, expires_ms = exp, method = s.method}),
           'PX', ttl)
redis.call('ZADD', KEYS[2], exp, ARGV[2])
redis.call('PEXPIRE', KEYS[2], math.max(redis.call('PTTL', KEYS[2]), ttl))
return {1, exp}
