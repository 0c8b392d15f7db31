-- Included first by both guard scripts: base 36 from 2020-01-01, needed by
-- their fast paths before anything else is defined.
local EPOCH = 1577836800000
local B36 = '0123456789abcdefghijklmnopqrstuvwxyz'
local function b36(x)
  x = math.floor(x)
  if x <= 0 then return '0' end
  local s = ''
  while x > 0 do
    local d = x % 36
    s = string.sub(B36, d + 1, d + 1) .. s
    x = (x - d) / 36
  end
  return s
end
