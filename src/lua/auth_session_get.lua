-- A session. KEYS: session. Returns {now, JSON} ({now} when unknown).
-- @include auth_common.lua
local now = now_ms()
local v = redis.call('GET', KEYS[1])
if not v then return {now} end
return {now, v}
