-- One request's reservation (see reserve_op in guard_ops_common.lua).
-- ARGV[1] = reservation lifetime (ms); then five limits per key.

-- @include base36_common.lua
-- @include guard_common.lua
-- @include events_common.lua
-- @include guard_ops_common.lua

return reserve_op(0, #KEYS, numbers(2), 1, call_state(now_ms(), ARGV[1]))
