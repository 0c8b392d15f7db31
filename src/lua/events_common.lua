-- Events (SPEC section 5): every event is published on the events channel
-- (PREFIX .. "events": the nodes' caches listen) and appended, with the same
-- payload in field `e`, to a capped stream PREFIX .. "{events}-stream" (the
-- most recent ~10 000), so a reader that was not subscribed at that moment
-- (pairguardctl events) loses nothing. Payloads are "KIND|..." and carry only
-- HMAC tags, lock lengths and counts: never a code, password, token or key.
--
-- Redis Cluster: the stream has its own hash tag ({events}), a slot other than
-- the calling script's keys, and it is not passed in KEYS (it is derived from
-- the channel name). That is fine on one Redis (today) and with Sentinel;
-- under Redis Cluster the XADD must move out of the script (issue 10).
--
-- An event never stops the script that emits it (pcall): the state it
-- reports (a lock) is written whatever happens to the event. `cache_only`:
-- for the nodes' caches alone (a session refresh), not kept in the stream.
local function pg_emit(channel, payload, cache_only)
  redis.pcall('PUBLISH', channel, payload)
  if not cache_only then
    redis.pcall('XADD', string.sub(channel, 1, -7) .. '{events}-stream', 'MAXLEN', '~', 10000, '*', 'e', payload)
  end
end

-- The prefix and the hash-tag text of a store key "PREFIX{TAG}...", or nil.
local function pg_key_parts(key)
  return string.match(key, '^(.-){([^}]*)}')
end

-- An event about a store key: KIND|SCOPE|TAG[|EXTRA], on the key's prefix's
-- channel. `scope` names the hash tag's leading "S:" (p, a, aa) or, for a
-- guard key (no "S:"), g.
local function pg_key_event(kind, key, extra)
  local prefix, tag = pg_key_parts(key)
  if not prefix then return end
  local scope, rest = string.match(tag, '^(%a+):(.*)$')
  if not scope then scope, rest = 'g', tag end
  local payload = kind .. '|' .. scope .. '|' .. rest
  if extra ~= nil then payload = payload .. '|' .. extra end
  pg_emit(prefix .. 'events', payload)
end
