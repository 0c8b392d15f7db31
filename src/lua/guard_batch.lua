-- The reserves and settles one worker produced in one event-loop iteration,
-- walked in order: the answers are exactly those of separate calls of
-- guard_reserve.lua and guard_settle.lua, for one Redis TIME and one round
-- trip. KEYS: every operation's keys, in order.
-- ARGV[1] = reservation lifetime (ms); ARGV[2] = the number of limit sets;
-- then each set: its length m (five limits per key of the operations that
-- use it) and m numbers; then per operation:
--   'r', nkeys, set
--   'R', nkeys, reservation, set (one request's keys split over Redis
--        Cluster slots: every part reserves the same value)
--   's', nkeys, outcome, reservation, set
-- where `set` is the 1-based number of the operation's limit set (the
-- operations of one location share one: sent and converted once).
-- Returns one bulk string: every operation's reply, as the single scripts
-- return them, the integers in decimal separated by ' ' and the operations
-- by ',' (one string is one allocation for the client to read, where an
-- array of arrays is one per integer).

-- One reserve alone (a request whose iteration of the event loop made no
-- other operation: every request at low concurrency) on keys that hold
-- nothing is answered here, before the definitions below run (Redis runs
-- the whole script text at every call): the same commands and answer as
-- reserve_op's fast path below. If a key exists, the keys written before it
-- are taken back (the script runs alone: nothing saw them) and the walk
-- below decides, on the same Redis TIME. Anything else goes to the walk,
-- which also turns down what is malformed.
local early_now
do
  local nargv, m, n = #ARGV, tonumber(ARGV[3]), #KEYS
  if m and nargv == 6 + m and ARGV[2] == '1' and ARGV[4 + m] == 'r' and ARGV[nargv] == '1'
      and n > 0 and tonumber(ARGV[5 + m]) == n and tonumber(ARGV[1]) then
    local ok = true
    for x = 4, 3 + m do
      if not tonumber(ARGV[x]) then ok = false break end
    end
    if ok then
      local t = redis.call('TIME')
      early_now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
      local fresh = string.format('%d', early_now + tonumber(ARGV[1]))
      local value, written = '|||' .. fresh .. '|', 0
      for i = 1, n do
        if not redis.call('SET', KEYS[i], value, 'NX', 'PX', ARGV[1]) then break end
        written = i
      end
      if written == n then return '0 0 0 ' .. fresh end
      for i = 1, written do redis.call('DEL', KEYS[i]) end
    end
  end
end

-- Up to four settles alone in their batch (at low concurrency a request's
-- answer comes in an iteration of its own), each of one key, of distinct
-- keys, each key holding nothing but its request's own reservation, are
-- answered here too, as settle_op's fast path below would: a success or a
-- neutral answer deletes the key; a failure that cannot lock (max_failures
-- above 1, a window of whole seconds) leaves the compact form. Every key is
-- read first (a key with a history ends it at once; so does a key that is
-- not a string, for the walk to fail on in its turn), and only if each holds
-- exactly its reservation, every limit is a number and every set number
-- names a set (as the walk requires) is anything written; else nothing was,
-- and the walk below decides.
if not early_now then
  local nargv, nsets, n = #ARGV, tonumber(ARGV[2]), #KEYS
  if nsets and nsets >= 1 and nsets <= 9 and n >= 1 and n <= 4 and tonumber(ARGV[1]) then
    -- each set's first index, in order and by the text an operation names it with
    local pos, starts, a, ok = {}, {}, 3, true
    for j = 1, nsets do
      local m = tonumber(ARGV[a])
      if not m or m < 5 or a + m > nargv then ok = false break end
      pos[j] = a
      starts[string.format('%d', j)] = a
      a = a + 1 + m
    end
    ok = ok and nargv - a + 1 == 5 * n
    if ok then
      for i = 1, n do
        local x = a + (i - 1) * 5
        if ARGV[x] ~= 's' or ARGV[x + 1] ~= '1' or ARGV[x + 3] == '0'
            or redis.pcall('GET', KEYS[i]) ~= '|||' .. ARGV[x + 3] .. '|' then
          ok = false break
        end
      end
    end
    if ok then
      for j = 1, nsets do
        local b = pos[j]
        for x = b + 1, b + tonumber(ARGV[b]) do
          if not tonumber(ARGV[x]) then ok = false break end
        end
      end
    end
    local fail, any_fail = {}, false
    if ok then
      for i = 1, n do
        local x = a + (i - 1) * 5
        local o, b = ARGV[x + 2], starts[ARGV[x + 4]]
        if not b or not tonumber(ARGV[x + 3]) then ok = false break end
        if o == 'f' then
          local max, window = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
          if not (max > 1 and window % 1000 == 0 and window >= 1000 and window <= 9999000) then
            ok = false break
          end
          fail[i] = window
          any_fail = true
        elseif o ~= 's' and o ~= 'n' then
          ok = false break
        end
        for j = 1, i - 1 do
          if KEYS[j] == KEYS[i] then ok = false break end
        end
        if not ok then break end
      end
    end
    if ok then
      local now
      if any_fail then
        local t = redis.call('TIME')
        now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
      end
      for i = 1, n do
        local window = fail[i]
        if window then
          redis.call('SET', KEYS[i], string.format('%d', window / 1000), 'PXAT', string.format('%d', now + window), 'XX')
        else
          redis.call('DEL', KEYS[i])
        end
      end
      return string.rep(',', n - 1)
    end
  end
end

-- @include base36_common.lua
-- @include guard_common.lua
-- @include events_common.lua
-- @include guard_ops_common.lua

local format = string.format

-- an integer as Redis would answer it (truncated toward zero), in decimal
-- whatever its size ('..' would write 1e+15)
local function enc(t)
  local n = #t
  if n == 0 then return '' end
  for i = 1, n do t[i] = format('%d', t[i]) end
  return concat(t, ' ')
end

local cs = call_state(early_now or now_ms(), ARGV[1])
-- the limit sets, in one array of numbers; starts['j']: set j's first (by
-- the text the operations name it with: no number to parse per operation)
local lim, starts = {}, {}
local a = 3
for j = 1, tonumber(ARGV[2]) do
  starts[format('%d', j)] = #lim + 1
  local m = tonumber(ARGV[a])
  for x = a + 1, a + m do lim[#lim + 1] = tonumber(ARGV[x]) or error('pairguard: a limit is not a number') end
  a = a + 1 + m
end
local function set_start(text)
  return starts[text] or error('pairguard: no such limit set')
end
-- the answer of a fresh reservation made now (the reserve's fast path)
local fresh_answer = '0 0 0 ' .. format('%d', cs.fresh)
local out = {}
local kb, nargv = 0, #ARGV
while a <= nargv do
  local kind, n = ARGV[a], ARGV[a + 1]
  -- one key is the common case: no number to parse
  if n == '1' then n = 1 else n = tonumber(n) end
  if kind == 'r' then
    local r = reserve_op(kb, n, lim, set_start(ARGV[a + 2]), cs)
    if #r == 4 and r[1] == 0 and r[4] == cs.fresh then
      out[#out + 1] = fresh_answer
    else
      out[#out + 1] = enc(r)
    end
    a = a + 3
  elseif kind == 'R' then
    out[#out + 1] = enc(reserve_op(kb, n, lim, set_start(ARGV[a + 3]), cs, tonumber(ARGV[a + 2])))
    a = a + 4
  else
    out[#out + 1] = enc(settle_op(kb, n, ARGV[a + 2], ARGV[a + 3], lim, set_start(ARGV[a + 4]), cs))
    a = a + 5
  end
  kb = kb + n
end
return concat(out, ',')
