-- Drops every pending code of a platform.
-- KEYS: pending hash. Returns the number of live codes dropped.

-- @include pair_common.lua

local live = live_pending(KEYS[1], now_ms())
redis.call('DEL', KEYS[1])
return #live
