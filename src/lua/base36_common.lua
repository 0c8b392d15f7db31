-- Included first by both guard scripts: times in base 36 from 2020-01-01,
-- needed by their fast paths before anything else is defined.
local EPOCH = 1577836800000
local char, floor = string.char, math.floor
local digits = {}
local function b36(x)
  x = floor(x)
  if x <= 0 then return '0' end
  local i = 13
  while x > 0 do
    local d = x % 36
    i = i - 1
    digits[i] = d < 10 and 48 + d or 87 + d
    x = (x - d) / 36
  end
  return char(unpack(digits, i, 12))
end
