-- The reserves and settles one worker produced in one event-loop iteration,
-- walked in order: the answers are exactly those of separate calls of
-- guard_reserve.lua and guard_settle.lua, for one Redis TIME and one round
-- trip. KEYS: every operation's keys, in order.
-- ARGV[1] = reservation lifetime (ms); then per operation:
--   'r', nkeys, five limits per key
--   'R', nkeys, reservation, five limits per key (one request's keys split
--        over Redis Cluster slots: every part reserves the same value)
--   's', nkeys, outcome, reservation, five limits per key
-- Returns one bulk string: every operation's reply, as the single scripts
-- return them, the integers in decimal separated by ' ' and the operations
-- by ',' (one string is one allocation for the client to read, where an
-- array of arrays is one per integer).

-- @include base36_common.lua
-- @include guard_common.lua
-- @include events_common.lua
-- @include guard_ops_common.lua

-- an integer as Redis would answer it (truncated toward zero), in decimal
-- whatever its size ('..' would write 1e+15)
local function enc(t)
  local n = #t
  if n == 0 then return '' end
  if n == 4 and t[1] == 0 and t[2] == 0 and t[3] == 0 then
    return '0 0 0 ' .. string.format('%d', t[4])
  end
  for i = 1, n do t[i] = string.format('%d', t[i]) end
  return table.concat(t, ' ')
end

local now, hold = now_ms(), tonumber(ARGV[1])
local out = {}
local kb, a, nargv = 0, 2, #ARGV
while a <= nargv do
  local n = tonumber(ARGV[a + 1])
  if ARGV[a] == 'r' then
    out[#out + 1] = enc(reserve_op(kb, n, a + 2, now, hold))
    a = a + 2 + 5 * n
  elseif ARGV[a] == 'R' then
    out[#out + 1] = enc(reserve_op(kb, n, a + 3, now, hold, tonumber(ARGV[a + 2])))
    a = a + 3 + 5 * n
  else
    out[#out + 1] = enc(settle_op(kb, n, ARGV[a + 2], ARGV[a + 3], a + 4, now))
    a = a + 4 + 5 * n
  end
  kb = kb + n
end
return table.concat(out, ',')
