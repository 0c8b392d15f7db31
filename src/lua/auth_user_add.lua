-- Creates a user. KEYS: user. ARGV: name, argon2, scram, key PEM, key
-- fingerprint, protected ('1'/'0'). Returns 'ok' or 'exists'.
-- @include auth_common.lua
if redis.call('EXISTS', KEYS[1]) == 1 then return 'exists' end
local f = {'name', ARGV[1], 'created_ms', tostring(now_ms())}
local names = {'argon2', 'scram', 'key', 'key_fp'}
for i = 1, 4 do
  if ARGV[i + 1] ~= '' then f[#f + 1] = names[i]; f[#f + 1] = ARGV[i + 1] end
end
if ARGV[6] == '1' then f[#f + 1] = 'protected'; f[#f + 1] = '1' end
redis.call('HSET', KEYS[1], unpack(f))
return 'ok'
