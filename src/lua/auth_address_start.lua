-- An unauthenticated step that makes state (a challenge, a Haystack
-- client-first) spends one of the address's `max_pending` starts; the
-- count is forgotten `lockout` after the last start, and a successful login
-- resets it (auth_address_reset). KEYS: address lock, address starts.
-- ARGV: max_pending, lockout ms. Returns {lock ms left, 1 if the step may
-- store its state else 0}.
-- @include auth_common.lua
local now = now_ms()
local n = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[2]))
return {lock_left(KEYS[1], now), n <= tonumber(ARGV[1]) and 1 or 0}
