-- ms left of a lock (0: none). KEYS: lock.
-- @include auth_common.lua
return lock_left(KEYS[1], now_ms())
