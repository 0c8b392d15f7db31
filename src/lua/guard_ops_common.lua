-- The guard's two operations as functions, shared by guard_reserve.lua,
-- guard_settle.lua and guard_batch.lua (included after base36_common.lua and
-- guard_common.lua). An operation reads its keys from KEYS[kb + 1 .. kb + n]
-- and its five limits per key, as numbers, from lim[lb + (i - 1) * 5 .. + 4]:
-- max_failures, window, lockout, backoff*1000, max_lockout (the caller
-- converts them once: a batch sends each distinct set of limits once).
-- `cs` is the caller's call_state: one Redis TIME for a whole batch.

-- ARGV[a ..] as numbers
local function numbers(a)
  local t = {}
  for j = a, #ARGV do t[#t + 1] = tonumber(ARGV[j]) or error('pairguard: a limit is not a number') end
  return t
end

-- The value of a key holding nothing but one reservation, as the fast paths
-- write it: the time (`text`, decimal) in the reservations' field.
local function reservation_only(text)
  return '|||' .. text .. '|'
end

-- One call's clock and what the fast paths send Redis, as strings made once
-- per call (a batch's operations share them; a Lua number passed to
-- redis.call or '..' is formatted each time). `now`: the call's one Redis
-- TIME; `hold_text`: the reservation lifetime (ms) as sent.
local function call_state(now, hold_text)
  local hold = tonumber(hold_text)
  local fresh = now + hold
  return {now = now, hold = hold, hold_text = hold_text, fresh = fresh,
          fresh_value = reservation_only(string.format('%d', fresh)), sets = {}}
end

-- The settle's fast-path strings for the limit set at lim[lb]: the compact
-- value (nil when the window has none) and its absolute expiry.
local function set_state(cs, lim, lb)
  local s = cs.sets[lb]
  if not s then
    local window = lim[lb + 1]
    s = {compact_window(window) or false, string.format('%d', cs.now + window)}
    cs.sets[lb] = s
  end
  return s
end

-- Decides one request against all its policy keys at once, and reserves an
-- attempt on each if every key allows it.
-- Returns {status, policy, retry_ms, reservation, ended...}: status 0 allowed,
-- 1 locked, 2 over budget with attempts in flight; `ended` lists the policies
-- whose lock ran out (and is cleared now).
-- `fixed`: the reservation chosen by the caller (Redis Cluster: the parts
-- of one request in different slots share one value), else now + hold.
local function reserve_op(kb, n, lim, lb, cs, fixed)
  local now, hold = cs.now, cs.hold
  -- a caller's clock far from Redis' would make the reservation expire too
  -- soon (admitting more than the budget): kept within [hold/2, 2 hold]; a
  -- value moved here no longer matches its settle and holds its attempt
  -- until it expires (counting more, never less)
  if fixed and (fixed < now + hold / 2 or fixed > now + 2 * hold) then fixed = now + hold end
  local reservation = fixed or cs.fresh
  -- (an operation's keys are distinct: one per policy, each an HMAC of the
  -- policy's name; a key named twice would find its own reservation)
  -- the common case: keys with no history at all, each written only if it
  -- is still absent (one command a key), as store() would write a key
  -- holding nothing but this reservation: until the reservation's own end.
  -- Such a value keeps the time in decimal (13 digits; it lives one request
  -- long), which parse() tells from base 36. A key that exists ends it: the
  -- `written` keys before it held nothing (they are not read again), and
  -- the request is decided on every key below; refused, they are taken back
  -- (the script runs alone, so nothing saw them).
  local value, px, at = cs.fresh_value, 'PX', cs.hold_text
  if fixed then
    at = string.format('%d', fixed)
    value, px = reservation_only(at), 'PXAT'
  end
  local written = 0
  for i = 1, n do
    if not redis.call('SET', KEYS[kb + i], value, 'NX', px, at) then break end
    written = i
  end
  if n > 0 and written == n then return {0, 0, 0, reservation} end

  local status, policy, retry = 0, 0, 0
  local st, ended = {}, {}
  for i = 1, n do
    local b = lb + (i - 1) * 5
    local max, window = lim[b], lim[b + 1]
    local v = false
    if i > written then v = redis.call('GET', KEYS[kb + i]) end
    local l, c, t, res, fail = 0, 0, 0, {}, {}
    if v then l, c, t, res, fail = parse(v, window, now, KEYS[kb + i]) end
    if l > now then
      -- Redis TIME is wall-clock time and may step back: what is left of a
      -- lock is never more than its length
      local left = l - now
      if t > 0 and left > l - t then left = l - t end
      if status ~= 1 or left > retry then
        status, policy, retry = 1, i, left
      end
    else
      if l ~= 0 then
        l = 0
        ended[#ended + 1] = i
        -- a lock that ran out is seen (and cleared) by the next request
        pg_key_event('lock_ended', KEYS[kb + i])
      end
      if status == 0 and #fail + #res >= max then
        status, policy, retry = 2, i, 1000
      end
    end
    st[i] = {l, c, t, res, fail, v}
  end

  if status ~= 0 then reservation = 0 end
  if written > 0 and reservation == 0 then redis.call('DEL', unpack(KEYS, kb + 1, kb + written)) end
  for i = written + 1, n do
    local s = st[i]
    local b = lb + (i - 1) * 5
    if reservation ~= 0 then
      s[4][#s[4] + 1] = reservation
    end
    if reservation ~= 0 or s[6] then
      store(KEYS[kb + i], s[1], s[2], s[3], s[4], s[5], lim[b + 1], lim[b + 3], now)
    end
  end

  local out = {status, policy, retry, reservation}
  for j = 1, #ended do out[#out + 1] = ended[j] end
  return out
end

-- Records the upstream's answer for a reserved attempt. `outcome` is 'f'
-- failure, 's' success, 'n' neutral; `rtext` the reservation in decimal,
-- exactly as the reserve returned it ('0': none, as in dry run).
-- Returns {policy, lock_ms, ...} for every key this failure locked.
local function settle_op(kb, n, outcome, rtext, lim, lb, cs)
  local now = cs.now
  -- this request's reservation as the reserve's fast path wrote it
  local mine = rtext ~= '0' and reservation_only(rtext)
  local reservation = tonumber(rtext)
  local out = {}
  for i = 1, n do
    local b = lb + (i - 1) * 5
    local key = KEYS[kb + i]
    local max, window = lim[b], lim[b + 1]
    local v, vkey, done = nil, key, false
    -- the common cases: a key holding nothing but this request's own
    -- reservation. A success or neutral answer leaves nothing to remember;
    -- a failure that cannot lock yet becomes the key's only failure. Each
    -- costs Redis one command that reads the key and writes what that case
    -- leaves: GETDEL, or for such a failure the compact form's SET ... XX
    -- GET (XX: an absent key stays absent). Any other value read is worked
    -- on below and written back by store(), which replaces the key whole:
    -- nothing else runs in between. (Read that way, the key's expiry is gone
    -- or replaced: `vkey` nil.)
    if mine then
      local strings = outcome == 'f' and max > 1 and set_state(cs, lim, b)
      if strings and strings[1] then
        v = redis.call('SET', key, strings[1], 'PXAT', strings[2], 'XX', 'GET')
        done = v == mine
      else
        v = redis.call('GETDEL', key)
        if v == mine then
          if outcome ~= 'f' then
            done = true
          elseif max > 1 then
            store(key, 0, 0, 0, {}, {now}, window, 0, now)
            done = true
          end
        end
      end
      vkey = nil
    else
      v = redis.call('GET', key)
    end

    if not done and (v or outcome == 'f') then
      local locked
      local l, c, t, res, fail = 0, 0, 0, {}, {}
      if v then l, c, t, res, fail = parse(v, window, now, vkey) end

      if reservation ~= 0 then
        for j = 1, #res do
          if res[j] == reservation then
            table.remove(res, j)
            break
          end
        end
      end

      if outcome == 'f' and l <= now then
        -- the failure counts even when the attempts in flight fill the
        -- budget (a dry run's, or one whose reservation ran out before its
        -- answer): nothing else is dropped for it, neither an earlier
        -- failure nor another request's reservation. It stays bounded: the
        -- failures lock (and are cleared) at max, and only admitted
        -- requests hold reservations.
        fail[#fail + 1] = now
        if #fail >= max then
          local lockout, backoff, max_lockout = lim[b + 2], lim[b + 3], lim[b + 4]
          local earlier = 0
          if t > 0 and now - t < 86400000 then earlier = c end
          local cap = max_lockout > 0 and max_lockout or 1e15
          local d = lockout
          for _ = 1, earlier do
            if d >= cap then break end
            d = d * backoff / 1000
          end
          d = math.floor(math.min(d, cap))
          l, c, t, fail = now + d, earlier + 1, now, {}
          out[#out + 1] = i
          out[#out + 1] = d
          locked = d
        end
      elseif outcome == 's' then
        fail = {}
      end
      store(key, l, c, t, res, fail, window, lim[b + 3], now)
      -- only when a key locks (never on the hot path), after the lock is
      -- stored: an event
      if locked then pg_key_event('locked', key, locked) end
    end
  end
  return out
end
