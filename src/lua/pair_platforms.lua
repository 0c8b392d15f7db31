-- The platform names ever used. KEYS: platforms set.
return redis.call('SMEMBERS', KEYS[1])
