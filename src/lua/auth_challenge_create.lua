-- Adds a challenge seed (at most 4 pending: the oldest goes).
-- KEYS: ch. ARGV: seed, ttl ms. Returns the ttl.
-- @include auth_common.lua
local now = now_ms()
local live = live_seeds(KEYS[1], now)
for i = 1, #live - 3 do redis.call('HDEL', KEYS[1], live[i][1]) end
local ttl = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], ARGV[1], now + ttl)
redis.call('PEXPIRE', KEYS[1], ttl)
return ttl
