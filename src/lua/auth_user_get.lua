-- Everything about a user. KEYS: user, sessions, lock, fail.
-- Returns {now, lock ms left, failures, live sessions, field, value, ...}
-- (no fields: unknown user).
-- @include auth_common.lua
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local out = {now, lock_left(KEYS[3], now), tonumber(redis.call('GET', KEYS[4]) or '0') or 0,
             redis.call('ZCARD', KEYS[2])}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all do out[#out + 1] = all[i] end
return out
