#!/usr/bin/env python3
"""Turns the raw measurements of scripts/bench.sh into the results.

  report.py --raw RAW.jsonl --odd NOTES.txt --out PREFIX --gnuplot SCRIPT key=value...

writes PREFIX.json (meta, summary, raw records), PREFIX.md (tables) and a
gnuplot script that draws PREFIX.png (ratios to plain proxy per scenario).
"""

import argparse
import json
import os
import statistics
import sys

CONTENDERS = ["plain", "limitreq", "lua", "haproxy", "pairguard"]
LABEL = {
    "plain": "plain proxy_pass",
    "limitreq": "limit_req",
    "lua": "lua + Redis",
    "haproxy": "HAProxy stick table",
    "pairguard": "pairguard",
}
SCENARIOS = {
    "a": "allowed traffic (distinct addresses, upstream 200)",
    "b": "one locked client hammering",
    "c": "distributed guessing (distinct addresses, upstream 404)",
    "e": "paired-only route (`pairguard_require_paired`, one approved client; plain proxy_pass and pairguard only)",
    "f": "bearer-protected route (`pairguard_auth_require`, one session token; plain proxy_pass and pairguard only)",
}
GUARDED = {"lua", "haproxy", "pairguard", "pg_stack2", "pg_stack3", "lua_w2", "pairguard_w2", "pg_device",
           "pg_tls", "pg_cluster"}
REDIS_USERS = {"lua", "pairguard", "pg_stack2", "pg_stack3", "lua_w2", "pairguard_w2", "pg_device",
               "pg_tls", "pg_cluster"}
PAIRGUARDS = {"pairguard", "pg_stack2", "pg_stack3", "pairguard_w2", "pg_device", "pg_tls", "pg_cluster"}
POLICIES = {"pairguard": 1, "pg_stack2": 2, "pg_stack3": 3, "pairguard_w2": 1, "pg_device": 1,
            "pg_tls": 1, "pg_cluster": 1}
DEVICES = ["plain", "pairguard", "pg_device"]
# Scenario r: scenario a against each Redis deployment.
DEPLOYS = ["plain", "pairguard", "pg_tls", "pg_cluster"]
STACKED = ["plain", "pairguard", "pg_stack2", "pg_stack3"]
SCALING = ["plain", "lua", "pairguard", "plain_w2", "lua_w2", "pairguard_w2"]
LABEL.update({
    "pg_stack2": "pairguard, 2 policies",
    "pg_stack3": "pairguard, 3 policies",
    "plain_w2": "plain proxy_pass, 2 workers",
    "lua_w2": "lua + Redis, 2 workers",
    "pairguard_w2": "pairguard, 2 workers",
    "pg_device": "pairguard, trusted device cookie",
    "pg_tls": "pairguard, TLS Redis",
    "pg_cluster": "pairguard, 3-master Redis Cluster",
})
SCRIPT_CMDS = ("evalsha", "eval")
CPU_PARTS = ("edge", "redis", "upstream", "wrk")
# Commands the benchmark itself sends, not the contenders.
BENCH_CMDS = {"config|resetstat", "config|get", "config", "info", "flushall", "dbsize",
              "monitor", "command", "command|docs"}
MAX_FAILURES = 5


def expected(scenario, contender):
    if scenario in ("a", "e", "f", "s", "w", "v", "r"):
        return "200"
    if scenario == "b":
        return "429" if contender in GUARDED else "404"
    return "404"


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def ms(us):
    return "—" if us is None else "%.2f" % (us / 1000.0)


def num(x, fmt="%.0f"):
    return "—" if x is None else fmt % x


def ratio_cell(d):
    if not d or d.get("ratio") is None:
        return "—"
    rs = [x for x in d["ratio_rounds"] if x is not None]
    if len(rs) < 2 or min(rs) == max(rs):
        return "%.2f" % d["ratio"]
    return "%.2f (%.2f–%.2f)" % (d["ratio"], min(rs), max(rs))


def status_mix(counts):
    total = sum(counts.values())
    if not total:
        return "—"
    parts = sorted(counts.items(), key=lambda kv: -kv[1])
    return ", ".join("%s %.1f%%" % (k, 100.0 * v / total) if v != total else "%s 100%%" % k
                     for k, v in parts[:3])


def add_counts(into, more):
    for k, v in more.items():
        into[k] = into.get(k, 0) + v


def redis_calls(rec):
    calls = rec.get("redis_calls") or {}
    return sum(v for k, v in calls.items() if k not in BENCH_CMDS)


def script_calls(rec):
    calls = rec.get("redis_calls") or {}
    return sum(calls.get(k, 0) for k in SCRIPT_CMDS)


def cpu_us(rec):
    """CPU µs per request of each part (edge, redis, upstream, wrk)."""
    c = {k: v for k, v in (rec.get("cpu_s") or {}).items() if v is not None}
    if rec.get("wrk_cpu_s") is not None:
        c["wrk"] = rec["wrk_cpu_s"]
    n = rec["wrk"]["requests"]
    if not c or not n:
        return None
    out = {k: 1e6 * c[k] / n for k in CPU_PARTS if k in c}
    # a total only when every part was measured: a sum with a part missing
    # would read as a whole
    out["total"] = sum(out.values()) if len(out) == len(CPU_PARTS) else None
    return out


PART_LABEL = {"edge": "edge", "redis": "Redis", "upstream": "upstream", "wrk": "wrk"}


def cpu_bound(c, ncpu):
    """The most req/s one measurement's CPU costs allow, and what sets it: the
    cores shared by all parts, or one part on one core (each part has one
    event-loop thread: one edge worker or HAProxy thread, one upstream worker,
    Redis, wrk -t1). (None, None) unless all four parts were measured."""
    if not c or any(c.get(k) is None for k in CPU_PARTS) or not c.get("total"):
        return None, None
    best, by_ = ncpu * 1e6 / c["total"], "%s cores" % ncpu
    for k in CPU_PARTS:
        if c[k] > 0 and 1e6 / c[k] < best:
            best, by_ = 1e6 / c[k], PART_LABEL[k]
    return best, by_


def bound_summary(rows, cpus, ncpu):
    """Per round: the bound, what sets it and the share of it reached; the
    median bound and share, and what set it (with how many of the rounds
    when they differ; a round without all its CPU figures counts as "—")."""
    per = []
    for r, c in zip(rows, cpus):
        b, by_ = cpu_bound(c, ncpu)
        per.append((b, by_ or "—", r["rps"] / b if b else None))
    if not any(p[0] for p in per):
        return {"bound": None, "bound_by": None, "bound_by_all": None, "bound_share": None,
                "bound_rounds": []}
    labels = [p[1] for p in per]
    common = max(sorted(set(labels)), key=labels.count)
    same = labels.count(common) == len(labels)
    by_ = common if same else ", ".join(
        "%s %d/%d" % (l, labels.count(l), len(labels))
        for l in sorted(set(labels), key=lambda l: -labels.count(l)))
    return {"bound": med([p[0] for p in per]), "bound_by": by_, "bound_by_all": common if same else None,
            "bound_share": med([p[2] for p in per]),
            "bound_rounds": [{"bound": p[0], "by": p[1], "share": p[2]} for p in per]}


def ops_per_batch(rec, contender):
    """Guard operations per script call: one reserve per guarded request and
    one settle per request let through (not refused with 429)."""
    if contender not in PAIRGUARDS:
        return None
    sc = script_calls(rec)
    st = rec["wrk"]["status"]
    n = sum(st.values())
    allowed = n - st.get("429", 0)
    return (n + allowed) / sc if sc else None


def base_of(scenario, contender):
    """The contender a ratio is taken against: plain proxy_pass with the same
    number of workers."""
    return "plain_w2" if contender.endswith("_w2") else "plain"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--odd", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--gnuplot", required=True)
    ap.add_argument("meta", nargs="*")
    a = ap.parse_args()

    meta = {}
    for kv in a.meta:
        k, v = kv.split("=", 1)
        meta[k] = int(v) if v.isdigit() else v
    raw = [json.loads(l) for l in open(a.raw) if l.strip()]
    notes = [l.rstrip("\n") for l in open(a.odd) if l.strip()]

    loads = [r for r in raw if r["kind"] == "load"]
    by = {}
    for r in loads:
        by[(r["scenario"], r["contender"], r["load"], r["round"])] = r

    summary = {"load": {}, "monitor": {}, "memory": {}, "burst": {}, "burst2": {},
               "store_down": {}, "instructions": {}}
    for s, c, load in sorted({k[:3] for k in by}):
        if True:
            if True:
                rows = [r for (s2, c2, l2, _), r in sorted(by.items()) if (s2, c2, l2) == (s, c, load)]
                if not rows:
                    continue
                ratios, cmds, scripts, opb, cpus = [], [], [], [], []
                statuses, errors = {}, 0
                for r in rows:
                    base = by.get((s, base_of(s, c), load, r["round"]))
                    ratios.append(r["rps"] / base["rps"] if base else None)
                    n_req = r["wrk"]["requests"]
                    cmds.append(redis_calls(r) / n_req if n_req else None)
                    scripts.append(script_calls(r) / n_req if n_req else None)
                    opb.append(ops_per_batch(r, c))
                    cpus.append(cpu_us(r))
                    add_counts(statuses, r["wrk"]["status"])
                    e = r["wrk"]["errors"]
                    errors += e["connect"] + e["read"] + e["write"] + e["timeout"]
                summary["load"]["%s/%s/%s" % (s, c, load)] = {
                    "rps": med([r["rps"] for r in rows]),
                    "rps_rounds": [r["rps"] for r in rows],
                    "ratio": med(ratios),
                    "ratio_rounds": ratios,
                    "foreign_cpu_rounds": [r.get("foreign_cpu") for r in rows],
                    "p50_us": med([r["wrk"]["lat_us"]["p50"] for r in rows]),
                    "p99_us": med([r["wrk"]["lat_us"]["p99"] for r in rows]),
                    "redis_cmds_per_req": med(cmds),
                    "script_calls_per_req": med(scripts),
                    "ops_per_batch": med(opb),
                    "cpu_us_per_req": ({k: med([x.get(k) for x in cpus if x]) for k in CPU_PARTS + ("total",)}
                                       if any(cpus) else None),
                    "status": statuses,
                    "socket_errors": errors,
                }
                summary["load"]["%s/%s/%s" % (s, c, load)].update(
                    bound_summary(rows, cpus, meta.get("nproc") or 1))
                exp = expected(s, c)
                total = sum(statuses.values())
                if total and statuses.get(exp, 0) < 0.99 * total:
                    notes.append("%s, scenario %s (%s): expected %s, got %s"
                                 % (LABEL.get(c, c), s, load, exp, status_mix(statuses)))
                if errors:
                    notes.append("%s, scenario %s (%s): %d socket errors (connect/read/write/timeout)"
                                 % (LABEL.get(c, c), s, load, errors))

    for r in raw:
        if r["kind"] == "monitor":
            n = r["sample"]["requests"]
            summary["monitor"]["%s/%s" % (r["scenario"], r["contender"])] = {
                "client_per_req": sum(r["sample"]["client"].values()) / n,
                "script_per_req": sum(r["sample"]["script"].values()) / n,
                "client": r["sample"]["client"],
                "script": r["sample"]["script"],
                "status": r["sample"]["status"],
            }
        elif r["kind"] == "memory":
            b, f = json.loads(r["before"]), json.loads(r["after"])
            keys = f["dbsize"] - b["dbsize"]
            delta = {k: f.get(k, 0) - b.get(k, 0)
                     for k in ("used_memory", "mem_clients_normal", "used_memory_scripts",
                               "dataset_bytes", "keyspace_overhead")}
            # Connection buffers (the lua peer keeps a pool of connections)
            # and the script cache are not per-key costs: count the data
            # (MEMORY STATS dataset.bytes) and the keyspace/expiry tables.
            data = delta["dataset_bytes"] + delta["keyspace_overhead"]
            summary["memory"][r["contender"]] = {
                "requests": r["wrk"]["requests"],
                "keys": keys,
                "delta": delta,
                "data_delta": data,
                "bytes_per_key": data / keys if keys > 0 else None,
                "memory_usage_avg": f.get("memory_usage_avg"),
                "memory_usage_sampled": f.get("memory_usage_sampled"),
                "status": r["wrk"]["status"],
            }
            if keys <= 0:
                notes.append("%s: the bytes-per-key step created no Redis keys" % LABEL[r["contender"]])
        elif r["kind"] == "instructions":
            objects = r.get("objects") or {}
            sha = {}
            if isinstance(objects, str):
                full = json.loads(objects)
                objects, sha = full.get("objects", {}), full.get("sha256") or {}
            n = r["wrk"]["requests"]
            if not n:
                notes.append("%s: the instructions step counted no requests" % LABEL.get(r["contender"], r["contender"]))
                continue
            d = summary["instructions"][r["contender"]] = {
                "instructions": r["instructions"], "requests": n,
                "per_req": r["instructions"] / n, "tool": r.get("tool", "perf"),
                "objects_per_req": {k: v / n for k, v in objects.items()},
            }
            # valgrind cannot run the SHA extensions: OpenSSL's SHA-256 takes
            # its AVX2 code under callgrind (about 2 000 instructions a
            # block). An estimate of this CPU's count: each block at its
            # native cost (benchtool.py sha256-native), the rest as callgrind
            # counted it (valgrind also hides AVX-512, so glibc's string
            # functions take other variants under it: not corrected).
            native = json.loads(r["sha_native"]) if r.get("sha_native") else None
            if native and "calls" in sha:
                d["sha256_blocks_per_req"] = sha["calls"] / n
                d["sha256_callgrind_per_block"] = sha["cost"] / sha["calls"] if sha["calls"] else None
                d["sha256_native_per_block"] = native["per_block"]
                d["sha_ni"] = native.get("sha_ni")
                d["per_req_native"] = (r["instructions"] - sha["cost"] + sha["calls"] * native["per_block"]) / n
        elif r["kind"] == "burst2":
            d = summary["burst2"].setdefault(r["contender"], {"reached_rounds": [], "answers_rounds": []})
            d["sent"], d["nodes"] = r["sent"], r["nodes"]
            d["reached_rounds"].append(r["reached"])
            d["answers_rounds"].append(r["answers"])
        elif r["kind"] == "burst":
            d = summary["burst"].setdefault(r["contender"], {"reached_rounds": [], "answers_rounds": []})
            d["sent"] = r["sent"]
            d["reached_rounds"].append(r["reached"])
            d["answers_rounds"].append(r["answers"])
    for c, d in summary["burst2"].items():
        d["reached_min"], d["reached_max"] = min(d["reached_rounds"]), max(d["reached_rounds"])
        if d["reached_min"] != MAX_FAILURES or d["reached_max"] != MAX_FAILURES:
            notes.append("burst over 2 nodes: %s reached the upstream (exactly %d expected)"
                         % (" ".join(map(str, d["reached_rounds"])), MAX_FAILURES))
    for c, d in summary["burst"].items():
        d["reached_max"] = max(d["reached_rounds"])
        d["beyond_threshold_max"] = max(0, d["reached_max"] - MAX_FAILURES)
        if "error" in json.dumps(d["answers_rounds"]):
            notes.append("%s: some burst requests got no answer" % LABEL[c])

    # Other processes on the machine (other test runs, ...) distort a
    # measurement; say how much CPU they took.
    fc = [r["foreign_cpu"] for r in raw if r.get("foreign_cpu") is not None]
    FOREIGN_LIMIT = 0.10
    busy = [r for r in raw if (r.get("foreign_cpu") or 0) > FOREIGN_LIMIT]
    summary["foreign_cpu"] = {
        "median": med(fc), "max": max(fc) if fc else None, "limit": FOREIGN_LIMIT,
        "over_limit": len(busy), "measurements": len(fc),
    }
    if busy:
        worst = sorted(busy, key=lambda r: -r["foreign_cpu"])[:4]
        notes.append("other processes used more than %d%% of the machine's CPU during %d of %d "
                     "measurements (worst: %s); their numbers are less reliable"
                     % (FOREIGN_LIMIT * 100, len(busy), len(fc), ", ".join(
                         "%s %.0f%%" % (
                             "%s/%s/%s round %s" % (r["scenario"], r["contender"], r["load"], r["round"])
                             if r["kind"] == "load" else "store_down %s/%s" % (r["mode"], r["state"]),
                             100 * r["foreign_cpu"]) for r in worst)))

    stored = [r for r in raw if r["kind"] == "stored"]
    for r in stored:
        summary["store_down"]["%s/%s/%s" % (r["mode"], r["state"], r["route"])] = {
            "rps": r["rps"], "p50_us": r["wrk"]["lat_us"]["p50"], "p99_us": r["wrk"]["lat_us"]["p99"],
            "p999_us": r["wrk"]["lat_us"].get("p999"), "max_us": r["wrk"]["lat_us"]["max"],
            "over_50ms_pct": r["wrk"].get("over_50ms_pct"), "status": r["wrk"]["status"],
            "requests": r["wrk"]["requests"], "slow_nginx": r.get("slow_nginx"),
            "socket_errors": sum(r["wrk"]["errors"][k] for k in ("connect", "read", "write", "timeout")),
        }
    d_expect = {"local": "200", "allow": "200", "deny": "503"}
    for key, v in summary["store_down"].items():
        mode, state, route = key.split("/")
        exp = "200" if route == "unguarded" or state == "up" else d_expect[mode]
        total = sum(v["status"].values())
        if total and v["status"].get(exp, 0) < 0.99 * total:
            notes.append("store_down %s, Redis %s, %s route: expected %s, got %s"
                         % (mode, state, route, exp, status_mix(v["status"])))
        if v["socket_errors"]:
            notes.append("store_down %s, Redis %s, %s route: %d socket errors"
                         % (mode, state, route, v["socket_errors"]))

    # --- markdown ---------------------------------------------------------------
    m = meta
    L = []
    L.append("# pairguard benchmark%s" % (" (quick check, not for comparison)" if m.get("quick") else ""))
    L.append("")
    L.append("Machine: %s × %s, Linux %s; nginx %s, Redis %s, HAProxy %s, wrk %s, ngx_lua %s. "
             "Module at commit %s. %s."
             % (m.get("nproc"), m.get("cpu"), m.get("kernel"), m.get("nginx"), m.get("redis"),
                m.get("haproxy"), m.get("wrk"), m.get("lua_module"), m.get("commit"), m.get("date")))
    L.append("")
    L.append("Every contender is its own nginx (HAProxy: `nbthread 1`) with one worker, in front of "
             "the same upstream nginx (one worker, fixed answers) with a keepalive pool; wrk "
             "(one thread) and Redis share the same %s cores. %s rounds, contender order rotated "
             "each round; saturating load: wrk -c%s for %s s; fixed load: wrk -c%s for %s s. "
             "Values are medians over rounds; × plain is the median of the per-round ratios to "
             "plain proxy_pass in the same scenario (in brackets: lowest and highest round). "
             "Run time %s s."
             % (m.get("nproc"), m.get("rounds"), m.get("conns"), m.get("seconds"),
                m.get("lat_conns"), m.get("lat_seconds"), m.get("elapsed")))
    if m.get("load_avg_start"):
        L.append("")
        L.append("Load average (1, 5, 15 min) when the run started: %s; when it ended: %s."
                 % (m.get("load_avg_start"), m.get("load_avg")))
    f = summary["foreign_cpu"]
    if f["median"] is not None:
        L.append("")
        L.append("Other processes on the machine used %.0f%% of its CPU during the median "
                 "measurement, %.0f%% at most (%d of %d kept measurements above %d%%; %s "
                 "measurements were repeated because of them, the quieter attempt kept)."
                 % (100 * f["median"], 100 * f["max"], f["over_limit"], f["measurements"],
                    100 * f["limit"], m.get("retries", 0)))
    L.append("")
    L.append("Contenders (configs in `bench/conf/`):")
    L.append("")
    L.append("- **plain proxy_pass**: the ceiling.")
    L.append("- **limit_req**: `limit_req_zone $binary_remote_addr ... rate=1000000r/s`, "
             "`burst=1000000 nodelay`: per node, never triggers; the cost of a shared-memory "
             "lookup per client.")
    L.append("- **lua + Redis** (`bench/lua/peer_guard.lua`): `access_by_lua` GETs the client's "
             "counter (lua-resty-redis, pooled with `set_keepalive`) and answers 429 at 5; "
             "`log_by_lua` starts a `ngx.timer.at(0)` that runs an EVALSHA (INCR, PEXPIRE window, "
             "PEXPIRE lockout at 5) for 401/403/404, or a DEL for a success after failures. "
             "Fixed window, nothing reserved before forwarding.")
    L.append("- **HAProxy stick table**: `track-sc0 src` after `set-src hdr(x-forwarded-for)`, "
             "`sc-inc-gpc0` on 401/403/404, `deny deny_status 429` at gpc0 >= 5, cleared on a "
             "success; per node, entries expire 15m after the last request.")
    L.append("- **pairguard**: `pairguard_policy ip key=$remote_addr max_failures=5 window=15m "
             "lockout=15m; pairguard ip;`, Redis on loopback.")
    L.append("- **pairguard, TLS Redis** / **pairguard, 3-master Redis Cluster** (scenario r "
             "only): the same config, its Redis a TLS-only redis-server (`tls "
             "tls_trusted_certificate=CA`) or a Redis Cluster of three masters (`cluster=...`).")
    L.append("")
    L.append("## Throughput and latency")
    L.append("")
    L.append("Latencies are wrk's (with wrk's coordinated-omission correction). "
             "Redis cmds/req: all commands Redis executed (INFO commandstats, including the ones "
             "run inside scripts) per request at saturation; *sent* is what the contender sent "
             "(MONITOR over %s sequential requests)." % m.get("sample"))
    L.append("")
    L.append("Scenarios s (stacked policies), v (trusted devices), r (Redis deployments: TLS, "
             "Redis Cluster) and w (workers) are in their own tables below.")
    L.append("")
    L.append("| scenario | contender | req/s | × plain | p50 ms | p99 ms | req/s @c%s | × plain @c%s "
             "| p50 ms @c%s | p99 ms @c%s | Redis cmds/req (sent) | answers |"
             % ((m.get("lat_conns"),) * 4))
    L.append("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
    for s, sname in SCENARIOS.items():
        for c in CONTENDERS:
            sat = summary["load"].get("%s/%s/sat" % (s, c))
            c4 = summary["load"].get("%s/%s/c4" % (s, c))
            if not sat:
                continue
            c4 = c4 or {}
            mon = summary["monitor"].get("%s/%s" % (s, c))
            if c in REDIS_USERS:
                x = sat["redis_cmds_per_req"]
                cmds = "—" if x is None else "%.2f" % x
                if mon:
                    cmds += " (%.2f)" % mon["client_per_req"]
            else:
                cmds = "—"
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                s, LABEL[c], num(sat["rps"]), ratio_cell(sat), ms(sat["p50_us"]),
                ms(sat["p99_us"]), num(c4.get("rps")), ratio_cell(c4),
                ms(c4.get("p50_us")), ms(c4.get("p99_us")), cmds, status_mix(sat["status"])))
    L.append("")
    L.append("Scenarios: " + "; ".join("**%s** %s" % kv for kv in SCENARIOS.items()) +
             ". In **b** the client is locked first (5 failures); plain proxy_pass and limit_req "
             "have no lock, so they keep forwarding the 404s.")
    L.append("")

    def us(d, k):
        c = d.get("cpu_us_per_req") if d else None
        return "—" if not c or c.get(k) is None else "%.1f" % c[k]

    def f2(x):
        return "—" if x is None else "%.2f" % x

    L.append("## Where the time goes (saturating load, c%s)" % m.get("conns"))
    L.append("")
    L.append("Per request: Redis commands executed (INFO commandstats, inside scripts included), "
             "script calls (EVALSHA + EVAL), guard operations per script call (pairguard: one reserve "
             "per guarded request plus one settle per request let through, divided by the script "
             "calls: the mean batch), and CPU µs (utime + stime from `/proc/PID/stat` over the "
             "measurement, divided by the requests) of the contender's own processes (edge: nginx "
             "master and workers, or HAProxy), Redis, the upstream nginx, and wrk (its CPU includes "
             "its start and exit). *bound*: the most req/s these CPU costs allow, computed per round "
             "(median shown): the %s cores shared (%s × 10⁶ µs / total), and each of the four parts "
             "on one core at most (10⁶ µs / its µs: each has one event-loop thread: one edge "
             "worker or HAProxy thread, one upstream worker, Redis, wrk -t1); *bound by*: the "
             "lower of those (n/N: in n of the N rounds, when the rounds differ). The gap to req/s is idle "
             "time, scheduling and the other processes on the machine. A contender bound by wrk "
             "answers as fast as the load generator asks: its edge's CPU is not the limit (what "
             "it answers still counts: wrk hands every response to its Lua `response` hook)."
             % (m.get("nproc"), m.get("nproc")))
    L.append("")
    L.append("| scenario | contender | req/s | Redis cmds/req | script calls/req | ops/batch "
             "| edge µs | Redis µs | upstream µs | wrk µs | total µs | bound req/s | bound by |")
    L.append("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
    for s_ in ("a", "b", "c"):
        for c in CONTENDERS:
            d = summary["load"].get("%s/%s/sat" % (s_, c))
            if not d:
                continue
            bound, by_ = d.get("bound"), d.get("bound_by")
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                s_, LABEL[c], num(d["rps"]),
                f2(d["redis_cmds_per_req"]) if c in REDIS_USERS else "—",
                f2(d["script_calls_per_req"]) if c in REDIS_USERS else "—",
                "%.1f" % d["ops_per_batch"] if d.get("ops_per_batch") else "—",
                us(d, "edge"), us(d, "redis"), us(d, "upstream"), us(d, "wrk"), us(d, "total"),
                num(bound), by_ or "—"))
    L.append("")

    L.append("## Stacked policies (scenario a, c%s)" % m.get("conns"))
    L.append("")
    L.append("One location with 1, 2 or 3 `pairguard` lines (policies `ip`, `ip2`, `ip3`, each "
             "counting the client address under its own Redis key); every request reserves and "
             "settles all of them in the same batch operation. Measured in every round next to "
             "plain proxy_pass.")
    L.append("")
    L.append("| policies | req/s | × plain | Redis cmds/req | script calls/req | ops/batch | edge µs "
             "| Redis µs | upstream µs | wrk µs | total µs |")
    L.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for c in STACKED:
        d = summary["load"].get("s/%s/sat" % c)
        if not d:
            continue
        L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            "0 (plain proxy_pass)" if c == "plain" else POLICIES[c], num(d["rps"]), ratio_cell(d),
            f2(d["redis_cmds_per_req"]) if c != "plain" else "—",
            f2(d["script_calls_per_req"]) if c != "plain" else "—",
            "%.1f" % d["ops_per_batch"] if d.get("ops_per_batch") else "—",
            us(d, "edge"), us(d, "redis"), us(d, "upstream"), us(d, "wrk"), us(d, "total")))
    L.append("")

    L.append("## Trusted devices (scenario v: scenario a with a device cookie, c%s)" % m.get("conns"))
    L.append("")
    L.append("The `pairguard` contender's policy with `device_cookie=pg_dev`: every request carries a "
             "valid token for its own client address, so it is checked (HMAC), decided on its "
             "device's own key, and its success renews the cookie (one more HMAC, 16 random bytes, "
             "a Set-Cookie header). Measured in every round next to plain proxy_pass and the "
             "cookieless contender.")
    L.append("")
    L.append("| contender | req/s | × plain | Redis cmds/req | script calls/req | edge µs | Redis µs | total µs |")
    L.append("|---|--:|--:|--:|--:|--:|--:|--:|")
    for c in DEVICES:
        d = summary["load"].get("v/%s/sat" % c)
        if not d:
            continue
        L.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            LABEL[c], num(d["rps"]), ratio_cell(d),
            f2(d["redis_cmds_per_req"]) if c != "plain" else "—",
            f2(d["script_calls_per_req"]) if c != "plain" else "—",
            us(d, "edge"), us(d, "redis"), us(d, "total")))
    L.append("")

    L.append("## Redis deployments (scenario r: scenario a, c%s)" % m.get("conns"))
    L.append("")
    L.append("The `pairguard` contender's config against three Redis deployments, measured in "
             "every round next to plain proxy_pass: one Redis over plain TCP (as in every other "
             "scenario), a TLS-only redis-server (`pairguard_redis 127.0.0.1:P tls "
             "tls_trusted_certificate=CA`; a throwaway CA, the certificate checked, no client "
             "certificate), and a Redis Cluster of three masters without replicas "
             "(`pairguard_redis cluster=...`; one connection per master per worker, batches per "
             "slot). All on loopback, on the same cores. For the cluster, Redis commands and "
             "Redis µs are summed over the three nodes.")
    L.append("")
    L.append("| Redis | req/s | × plain | Redis cmds/req | script calls/req | ops/batch | edge µs "
             "| Redis µs | upstream µs | wrk µs | total µs |")
    L.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for c in DEPLOYS:
        d = summary["load"].get("r/%s/sat" % c)
        if not d:
            continue
        L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            {"plain": "— (plain proxy_pass)", "pairguard": "one Redis, TCP",
             "pg_tls": "one Redis, TLS", "pg_cluster": "Redis Cluster, 3 masters"}[c],
            num(d["rps"]), ratio_cell(d),
            f2(d["redis_cmds_per_req"]) if c != "plain" else "—",
            f2(d["script_calls_per_req"]) if c != "plain" else "—",
            "%.1f" % d["ops_per_batch"] if d.get("ops_per_batch") else "—",
            us(d, "edge"), us(d, "redis"), us(d, "upstream"), us(d, "wrk"), us(d, "total")))
    L.append("")

    L.append("## One and two workers (scenario a, c%s)" % m.get("conns"))
    L.append("")
    L.append("The same contender with `worker_processes 1` and `2`, measured in every round. "
             "× plain: against plain proxy_pass with the same number of workers; 2 / 1: the "
             "contender's own req/s with two workers over one. With %s cores shared by wrk, Redis "
             "and the upstream, a second worker mostly competes for the same CPU." % m.get("nproc"))
    L.append("")
    L.append("| contender | req/s, 1 worker | × plain | req/s, 2 workers | × plain | 2 / 1 "
             "| script calls/req (1 / 2) | ops/batch (1 / 2) | edge µs (1 / 2) | Redis µs (1 / 2) |")
    L.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for c in ("plain", "lua", "pairguard"):
        d1 = summary["load"].get("w/%s/sat" % c)
        d2 = summary["load"].get("w/%s_w2/sat" % c)
        if not d1 or not d2:
            continue
        opb = lambda d: "%.1f" % d["ops_per_batch"] if d.get("ops_per_batch") else "—"
        L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            LABEL[c], num(d1["rps"]), ratio_cell(d1), num(d2["rps"]), ratio_cell(d2),
            f2(d2["rps"] / d1["rps"]),
            "—" if c == "plain" else "%s / %s" % (f2(d1["script_calls_per_req"]), f2(d2["script_calls_per_req"])),
            "%s / %s" % (opb(d1), opb(d2)) if c == "pairguard" else "—",
            "%s / %s" % (us(d1, "edge"), us(d2, "edge")),
            "—" if c == "plain" else "%s / %s" % (us(d1, "redis"), us(d2, "redis"))))
    L.append("")

    L.append("## User-space instructions per request (edge worker, scenario a)")
    L.append("")
    ins = summary["instructions"]
    if ins:
        cg = any(d.get("tool") == "callgrind" for d in ins.values())
        if cg:
            L.append("callgrind (this machine has no hardware counters): each contender's config "
                     "with master_process off under valgrind, warmed up, then %s requests of "
                     "scenario a (wrk -c10, distinct addresses, allowed) counted; self cost summed "
                     "per shared object." % num(next(iter(ins.values()))["requests"]))
        else:
            L.append("`perf stat -e instructions:u` on the contender's worker during one wrk -c%s run."
                     % m.get("conns"))
        L.append("")
        objs = []
        for d in ins.values():
            for k in d.get("objects_per_req", {}):
                if k not in objs and k != "???":
                    objs.append(k)
        objs.sort(key=lambda k: -max(d.get("objects_per_req", {}).get(k, 0) for d in ins.values()))
        short = {k: k.split(".so")[0] for k in objs}
        nat = any("per_req_native" in d for d in ins.values())
        L.append("| contender | instructions/req | × plain |"
                 + (" estimate with SHA-256 native: instructions/req | × plain |" if nat else "")
                 + "".join(" %s |" % short[k] for k in objs))
        L.append("|---|--:|--:|" + ("--:|--:|" if nat else "") + "--:|" * len(objs))
        for c in CONTENDERS:
            d = ins.get(c)
            if d:
                pl = ins.get("plain")
                row = "| %s | %s | %s |" % (LABEL[c], num(d["per_req"]),
                                           f2(d["per_req"] / pl["per_req"]) if pl else "—")
                if nat:
                    dn, pn = d.get("per_req_native"), (pl or {}).get("per_req_native")
                    row += " %s | %s |" % (num(dn), f2(dn / pn) if dn and pn else "—")
                L.append(row + "".join(" %s |" % num(d.get("objects_per_req", {}).get(k, 0)) for k in objs))
        shad = ins.get("pairguard") or {}
        if nat and shad.get("sha256_native_per_block"):
            L.append("")
            L.append("Estimate with SHA-256 native: valgrind cannot run the SHA extensions, so under "
                     "callgrind OpenSSL's SHA-256 takes its AVX2 code (%s instructions a 64-byte block "
                     "here). This CPU %s them: one block measured natively (gdb single-steps one "
                     "`SHA256_Transform`) is %s instructions. The second pair of columns counts each of "
                     "the %s blocks per request that way and everything else as callgrind did. It is an "
                     "estimate, not this CPU's count: valgrind also hides AVX-512, so glibc's string "
                     "functions run other variants under it (not corrected, for any contender). The "
                     "target is judged on callgrind's count." % (
                         num(shad.get("sha256_callgrind_per_block")),
                         "has" if shad.get("sha_ni") else "does not have",
                         num(shad["sha256_native_per_block"]), f2(shad.get("sha256_blocks_per_req"))))
    else:
        L.append("Not measured in this run: `perf stat` has no hardware counters on this machine "
                 "(`instructions:u` is `<not supported>` in this VM), and callgrind would take "
                 "minutes per contender. See the notes.")
    L.append("")

    L.append("## Redis memory per tracked key")
    L.append("")
    L.append("Up to %s distinct addresses, one failing request each. Bytes per key: the growth of "
             "the data (MEMORY STATS `dataset.bytes` plus the keyspace and expiry tables of db 0) "
             "divided by the DBSIZE delta. `used_memory` delta also holds client buffers (the "
             "lua peer's connection pool) and the script cache. MEMORY USAGE: mean over a sample "
             "of the keys (key and value only)." % m.get("mem_keys"))
    L.append("")
    L.append("| contender | keys created | bytes per key | MEMORY USAGE | used_memory delta / key |")
    L.append("|---|--:|--:|--:|--:|")
    for c in CONTENDERS:
        d = summary["memory"].get(c)
        if d:
            L.append("| %s | %d | %s | %s | %s |" % (
                LABEL[c], d["keys"], num(d["bytes_per_key"]), num(d["memory_usage_avg"]),
                num(d["delta"]["used_memory"] / d["keys"] if d["keys"] > 0 else None)))
    L.append("")
    L.append("limit_req and HAProxy keep their state per node (shared memory, stick table), not in Redis.")
    L.append("")

    L.append("## Burst: %s concurrent failing requests of one address" % m.get("burst"))
    L.append("")
    L.append("Opened as %s connections, then sent at once; the upstream answers 404 and logs each "
             "request it sees. Policy: 5 failures. Worst round shown." % m.get("burst"))
    L.append("")
    L.append("| contender | reached the upstream | beyond the threshold | answers (worst round) | per round |")
    L.append("|---|--:|--:|---|---|")
    for c in CONTENDERS:
        d = summary["burst"].get(c)
        if not d:
            continue
        worst = d["reached_rounds"].index(d["reached_max"])
        ans = d["answers_rounds"][worst]
        L.append("| %s | %d | %d | %s | %s |" % (
            LABEL[c], d["reached_max"], d["beyond_threshold_max"],
            ", ".join("%s×%s" % (k, v) for k, v in sorted(ans.items())),
            " ".join(str(x) for x in d["reached_rounds"])))
    L.append("")

    b2 = summary["burst2"].get("pairguard")
    if b2:
        L.append("Over %d pairguard nodes sharing Redis (one with one worker, one with two; the %d "
                 "connections alternate between them): reached the upstream %s (per round; "
                 "exactly %d expected); answers (last round): %s."
                 % (b2["nodes"], b2["sent"], " ".join(map(str, b2["reached_rounds"])), MAX_FAILURES,
                    ", ".join("%s×%s" % kv for kv in sorted(b2["answers_rounds"][-1].items()))))
        L.append("")

    # Issue 9's targets, from the numbers above.
    def ld(k, f="ratio"):
        return (summary["load"].get(k) or {}).get(f)
    a_pg, a_lua = ld("a/pairguard/sat"), ld("a/lua/sat")
    c_pg, c_lua = ld("c/pairguard/sat"), ld("c/lua/sat")
    a4_pg, a4_lua = ld("a/pairguard/c4"), ld("a/lua/c4")
    a_cmds = ld("a/pairguard/sat", "redis_cmds_per_req")
    a_scr = ld("a/pairguard/sat", "script_calls_per_req")
    mon_a = summary["monitor"].get("a/pairguard")
    mem = (summary["memory"].get("pairguard") or {}).get("bytes_per_key")
    b_pg, b_cmds = ld("b/pairguard/sat"), ld("b/pairguard/sat", "redis_cmds_per_req")
    ins_pg = (summary["instructions"].get("pairguard") or {}).get("per_req")
    ins_pl = (summary["instructions"].get("plain") or {}).get("per_req")
    insn_pg = (summary["instructions"].get("pairguard") or {}).get("per_req_native")
    insn_pl = (summary["instructions"].get("plain") or {}).get("per_req_native")

    def yes(ok):
        return "—" if ok is None else ("met" if ok else "**not met**")

    # b's bound: a locked client's answers cost the edge less than wrk spends
    # asking, so wrk's one thread can set the most req/s any contender gets
    b_note = ""
    b_d = summary["load"].get("b/pairguard/sat") or {}
    if b_d.get("bound_by_all") == "wrk":
        shares = [x["share"] for x in b_d["bound_rounds"]]
        b_note = (" (bound by wrk in every round: %s%% of its bound reached, per round %s)" % (
            "%.0f" % (100 * b_d["bound_share"]), ", ".join("%.0f%%" % (100 * x) for x in shares)))

    def q(x, y):
        return x / y if x is not None and y else None
    rows = [
        ("a allowed, c%s, × plain" % m.get("conns"), "≥ 0.80 and ≥ 1.25 × the Lua peer",
         "%s (Lua peer %s: %s×)" % (f2(a_pg), f2(a_lua), f2(q(a_pg, a_lua))),
         yes(None if a_pg is None or a_lua is None else a_pg >= 0.80 and a_pg >= 1.25 * a_lua)),
        ("c guessing, c%s, × plain" % m.get("conns"), "≥ 0.75 and ≥ 2 × the Lua peer",
         "%s (Lua peer %s: %s×)" % (f2(c_pg), f2(c_lua), f2(q(c_pg, c_lua))),
         yes(None if c_pg is None or c_lua is None else c_pg >= 0.75 and c_pg >= 2 * c_lua)),
        ("a allowed, c%s, × plain" % m.get("lat_conns"), "≥ the Lua peer's ratio",
         "%s (Lua peer %s)" % (f2(a4_pg), f2(a4_lua)),
         yes(None if a4_pg is None or a4_lua is None else a4_pg >= a4_lua)),
        ("Redis commands executed per allowed request", "≤ 3",
         "%s at c%s%s" % (f2(a_cmds), m.get("conns"),
                         "; %s one request at a time (%s sent)" % (
                             f2(mon_a["client_per_req"] + mon_a["script_per_req"]),
                             f2(mon_a["client_per_req"])) if mon_a else ""),
         yes(None if a_cmds is None else a_cmds <= 3)),
        ("script calls per request at c%s" % m.get("conns"), "≤ 0.5", f2(a_scr),
         yes(None if a_scr is None else a_scr <= 0.5)),
        ("bytes per tracked key", "≤ 121", num(mem), yes(None if mem is None else mem <= 121)),
        ("instructions per guarded request (scenario a)", "≤ 1.5 × plain",
         ("%s × plain under callgrind (%s against %s); estimate with the SHA-256 blocks at this CPU's "
          "native cost %s × (%s)" % (
             f2(q(ins_pg, ins_pl)), num(ins_pg), num(ins_pl), f2(q(insn_pg, insn_pl)), num(insn_pg))
          if insn_pg and insn_pl else
          "%s × plain (%s against %s)" % (f2(q(ins_pg, ins_pl)), num(ins_pg), num(ins_pl)))
         if ins_pg and ins_pl else "—",
         yes(None if not ins_pg or not ins_pl else ins_pg <= 1.5 * ins_pl)),
        ("b locked, × plain, Redis commands", "≥ 1.9, 0", "%s, %s%s" % (f2(b_pg), f2(b_cmds), b_note),
         yes(None if b_pg is None or b_cmds is None else b_pg >= 1.9 and b_cmds == 0)),
        ("burst of 200 on one key (2 nodes) reaching the upstream", "exactly 5",
         " ".join(map(str, b2["reached_rounds"])) if b2 else "—",
         yes(None if not b2 else b2["reached_min"] == b2["reached_max"] == MAX_FAILURES)),
    ]
    L.append("## Issue 9 targets")
    L.append("")
    L.append("| measure | target | measured | |")
    L.append("|---|---|---|---|")
    for row in rows:
        L.append("| %s | %s | %s | %s |" % row)
    summary["targets"] = [dict(zip(("measure", "target", "measured", "verdict"), r)) for r in rows]
    L.append("")

    L.append("## Store down (pairguard only, `timeout=100ms`)")
    L.append("")
    L.append("One nginx per `pairguard_store_down` mode; the guarded route (distinct addresses, "
             "upstream 200) and an unguarded route of the same nginx are loaded at the same time, "
             "wrk -c%s each, %s s per state, started right after the fault. *stopped*: redis-server "
             "terminated; *hung*: SIGSTOP. ≥50 ms requests (nginx): guarded requests whose "
             "`$request_time` was 50 ms or more, counted from an access log of slow requests; "
             "wrk share: the share of wrk's latency samples at 50 ms or more, which includes "
             "wrk's coordinated-omission correction (one request stalled 100 ms on a connection "
             "also adds the samples of the requests it held back), so it is larger than the count "
             "of slow requests. "
             "Unguarded × up compares with the same route while Redis was up (a guarded route "
             "that answers faster leaves more CPU to the unguarded one)."
             % (m.get("d_conns"), m.get("d_seconds")))
    L.append("")
    L.append("| mode | Redis | guarded req/s | guarded p50 ms | guarded p99 ms | guarded max ms "
             "| guarded ≥50 ms: requests (nginx) | ≥50 ms: wrk share | guarded answers "
             "| unguarded req/s | unguarded × up | unguarded p99 ms | unguarded max ms |")
    L.append("|---|---|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|")
    for mode in ("local", "deny", "allow"):
        up_u = summary["store_down"].get("%s/up/unguarded" % mode)
        for state in ("up", "stopped", "hung"):
            g = summary["store_down"].get("%s/%s/guarded" % (mode, state))
            u = summary["store_down"].get("%s/%s/unguarded" % (mode, state))
            if not g or not u:
                continue
            ratio = u["rps"] / up_u["rps"] if up_u else None
            slow = g.get("over_50ms_pct")
            sn = g.get("slow_nginx")
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                mode, state, num(g["rps"]), ms(g["p50_us"]), ms(g["p99_us"]), ms(g["max_us"]),
                "—" if sn is None else "%d of %d" % (sn, g["requests"]),
                "—" if slow is None else "%.2f%%" % slow,
                status_mix(g["status"]), num(u["rps"]), num(ratio, "%.2f"), ms(u["p99_us"]),
                ms(u["max_us"])))
    L.append("")

    L.append("## Notes")
    L.append("")
    for r in raw:
        if r["kind"] == "log":
            L.append("- the pairguard instances logged %d \"redis ... unavailable\" lines in all "
                     "(expected: each worker logs each outage once, and scenario d makes 2 "
                     "outages per mode, seen by every pairguard instance)." % r["store_down_lines"])
    for n in notes:
        L.append("- " + n)
    if not notes:
        L.append("- nothing odd: every measurement got the expected answers, no socket errors, "
                 "no unexpected error log lines.")
    L.append("")

    with open(a.out + ".md", "w") as f:
        f.write("\n".join(L))
    with open(a.out + ".json", "w") as f:
        json.dump({"meta": meta, "summary": summary, "notes": notes, "raw": raw}, f, indent=1,
                  sort_keys=True)
        f.write("\n")

    # --- chart --------------------------------------------------------------------
    dat = os.path.splitext(a.gnuplot)[0] + ".dat"
    groups = [("a", "sat", "a: allowed"), ("b", "sat", "b: locked client"), ("c", "sat", "c: guessing"),
              ("e", "sat", "e: paired-only"), ("f", "sat", "f: bearer"),
              ("a", "c4", "a @c%s" % m.get("lat_conns")), ("b", "c4", "b @c%s" % m.get("lat_conns")),
              ("c", "c4", "c @c%s" % m.get("lat_conns")),
              ("s2", "sat", "a: 2 policies"), ("s3", "sat", "a: 3 policies"),
              ("w2", "sat", "a: 2 workers"),
              ("rt", "sat", "a: TLS Redis"), ("rc", "sat", "a: Redis Cluster")]

    def chart_key(s, c, load):
        # s2/s3: the stacked pairguard in the pairguard column; w2: each
        # contender's two-worker twin against plain with two workers.
        if s in ("s2", "s3"):
            return "s/%s/%s" % ({"plain": "plain", "pairguard": "pg_stack" + s[1]}.get(c, "-"), load)
        if s == "w2":
            return "w/%s_w2/%s" % (c, load)
        # rt/rc: scenario r's TLS / cluster pairguard in the pairguard column.
        if s in ("rt", "rc"):
            return "r/%s/%s" % ({"plain": "plain", "pairguard": {"rt": "pg_tls", "rc": "pg_cluster"}[s]}
                                .get(c, "-"), load)
        return "%s/%s/%s" % (s, c, load)
    with open(dat, "w") as f:
        f.write("# group " + " ".join(CONTENDERS) + "\n")
        for s, load, label in groups:
            vals = []
            for c in CONTENDERS:
                v = summary["load"].get(chart_key(s, c, load), {}).get("ratio")
                vals.append("%.4f" % v if v is not None else "NaN")
            f.write('"%s" %s\n' % (label, " ".join(vals)))
    n = len(CONTENDERS)
    plots, labels = [], []
    for i, c in enumerate(CONTENDERS):
        plots.append("'%s' using %d:xtic(1) title '%s'" % (dat, i + 2, LABEL[c])
                     if i == 0 else "'' using %d title '%s'" % (i + 2, LABEL[c]))
        labels.append("'' using ($0 + (%d - %.1f) / %d.0):%d:(sprintf('%%.2f', column(%d))) "
                      "with labels font ',7' offset 0,0.6 notitle"
                      % (i, (n - 1) / 2.0, n + 1, i + 2, i + 2))
    title = ("req/s relative to plain proxy_pass (median over %s rounds; %s)"
             % (m.get("rounds"), "quick check" if m.get("quick") else "commit %s" % m.get("commit")))
    gp = [
        "set terminal pngcairo size 1500,600 font 'Sans,10' noenhanced",
        "set output '%s.png'" % a.out,
        "set title \"%s\"" % title,
        "set style data histograms",
        "set style histogram clustered gap 1",
        "set style fill solid 0.85 border -1",
        "set boxwidth 0.95",
        "set ylabel 'ratio to plain proxy_pass (same round)'",
        "set yrange [0:*]",
        "set offsets 0, 0, graph 0.06, 0",
        "set xrange [-0.6:%.1f]" % (len(groups) - 0.4),
        "set grid ytics",
        "set key outside right top vertical",
        "set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc rgb '#555555'",
        "set label 1 '%s cores, %s' at screen 0.01, screen 0.02 font ',8'" % (
            m.get("nproc"), str(m.get("cpu")).replace("'", "")),
        "plot " + ", ".join(plots + labels),
    ]
    with open(a.gnuplot, "w") as f:
        f.write("\n".join(gp) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
