-- One failed proof (per user or per address). KEYS: fail, lock.
-- ARGV: max_failures, lockout ms. Failures are forgotten `lockout` after the
-- last one. Returns the lock started (ms), 0, or -1 when already locked
-- (nothing counted).
-- @include auth_common.lua
-- @include events_common.lua
local now = now_ms()
if lock_left(KEYS[2], now) > 0 then return -1 end
local lockout = tonumber(ARGV[2])
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], lockout)
if n >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], now + lockout, 'PX', lockout)
  redis.call('DEL', KEYS[1])
  pg_key_event('locked', KEYS[2], lockout)
  return lockout
end
return 0
