-- Record the upstream's answer for a reserved attempt.
-- ARGV[1] = outcome: 'f' failure, 's' success, 'n' neutral;
-- ARGV[2] = the reservation (0: none, as in dry run); then five limits per key.
-- Returns {policy, lock_ms, ...} for every key this failure locked.

local outcome, reservation = ARGV[1], tonumber(ARGV[2])
local now = now_ms()
local out = {}

for i, key in ipairs(KEYS) do
  local b = 2 + (i - 1) * 5
  local max, window = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  local lockout, backoff, max_lockout = tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4]), tonumber(ARGV[b + 5])
  local s = load(key)

  if reservation ~= 0 then
    for j, t in ipairs(s.R) do
      if t == reservation then
        table.remove(s.R, j)
        break
      end
    end
  end
  prune(s, window, now)

  if outcome == 'f' and s.L <= now then
    if #s.F + #s.R >= max then
      -- only a dry run lets more than the budget through: keep the newest
      if #s.F > 0 then table.remove(s.F, 1) else table.remove(s.R, 1) end
    end
    s.F[#s.F + 1] = now
    if #s.F >= max then
      local earlier = 0
      if s.T > 0 and now - s.T < 86400000 then earlier = s.N end
      local cap = max_lockout > 0 and max_lockout or 1e15
      local d = lockout
      for _ = 1, earlier do
        if d >= cap then break end
        d = d * backoff / 1000
      end
      d = math.floor(math.min(d, cap))
      s.L, s.N, s.T, s.F = now + d, earlier + 1, now, {}
      out[#out + 1] = i
      out[#out + 1] = d
    end
  elseif outcome == 's' then
    s.F = {}
  end
  save(key, s, window, backoff, now)
end

return out
