-- Shared by guard_reserve.lua and guard_settle.lua (included at build time).
-- One short string per (policy, key), "L|N|T|R|F": lock end, lockouts in the
-- last 24 h, last lockout start, reservation expiries, failure times. Times
-- are ms of Redis TIME, written in base 36 from 2020-01-01 (8 characters);
-- zeros are empty. A key holding nothing but one failure is compact instead:
-- the value is the window it was stored under, in whole seconds (1 to
-- 9999), and the key expires at failure + that window (an absolute PXAT), so
-- that the failure is its expire time minus the value. Redis keeps such a
-- value as one of its shared integers: the commonest tracked key (one guess
-- of one of many addresses) costs no value at all. A key with no history is
-- absent. Per-key ARGV, five each: max_failures, window, lockout,
-- backoff*1000, max_lockout. Written for speed: this runs twice per request.

local tonumber, gmatch, match, concat, find = tonumber, string.gmatch, string.match, table.concat, string.find

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A time: base 36 from EPOCH, or 13 decimal digits (the reserve fast path's).
local function dec(s)
  if s == '' then return 0 end
  if #s >= 13 then return tonumber(s) end
  return tonumber(s, 36) + EPOCH
end

-- Parses the value `v` of `key` into lock end, lockouts, last lockout, and
-- the live reservations and failures (stale ones dropped on the way).
local function parse(v, window, now, key)
  if not find(v, '|', 1, true) then
    -- compact: one failure, at the key's expire time minus the window it
    -- was stored under (the value, in seconds), whatever the window is now.
    -- `key` nil (the value was read by GETDEL, its expiry gone with it), a
    -- key without an expiry or a value not a number: the failure is taken
    -- as a recent one (counted longer, never shorter).
    local w, at = tonumber(v), -1
    if key then
      at = redis.pcall('PEXPIRETIME', key)
      if type(at) ~= 'number' then
        -- Redis before 7.0 (or an ACL without PEXPIRETIME): from the time
        -- left; neither allowed: -1, the failure taken as recent
        local left = redis.pcall('PTTL', key)
        at = type(left) == 'number' and left >= 0 and now + left or -1
      end
    end
    local f = now
    if w and at >= 0 then f = at - w * 1000 end
    if f <= now - window then return 0, 0, 0, {}, {} end
    return 0, 0, 0, {}, {f}
  end
  local l, n, t, r, f = match(v, '^([%w]*)|([%w]*)|([%w]*)|([%w,]*)|([%w,]*)$')
  local res, fail = {}, {}
  if not l then return 0, 0, 0, res, fail end
  if r ~= '' then
    for x in gmatch(r, '%w+') do
      x = dec(x)
      if x > now then res[#res + 1] = x end
    end
  end
  if f ~= '' then
    local since = now - window
    for x in gmatch(f, '%w+') do
      x = dec(x)
      if x > since then fail[#fail + 1] = x end
    end
  end
  return dec(l), (n == '' and 0 or tonumber(n, 36)), dec(t), res, fail
end

local function enc_list(list)
  local out = {}
  for i = 1, #list do out[i] = b36(list[i] - EPOCH) end
  return concat(out, ',')
end

local function enc_time(x)
  if x == 0 then return '' end
  return b36(x - EPOCH)
end

-- The compact form's value for a window (ms), or nil when the window is not
-- a whole number of seconds from 1 to 9999 (Redis' shared integers).
local function compact_window(window)
  if window % 1000 ~= 0 or window < 1000 or window > 9999000 then return nil end
  return string.format('%d', window / 1000)
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
  local compact = nf == 1 and l == 0 and n == 0 and t == 0 and #res == 0 and compact_window(window)
  if compact then
    -- one failure and nothing else: the compact form (see above)
    redis.call('SET', key, compact, 'PXAT', fail[1] + window)
    return
  end
  redis.call('SET', key,
    enc_time(l) .. '|' .. (n == 0 and '' or b36(n)) .. '|' .. enc_time(t) .. '|' .. enc_list(res) .. '|'
      .. enc_list(fail),
    'PX', math.ceil(ttl))
end
