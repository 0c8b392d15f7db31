-- The OpenResty-style peer measured by scripts/bench.sh: what a careful
-- operator writes with ngx_http_lua and lua-resty-redis (Debian:
-- lua-nginx-redis, `require "nginx.redis"`) to get pairguard's guard policy
--     key=$remote_addr max_failures=5 window=15m lockout=15m
-- on a location:
--
--   access_by_lua_block { require("peer_guard").access() }
--   log_by_lua_block    { require("peer_guard").log() }
--
-- One Redis key per client address, "lua:ADDR", holding the failure count:
--   access  GET the key (pooled connection, set_keepalive); count >= max -> 429
--   log     cosockets are unavailable in log_by_lua, so a zero-delay timer
--           records the outcome: a failing status runs one EVALSHA that
--           counts it (window starts at the first failure) and, at
--           max_failures, turns the key into a lock for `lockout`; a success
--           after earlier failures DELetes the key (reset).
-- Redis unreachable: fail open (log and let the request through).
--
-- Differences from pairguard, on purpose "ordinary": the window is fixed
-- (starts at the first failure), not sliding; nothing is reserved before
-- forwarding, so concurrent attempts can all pass the GET before any of them
-- is counted; keys are the raw addresses, not HMACs; no Retry-After (that
-- would cost a second command per refusal).

local redis = require "nginx.redis"

local M = {}

local cfg = {
    host = "127.0.0.1",
    port = 6379,
    timeout = 100,          -- ms, connect/send/read
    pool_size = 64,
    pool_idle = 60000,      -- ms
    prefix = "lua:",
    max_failures = 5,
    window_ms = 900000,     -- 15m
    lockout_ms = 900000,    -- 15m
}

local FAILURE = { [401] = true, [403] = true, [404] = true }

-- KEYS[1] counter; ARGV: max_failures window_ms lockout_ms
local RECORD = [[
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if n == tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return n
]]
local RECORD_SHA = (ngx.sha1_bin(RECORD):gsub(".", function(c)
    return string.format("%02x", c:byte())
end))

local DENY_BODY = '{"error":"too_many_attempts"}\n'

function M.configure(t)
    for k, v in pairs(t) do
        cfg[k] = v
    end
end

local function connect()
    local red = redis:new()
    red:set_timeout(cfg.timeout)
    local ok, err = red:connect(cfg.host, cfg.port)
    if not ok then
        return nil, err
    end
    return red
end

function M.access()
    local key = cfg.prefix .. ngx.var.remote_addr
    local ctx = ngx.ctx
    ctx.pg_key = key
    local red, err = connect()
    if not red then
        ngx.log(ngx.ERR, "peer_guard: redis connect: ", err)
        return
    end
    local n
    n, err = red:get(key)
    if not n then
        ngx.log(ngx.ERR, "peer_guard: redis GET: ", err)
        red:close()
        return
    end
    red:set_keepalive(cfg.pool_idle, cfg.pool_size)
    if n == ngx.null then
        return
    end
    n = tonumber(n) or 0
    ctx.pg_count = n
    if n >= cfg.max_failures then
        ctx.pg_denied = true
        ngx.status = 429
        ngx.header["Content-Type"] = "application/json"
        ngx.header["Content-Length"] = #DENY_BODY
        ngx.print(DENY_BODY)
        -- the response is sent: finish the request (ngx.exit(429) here
        -- would log an error per request)
        return ngx.exit(ngx.HTTP_OK)
    end
end

local function record(premature, key, failed)
    if premature then
        return
    end
    local red, err = connect()
    if not red then
        ngx.log(ngx.ERR, "peer_guard: redis connect: ", err)
        return
    end
    local res
    if failed then
        res, err = red:evalsha(RECORD_SHA, 1, key, cfg.max_failures, cfg.window_ms, cfg.lockout_ms)
        if not res and err and err:find("NOSCRIPT", 1, true) then
            res, err = red:eval(RECORD, 1, key, cfg.max_failures, cfg.window_ms, cfg.lockout_ms)
        end
    else
        res, err = red:del(key)
    end
    if not res then
        ngx.log(ngx.ERR, "peer_guard: redis record: ", err)
        red:close()
        return
    end
    red:set_keepalive(cfg.pool_idle, cfg.pool_size)
end

function M.log()
    local ctx = ngx.ctx
    local key = ctx.pg_key
    if not key or ctx.pg_denied then
        return
    end
    local status = ngx.status
    local failed
    if FAILURE[status] then
        failed = true
    elseif status >= 200 and status < 400 and (ctx.pg_count or 0) > 0 then
        failed = false
    else
        return
    end
    local ok, err = ngx.timer.at(0, record, key, failed)
    if not ok then
        ngx.log(ngx.ERR, "peer_guard: timer: ", err)
    end
end

return M
