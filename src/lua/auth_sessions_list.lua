-- A user's live sessions. KEYS: sessions. ARGV: base.
-- Returns {token hash, JSON, ...}.
-- @include auth_common.lua
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local out = {}
for _, h in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local v = redis.call('GET', ARGV[1] .. ':s:' .. h)
  if v then
    out[#out + 1] = h
    out[#out + 1] = v
  else
    redis.call('ZREM', KEYS[1], h)
  end
end
return out
