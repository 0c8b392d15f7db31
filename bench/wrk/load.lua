-- wrk script for scripts/bench.sh: one wrk, many clients.
--
--   wrk ... -s bench/wrk/load.lua URL -- PATH MODE ARG [STOP_AFTER]
--
--   MODE distinct  every request carries its own X-Forwarded-For address,
--                  counting up from the 32-bit integer ARG (each thread
--                  gets its own block of 2^22 addresses)
--   MODE fixed     every request carries X-Forwarded-For: ARG
--   MODE devices   ARG is a file of lines "ADDRESS TOKEN" (benchtool.py
--                  mint-devices): each request carries the next line's
--                  address in X-Forwarded-For and its token as the cookie
--                  pg_dev (a trusted device of that address), cycling
--   STOP_AFTER     stop each thread after that many responses (0: run for -d)
--
-- Counts the response statuses and prints, in done(), one line
--   BENCHJSON {...}
-- with requests, duration, errors, latency percentiles (microseconds), the
-- share of requests slower than 50 ms and the status counts, so that the
-- caller does not have to parse wrk's text.

local threads = {}

function setup(thread)
    thread:set("tid", #threads)
    table.insert(threads, thread)
end

local path, mode, fixed_addr, next_addr = "/", "distinct", nil, 0
local devices, next_device = nil, 1
-- scenario f: every request carries this Authorization header when set
local authorization = os.getenv("PG_BENCH_AUTHORIZATION")
local stop_after, answered = 0, 0
counts = {}

local function ip(n)
    n = n % 4294967296
    return string.format("%d.%d.%d.%d", math.floor(n / 16777216) % 256,
        math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
end

function init(args)
    path = args[1] or "/"
    mode = args[2] or "distinct"
    if mode == "fixed" then
        fixed_addr = args[3] or "192.0.2.1"
    elseif mode == "devices" then
        devices = {}
        for line in io.lines(args[3]) do
            local a, t = line:match("^(%S+) (%S+)$")
            if a then devices[#devices + 1] = { a, "pg_dev=" .. t } end
        end
        if #devices == 0 then error("load.lua: no devices in " .. tostring(args[3])) end
    elseif mode == "distinct" then
        next_addr = (tonumber(args[3]) or 167772160) + (tonumber(tid) or 0) * 4194304
    else
        error("load.lua: unknown mode " .. tostring(mode))
    end
    stop_after = tonumber(args[4]) or 0
end

function request()
    if devices then
        local d = devices[next_device]
        next_device = next_device % #devices + 1
        return wrk.format("GET", path, { ["X-Forwarded-For"] = d[1], ["Cookie"] = d[2] })
    end
    local addr = fixed_addr
    if not addr then
        addr = ip(next_addr)
        next_addr = next_addr + 1
    end
    local headers = { ["X-Forwarded-For"] = addr }
    if authorization and authorization ~= "" then
        headers["Authorization"] = authorization
    end
    return wrk.format("GET", path, headers)
end

function response(status, headers, body)
    counts[status] = (counts[status] or 0) + 1
    if stop_after > 0 then
        answered = answered + 1
        if answered >= stop_after then
            wrk.thread:stop()
        end
    end
end

function done(summary, latency, requests)
    local st = {}
    for _, t in ipairs(threads) do
        local c = t:get("counts")
        if type(c) == "table" then
            for k, v in pairs(c) do
                st[k] = (st[k] or 0) + v
            end
        end
    end
    local parts = {}
    for k, v in pairs(st) do
        parts[#parts + 1] = string.format('"%s":%d', tostring(k), v)
    end
    -- Share of requests slower than 50 ms (binary search on the percentiles).
    local slow_pct = 0
    if latency.max >= 50000 then
        local lo, hi = 0, 100
        for _ = 1, 30 do
            local mid = (lo + hi) / 2
            if latency:percentile(mid) >= 50000 then hi = mid else lo = mid end
        end
        slow_pct = 100 - hi
    end
    local e = summary.errors
    io.write(string.format(
        'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
        '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
        '"lat_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f},' ..
        '"over_50ms_pct":%.4f,' ..
        '"status":{%s}}\n',
        summary.requests, summary.duration, summary.bytes,
        e.connect, e.read, e.write, e.status, e.timeout,
        latency:percentile(50), latency:percentile(90), latency:percentile(99),
        latency:percentile(99.9), latency.max, latency.mean, slow_pct,
        table.concat(parts, ",")))
end
