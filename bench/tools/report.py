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
GUARDED = {"lua", "haproxy", "pairguard"}
REDIS_USERS = {"lua", "pairguard"}
# Commands the benchmark itself sends, not the contenders.
BENCH_CMDS = {"config|resetstat", "config|get", "config", "info", "flushall", "dbsize",
              "monitor", "command", "command|docs"}
MAX_FAILURES = 5


def expected(scenario, contender):
    if scenario in ("a", "e", "f"):
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

    summary = {"load": {}, "monitor": {}, "memory": {}, "burst": {}, "store_down": {}}
    for s in SCENARIOS:
        for c in CONTENDERS:
            for load in ("sat", "c4"):
                rows = [r for (s2, c2, l2, _), r in sorted(by.items()) if (s2, c2, l2) == (s, c, load)]
                if not rows:
                    continue
                ratios, cmds = [], []
                statuses, errors = {}, 0
                for r in rows:
                    base = by.get((s, "plain", load, r["round"]))
                    ratios.append(r["rps"] / base["rps"] if base else None)
                    cmds.append(redis_calls(r) / r["wrk"]["requests"])
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
                    "status": statuses,
                    "socket_errors": errors,
                }
                exp = expected(s, c)
                total = sum(statuses.values())
                if total and statuses.get(exp, 0) < 0.99 * total:
                    notes.append("%s, scenario %s (%s): expected %s, got %s"
                                 % (LABEL[c], s, load, exp, status_mix(statuses)))
                if errors:
                    notes.append("%s, scenario %s (%s): %d socket errors (connect/read/write/timeout)"
                                 % (LABEL[c], s, load, errors))

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
        elif r["kind"] == "burst":
            d = summary["burst"].setdefault(r["contender"], {"reached_rounds": [], "answers_rounds": []})
            d["sent"] = r["sent"]
            d["reached_rounds"].append(r["reached"])
            d["answers_rounds"].append(r["answers"])
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
    L.append("")
    L.append("## Throughput and latency")
    L.append("")
    L.append("Latencies are wrk's (with wrk's coordinated-omission correction). "
             "Redis cmds/req: all commands Redis executed (INFO commandstats, including the ones "
             "run inside scripts) per request at saturation; *sent* is what the contender sent "
             "(MONITOR over %s sequential requests)." % m.get("sample"))
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
                cmds = "%.2f" % sat["redis_cmds_per_req"]
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
              ("c", "c4", "c @c%s" % m.get("lat_conns"))]
    with open(dat, "w") as f:
        f.write("# group " + " ".join(CONTENDERS) + "\n")
        for s, load, label in groups:
            vals = []
            for c in CONTENDERS:
                v = summary["load"].get("%s/%s/%s" % (s, c, load), {}).get("ratio")
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
        "set terminal pngcairo size 1200,600 font 'Sans,10' noenhanced",
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
