-- A platform's approval lock. KEYS: platform lock, platform failure counter.
-- Returns {lock ms left (0: not locked), wrong approvals counted}.
local left = redis.call('PTTL', KEYS[1])
if left < 0 then left = 0 end
return {left, tonumber(redis.call('GET', KEYS[2]) or '0') or 0}
