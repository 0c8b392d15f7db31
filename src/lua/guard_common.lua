-- Shared by guard_reserve.lua and guard_settle.lua (prepended at build time).
-- One string per (policy, key): "L|N|T|R|F" = lock end, lockouts in the last
-- 24 h, last lockout start, reservation expiries, failure times (ms, Redis TIME).
-- Per-key ARGV, five each: max_failures, window, lockout, backoff*1000, max_lockout.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function split(s)
  local out = {}
  for v in string.gmatch(s, '%d+') do
    out[#out + 1] = tonumber(v)
  end
  return out
end

local function load(key)
  local s = {L = 0, N = 0, T = 0, R = {}, F = {}}
  local v = redis.call('GET', key)
  if v then
    local l, n, t, r, f = string.match(v, '^(%d+)|(%d+)|(%d+)|([%d,]*)|([%d,]*)$')
    if l then
      s.L, s.N, s.T = tonumber(l), tonumber(n), tonumber(t)
      s.R, s.F = split(r), split(f)
    end
  end
  return s
end

local function prune(s, window, now)
  local f, r = {}, {}
  for _, t in ipairs(s.F) do
    if t > now - window then f[#f + 1] = t end
  end
  for _, t in ipairs(s.R) do
    if t > now then r[#r + 1] = t end
  end
  s.F, s.R = f, r
end

local function join(list)
  local out = {}
  for i, t in ipairs(list) do out[i] = string.format('%d', t) end
  return table.concat(out, ',')
end

-- The key lives as long as anything in it matters: a lock (plus one window,
-- so that the first request after it can report its end), failures inside the
-- window, reservations, and with backoff the 24 h escalation memory.
local function save(key, s, window, backoff, now)
  local ttl = 0
  if s.L > 0 then ttl = math.max(ttl, s.L + window - now) end
  for _, t in ipairs(s.F) do ttl = math.max(ttl, t + window - now) end
  for _, t in ipairs(s.R) do ttl = math.max(ttl, t - now) end
  if backoff > 1000 and s.N > 0 then ttl = math.max(ttl, s.T + 86400000 - now) end
  if ttl <= 0 then
    redis.call('DEL', key)
    return
  end
  redis.call('SET', key,
    string.format('%d|%d|%d|', s.L, s.N, s.T) .. join(s.R) .. '|' .. join(s.F),
    'PX', math.ceil(ttl))
end
