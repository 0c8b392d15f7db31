-- Decide one request against all its policy keys at once, and reserve an
-- attempt on each if every key allows it.
-- ARGV[1] = reservation lifetime (ms); then five limits per key.
-- Returns {status, policy, retry_ms, reservation, ended...}: status 0 allowed,
-- 1 locked, 2 over budget with attempts in flight; `ended` lists the policies
-- whose lock ran out (and is cleared now).

-- The common case first, before any helper is even defined: one key with no
-- history at all. Its reservation-only value keeps the time in decimal (13
-- digits; it lives one request long), which parse() tells from base 36.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local hold = tonumber(ARGV[1])
local reservation = now + hold
local nkeys = #KEYS
if nkeys == 1 and redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SET', KEYS[1], '|||' .. reservation .. '|', 'PX', hold)
  return {0, 0, 0, reservation}
end

-- @include base36_common.lua
-- @include guard_common.lua

local status, policy, retry = 0, 0, 0
local st, ended = {}, {}

for i = 1, nkeys do
  local b = 1 + (i - 1) * 5
  local max, window = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  local v = redis.call('GET', KEYS[i])
  local l, n, t, res, fail = 0, 0, 0, {}, {}
  if v then l, n, t, res, fail = parse(v, window, now) end
  if l > now then
    -- Redis TIME is wall-clock time and may step back: what is left of a
    -- lock is never more than its length
    local left = l - now
    if t > 0 and left > l - t then left = l - t end
    if status ~= 1 or left > retry then
      status, policy, retry = 1, i, left
    end
  else
    if l ~= 0 then
      l = 0
      ended[#ended + 1] = i
    end
    if status == 0 and #fail + #res >= max then
      status, policy, retry = 2, i, 1000
    end
  end
  st[i] = {l, n, t, res, fail, v}
end

if status ~= 0 then reservation = 0 end

for i = 1, nkeys do
  local s = st[i]
  local b = 1 + (i - 1) * 5
  if reservation ~= 0 then
    s[4][#s[4] + 1] = reservation
  end
  if reservation ~= 0 or s[6] then
    store(KEYS[i], s[1], s[2], s[3], s[4], s[5], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 4]), now)
  end
end

local out = {status, policy, retry, reservation}
for j = 1, #ended do out[#out + 1] = ended[j] end
return out
