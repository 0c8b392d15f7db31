-- Record the upstream's answer for a reserved attempt.
-- ARGV[1] = outcome: 'f' failure, 's' success, 'n' neutral;
-- ARGV[2] = the reservation (0: none, as in dry run); then five limits per key.
-- Returns {policy, lock_ms, ...} for every key this failure locked.

-- @include base36_common.lua

local outcome, reservation = ARGV[1], tonumber(ARGV[2])

-- The common cases first: one key holding nothing but this request's own
-- reservation (as the reserve fast path wrote it). A success or neutral
-- answer leaves nothing to remember; a failure that cannot lock yet becomes
-- the key's only failure.
if #KEYS == 1 and reservation ~= 0 and redis.call('GET', KEYS[1]) == '|||' .. ARGV[2] .. '|' then
  if outcome ~= 'f' then
    redis.call('DEL', KEYS[1])
    return {}
  end
  if tonumber(ARGV[3]) > 1 then
    local t = redis.call('TIME')
    redis.call('SET', KEYS[1], '||||' .. b36(t[1] * 1000 + math.floor(t[2] / 1000) - EPOCH), 'PX', ARGV[4])
    return {}
  end
end

-- @include guard_common.lua

local now = now_ms()
local out = {}

for i = 1, #KEYS do
  local b = 2 + (i - 1) * 5
  local key = KEYS[i]
  local v = redis.call('GET', key)

  if outcome ~= 'f' and v == '0|0|0|' .. ARGV[2] .. '|' then
    -- the common case: nothing here but this request's own reservation
    redis.call('DEL', key)
  elseif v or outcome == 'f' then
    local max, window = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
    local l, n, t, res, fail = 0, 0, 0, {}, {}
    if v then l, n, t, res, fail = parse(v, window, now) end

    if reservation ~= 0 then
      for j = 1, #res do
        if res[j] == reservation then
          table.remove(res, j)
          break
        end
      end
    end

    if outcome == 'f' and l <= now then
      if #fail + #res >= max then
        -- only a dry run lets more than the budget through: keep the newest
        if #fail > 0 then table.remove(fail, 1) else table.remove(res, 1) end
      end
      fail[#fail + 1] = now
      if #fail >= max then
        local lockout, backoff, max_lockout = tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4]), tonumber(ARGV[b + 5])
        local earlier = 0
        if t > 0 and now - t < 86400000 then earlier = n end
        local cap = max_lockout > 0 and max_lockout or 1e15
        local d = lockout
        for _ = 1, earlier do
          if d >= cap then break end
          d = d * backoff / 1000
        end
        d = math.floor(math.min(d, cap))
        l, n, t, fail = now + d, earlier + 1, now, {}
        out[#out + 1] = i
        out[#out + 1] = d
      end
    elseif outcome == 's' then
      fail = {}
    end
    store(key, l, n, t, res, fail, window, tonumber(ARGV[b + 4]), now)
  end
end

return out
