-- Takes a handshake's state for client-final, once: the value is replaced
-- by '' (used) until the token expires, so that neither step of the
-- exchange can be run again with this token. KEYS: handshake.
-- Returns the state, or nil (unknown, used or expired).
local v = redis.call('GET', KEYS[1])
if not v or v == '' then return false end
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('SET', KEYS[1], '', 'PX', ttl) else redis.call('DEL', KEYS[1]) end
return v
