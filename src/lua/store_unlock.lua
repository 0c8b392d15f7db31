-- An operator lifts a lock: deletes the given keys (a guard key, or a
-- platform's lock and failure counter) and, when anything was there, tells
-- every node, which may hold the lock in memory. ARGV: event channel, event
-- ("unlocked|g|TAG" or "unlocked|p|TAG"). Returns the number of keys deleted.
-- @include events_common.lua
local n = redis.call('DEL', unpack(KEYS))
if n > 0 then pg_emit(ARGV[1], ARGV[2]) end
return n
