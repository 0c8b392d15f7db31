-- For pairguardctl locks: a guard key's lock end (ms, 0: none) and the
-- failures it holds, read with the guard scripts' own parser so that the CLI
-- never depends on the value format. KEYS: one guard key. Returns {lock end,
-- failures}; {0, 0} for an absent key.

-- @include base36_common.lua
-- @include guard_common.lua

local now = now_ms()
local v = redis.call('GET', KEYS[1])
if not v then return {0, 0} end
-- a window of a year: every failure the key still holds counts
local l, _, _, _, fail = parse(v, 365 * 86400000, now, KEYS[1])
return {l, #fail}
