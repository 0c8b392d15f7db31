-- Shared by the auth scripts (prepended at build time). Everything of one
-- user lives under the hash tag {a:UTAG}: BASE:user (hash), BASE:sessions
-- (zset token hash -> expiry ms), BASE:s:THASH (session JSON), BASE:ch
-- (challenge seed -> expiry ms), BASE:hs:THASH (handshake), BASE:fail and
-- BASE:lock. Tokens and nonces are never here, only HMACs and seeds. Times
-- are Redis TIME in ms.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Ends every session of the user; returns how many were live.
local function drop_sessions(base, sessions, now)
  local all = redis.call('ZRANGE', sessions, 0, -1, 'WITHSCORES')
  local live = 0
  for i = 1, #all, 2 do
    redis.call('DEL', base .. ':s:' .. all[i])
    if tonumber(all[i + 1]) > now then live = live + 1 end
  end
  redis.call('DEL', sessions)
  return live
end

local function lock_left(lock, now)
  local e = tonumber(redis.call('GET', lock) or '0') or 0
  if e > now then return e - now end
  return 0
end

-- Live challenge seeds, oldest first; expired ones are deleted on the way.
local function live_seeds(ch, now)
  local all = redis.call('HGETALL', ch)
  local live, dead = {}, {}
  for i = 1, #all, 2 do
    local e = tonumber(all[i + 1]) or 0
    if e > now then live[#live + 1] = {all[i], e} else dead[#dead + 1] = all[i] end
  end
  if #dead > 0 then redis.call('HDEL', ch, unpack(dead)) end
  table.sort(live, function(a, b) return a[2] < b[2] end)
  return live
end
