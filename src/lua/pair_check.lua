-- Is a user approved on a platform?
-- KEYS: approved hash. ARGV: user id (normalised).
-- Returns the entry JSON {user_name, approved_ms}, or nil.
return redis.call('HGET', KEYS[1], ARGV[1])
