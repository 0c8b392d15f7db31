-- Keeps the users set in step. KEYS: users set. ARGV: name, '1' add / '0' remove.
if ARGV[2] == '1' then return redis.call('SADD', KEYS[1], ARGV[1]) end
return redis.call('SREM', KEYS[1], ARGV[1])
