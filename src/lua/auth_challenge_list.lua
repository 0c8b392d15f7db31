-- What verify needs. KEYS: user, ch, lock.
-- Returns {now, exists, revoked, key PEM, key fingerprint, lock ms left, seed, ...}.
-- @include auth_common.lua
local now = now_ms()
local u = redis.call('HMGET', KEYS[1], 'name', 'revoked', 'key', 'key_fp')
local out = {now, u[1] and 1 or 0, u[2] and 1 or 0, u[3] or '', u[4] or '', lock_left(KEYS[3], now)}
for _, s in ipairs(live_seeds(KEYS[2], now)) do out[#out + 1] = s[1] end
return out
