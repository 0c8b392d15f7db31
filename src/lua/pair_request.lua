-- A user asks for a pairing code.
-- KEYS: pending hash, the user's rate marker, platform lock.
-- ARGV: code field (HMAC), user hash, user id (normalised), user name,
--       code_ttl ms, max_pending, request_interval ms.
-- Returns {'ok', code_ttl}, {'locked' | 'rate_limited' | 'too_many_pending',
-- retry ms} or {'collision', 0} (the new code's HMAC is already pending: draw
-- another code and ask again).
-- A user holds at most one code: a request after request_interval replaces
-- the user's earlier code rather than taking a second slot.

-- @include pair_common.lua
-- @include events_common.lua

local pending, rate, lock = KEYS[1], KEYS[2], KEYS[3]
local field, uh, user, name = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ttl, max_pending, interval = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local now = now_ms()
local live = live_pending(pending, now)

local left = redis.call('PTTL', lock)
if left > 0 then return {'locked', left} end
left = redis.call('PTTL', rate)
if left > 0 then return {'rate_limited', left} end

local others, own, earliest = {}, {}, 0
for i = 1, #live do
  local f, e = live[i][1], live[i][2]
  if f == field then return {'collision', 0} end
  if e.uh == uh then
    own[#own + 1] = f
  else
    others[#others + 1] = live[i]
    local x = tonumber(e.expires_ms)
    if earliest == 0 or x < earliest then earliest = x end
  end
end
if #others >= max_pending then return {'too_many_pending', earliest - now} end
if #own > 0 then redis.call('HDEL', pending, unpack(own)) end

local entry = {user_id = user, user_name = name, uh = uh, created_ms = now, expires_ms = now + ttl, attempts = 0}
redis.call('HSET', pending, field, cjson.encode(entry))
others[#others + 1] = {field, entry}
expire_pending(pending, others, now)
redis.call('SET', rate, '1', 'PX', interval)
pg_key_event('requested', pending, uh)
return {'ok', ttl}
