-- Lists a platform's pending codes (expired ones are pruned first).
-- KEYS: pending hash. Returns {now ms, field, entry JSON, field, entry JSON...}.

-- @include pair_common.lua

local now = now_ms()
local live = live_pending(KEYS[1], now)
local out = {now}
for i = 1, #live do
  out[#out + 1] = live[i][1]
  out[#out + 1] = cjson.encode(live[i][2])
end
return out
