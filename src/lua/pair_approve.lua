-- The owner approves a code.
-- KEYS: pending hash, approved hash, platform failure counter, platform lock.
-- ARGV: code field (HMAC), max_failures, lockout ms, code_max_failures,
--       failure memory ms, event channel, event prefix ("approved|TAG|").
-- Returns {'ok', user_id, user_name}, {'locked', retry ms} or
-- {'invalid_code', codes burned, lockout ms started by this failure or 0}.
-- A locked platform refuses even the right code. A wrong code spends one
-- attempt of every pending code of the platform (a code at code_max_failures
-- is burned) and counts one platform failure; at max_failures the platform
-- locks for lockout. A right code resets the platform's failures.

-- @include pair_common.lua
-- @include events_common.lua

local pending, approved, fail, lock = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local field = ARGV[1]
local max_failures, lockout = tonumber(ARGV[2]), tonumber(ARGV[3])
local code_max, memory = tonumber(ARGV[4]), tonumber(ARGV[5])
local channel, event = ARGV[6], ARGV[7]
local now = now_ms()
local live = live_pending(pending, now)

local left = redis.call('PTTL', lock)
if left > 0 then return {'locked', left} end

for i = 1, #live do
  if live[i][1] == field then
    local e = live[i][2]
    local name = type(e.user_name) == 'string' and e.user_name or ''
    redis.call('HDEL', pending, field)
    -- the user id is normalised, so an approval under another alias of the
    -- same user lands on the same field and replaces the old entry
    redis.call('HSET', approved, e.user_id, cjson.encode({user_name = name, approved_ms = now}))
    redis.call('DEL', fail)
    pg_emit(channel, event .. e.uh)
    return {'ok', e.user_id, name}
  end
end

local burned = 0
for i = 1, #live do
  local f, e = live[i][1], live[i][2]
  e.attempts = (tonumber(e.attempts) or 0) + 1
  if e.attempts >= code_max then
    redis.call('HDEL', pending, f)
    burned = burned + 1
  else
    redis.call('HSET', pending, f, cjson.encode(e))
  end
end

local fails = redis.call('INCR', fail)
redis.call('PEXPIRE', fail, memory)
pg_key_event('wrong_approval', lock, burned)
if fails >= max_failures then
  redis.call('SET', lock, tostring(now + lockout), 'PX', lockout)
  redis.call('DEL', fail)
  pg_key_event('locked', lock, lockout)
  return {'invalid_code', burned, lockout}
end
return {'invalid_code', burned, 0}
