-- Removes an approved user.
-- KEYS: approved hash. ARGV: user id (normalised), event channel, event
-- ("revoked|TAG|USER_HASH"). Returns 1 when the user was approved, else 0.
-- @include events_common.lua
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  pg_emit(ARGV[2], ARGV[3])
  return 1
end
return 0
