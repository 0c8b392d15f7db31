-- Stores a handshake. KEYS: handshake. ARGV: value, ttl ms.
return redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
