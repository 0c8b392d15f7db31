-- A successful login from the address: its starts are given back.
-- KEYS: address starts.
return redis.call('DEL', KEYS[1])
