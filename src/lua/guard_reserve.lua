-- Decide one request against all its policy keys at once, and reserve an
-- attempt on each if every key allows it.
-- ARGV[1] = reservation lifetime (ms); then five limits per key.
-- Returns {status, policy, retry_ms, reservation, ended...}: status 0 allowed,
-- 1 locked, 2 over budget with attempts in flight; `ended` lists the policies
-- whose lock ran out (and is cleared now).

local hold = tonumber(ARGV[1])
local now = now_ms()
local status, policy, retry = 0, 0, 0
local states, ended = {}, {}

for i, key in ipairs(KEYS) do
  local b = 1 + (i - 1) * 5
  local max, window = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  local s = load(key)
  prune(s, window, now)
  if s.L > now then
    if status ~= 1 or s.L - now > retry then
      status, policy, retry = 1, i, s.L - now
    end
  else
    if s.L ~= 0 then
      s.L = 0
      ended[#ended + 1] = i
    end
    if status == 0 and #s.F + #s.R >= max then
      status, policy, retry = 2, i, 1000
    end
  end
  states[i] = s
end

local reservation = 0
if status == 0 then
  reservation = now + hold
end

for i, key in ipairs(KEYS) do
  local b = 1 + (i - 1) * 5
  if reservation ~= 0 then
    table.insert(states[i].R, reservation)
  end
  save(key, states[i], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 4]), now)
end

local out = {status, policy, retry, reservation}
for _, i in ipairs(ended) do out[#out + 1] = i end
return out
