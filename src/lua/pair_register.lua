-- Records a platform name in the set of platforms, so that listings without
-- a platform find it. Its own command because the set is in another slot
-- than the platform's keys. KEYS: platforms set. ARGV: platform.
return redis.call('SADD', KEYS[1], ARGV[1])
