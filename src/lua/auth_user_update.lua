-- Changes fields of a user. KEYS: user, sessions. ARGV: base, channel,
-- event, revoke sessions ('1'/'0'), then field/value pairs (an empty value
-- deletes the field). Returns 'ok' or 'not_found'.
-- @include auth_common.lua
-- @include events_common.lua
if redis.call('EXISTS', KEYS[1]) == 0 then return 'not_found' end
for i = 5, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', KEYS[1], ARGV[i])
  else
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
if ARGV[4] == '1' then
  drop_sessions(ARGV[1], KEYS[2], now_ms())
  pg_emit(ARGV[2], ARGV[3])
end
return 'ok'
