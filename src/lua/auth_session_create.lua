-- Creates a session after a successful proof, if the user still exists, is
-- not revoked or locked, and (challenge) the seed is still pending and the
-- key unchanged. KEYS: user, sessions, session, fail, lock, ch. ARGV: token
-- hash, ttl ms, method, name, challenge seed, key fingerprint, rehash from,
-- rehash to. Returns {1, expires_ms}, or nil when refused.
-- @include auth_common.lua
local now = now_ms()
local u = redis.call('HMGET', KEYS[1], 'name', 'revoked', 'key_fp', 'argon2')
if not u[1] or u[2] or lock_left(KEYS[5], now) > 0 then return false end
if ARGV[5] ~= '' then
  local e = tonumber(redis.call('HGET', KEYS[6], ARGV[5]) or '0') or 0
  redis.call('HDEL', KEYS[6], ARGV[5])
  if e <= now or u[3] ~= ARGV[6] then return false end
end
if ARGV[8] ~= '' and u[4] == ARGV[7] then
  redis.call('HSET', KEYS[1], 'argon2', ARGV[8])
end
local ttl = tonumber(ARGV[2])
local exp = now + ttl
redis.call('SET', KEYS[3], cjson.encode({user = u[1], created_ms = now, expires_ms = exp, method = ARGV[3]}),
           'PX', ttl)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZADD', KEYS[2], exp, ARGV[1])
redis.call('PEXPIRE', KEYS[2], math.max(redis.call('PTTL', KEYS[2]), ttl))
redis.call('DEL', KEYS[4])
return {1, exp}
