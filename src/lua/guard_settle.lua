-- One request's settle (see settle_op in guard_ops_common.lua).
-- ARGV[1] = outcome 'f' / 's' / 'n'; ARGV[2] = the reservation (0: none);
-- then five limits per key.

-- @include base36_common.lua
-- @include guard_common.lua
-- @include events_common.lua
-- @include guard_ops_common.lua

return settle_op(0, #KEYS, ARGV[1], ARGV[2], numbers(3), 1, call_state(now_ms(), '0'))
