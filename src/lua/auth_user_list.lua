-- User names. KEYS: users set.
return redis.call('SMEMBERS', KEYS[1])
