-- Shared by the pairing scripts (prepended at build time). All keys of one
-- platform share the hash tag {p:TAG}. Pending codes are one hash: field =
-- base64url HMAC of the code (the code itself is never here), value = JSON
-- {user_id, user_name, uh, created_ms, expires_ms, attempts}; uh is the HMAC
-- of the normalised user id. Times are Redis TIME in ms.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The platform's live codes as a list of {field, entry}; expired and
-- unreadable ones are deleted on the way.
local function live_pending(key, now)
  local all = redis.call('HGETALL', key)
  local live, dead = {}, {}
  for i = 1, #all, 2 do
    local ok, e = pcall(cjson.decode, all[i + 1])
    if ok and type(e) == 'table' and type(e.user_id) == 'string' and type(e.uh) == 'string'
        and tonumber(e.expires_ms) and tonumber(e.expires_ms) > now then
      live[#live + 1] = {all[i], e}
    else
      dead[#dead + 1] = all[i]
    end
  end
  if #dead > 0 then redis.call('HDEL', key, unpack(dead)) end
  return live
end

-- The hash lives as long as its longest-lived code.
local function expire_pending(key, live, now)
  local last = 0
  for i = 1, #live do
    local x = tonumber(live[i][2].expires_ms)
    if x > last then last = x end
  end
  if last > now then redis.call('PEXPIRE', key, last - now) end
end
