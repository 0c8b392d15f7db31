-- Records a Haystack exchange's client-first step (the state client-final
-- needs), once per handshake token. KEYS: handshake. ARGV: value, ttl ms
-- (what is left of the token's life). Returns 1, or 0 when the token's
-- step was already taken (a replay).
if redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]), 'NX') then return 1 end
return 0
