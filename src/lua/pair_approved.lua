-- Lists a platform's approved users.
-- KEYS: approved hash. Returns {user_id, JSON {user_name, approved_ms}, ...}.
return redis.call('HGETALL', KEYS[1])
