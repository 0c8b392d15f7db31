-- Shared by guard_reserve.lua and guard_settle.lua (prepended at build time).
-- One string per (policy, key): "L|N|T|R|F" = lock end, lockouts in the last
-- 24 h, last lockout start, reservation expiries, failure times (ms, Redis
-- TIME; 13-digit integers, which Lua prints exactly). A key with no history
-- is absent. Per-key ARGV, five each: max_failures, window, lockout,
-- backoff*1000, max_lockout. Written for speed: this runs twice per request.

local tonumber, gmatch, match, concat = tonumber, string.gmatch, string.match, table.concat

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Parses a value into lock end, lockouts, last lockout, and the live
-- reservations and failures (stale ones dropped on the way).
local function parse(v, window, now)
  local l, n, t, r, f = match(v, '^(%d+)|(%d+)|(%d+)|([%d,]*)|([%d,]*)$')
  local res, fail = {}, {}
  if not l then return 0, 0, 0, res, fail end
  if r ~= '' then
    for x in gmatch(r, '%d+') do
      x = tonumber(x)
      if x > now then res[#res + 1] = x end
    end
  end
  if f ~= '' then
    local since = now - window
    for x in gmatch(f, '%d+') do
      x = tonumber(x)
      if x > since then fail[#fail + 1] = x end
    end
  end
  return tonumber(l), tonumber(n), tonumber(t), res, fail
end

-- Writes a key back (or deletes it when nothing in it matters any more).
-- It lives as long as anything in it counts: a lock (plus one window, so that
-- the first request after it can report its end), failures inside the
-- window, reservations, and with backoff the 24 h escalation memory.
local function store(key, l, n, t, res, fail, window, backoff, now)
  local ttl = 0
  if l > 0 then ttl = l + window - now end
  local nf = #fail
  if nf > 0 and fail[nf] + window - now > ttl then ttl = fail[nf] + window - now end
  for i = 1, #res do
    if res[i] - now > ttl then ttl = res[i] - now end
  end
  if backoff > 1000 and n > 0 and t + 86400000 - now > ttl then ttl = t + 86400000 - now end
  if ttl <= 0 then
    redis.call('DEL', key)
    return
  end
  redis.call('SET', key, l .. '|' .. n .. '|' .. t .. '|' .. concat(res, ',') .. '|' .. concat(fail, ','),
    'PX', math.ceil(ttl))
end
