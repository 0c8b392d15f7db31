#!/usr/bin/env python3
"""What packing tracked keys into Redis hashes would save and cost.

    python3 bench/tools/packing_probe.py [KEYS]

Starts its own redis-server (on a unix socket in a temporary directory, no
TCP port; stopped by its pid at the end) and measures, for KEYS one-failure
records (default 20 000, as the bench's memory table):

- bytes per tracked record (MEMORY STATS dataset.bytes plus db 0's keyspace
  and expiry tables, as scripts/bench.sh counts them), three times each,
  for pairguard's layout today (one string per key: a 28-character name, a
  shared-integer value, an expiry) and for the same records packed as
  fields of 256 or 1024 hashes (16-character fields, 8-character values,
  one expiry per hash; listpack-encoded while a hash holds at most
  hash-max-listpack-entries fields, printed);
- Redis' CPU per command (the main thread's used_cpu_user + used_cpu_sys
  over the run, divided by the commands; pipelined 1000 deep, so it holds
  the parsing and the reply but little of the syscalls) and the command's
  own time (INFO commandstats usec_per_call), for the commands a clean path
  runs: today's `SET key value NX PX` of a fresh key and `GETDEL` of a key
  that holds a value, and the `HGET` of a present field in a bucket of
  about KEYS/256 fields that a packed layout would add to every fresh
  reserve (the bucket may hold the key's one failure).

Each command runs three times (the keys filled again each time) and its
range is printed, with the share of answers that carried a value (all of
them, or the run did not measure what it says). Prints two tables;
changes nothing outside its own temporary directory.
"""
import base64
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchtool import Redis, data_bytes, info_fields  # noqa: E402


def stored_bytes(r):
    return sum(data_bytes(r))


def tag():
    return base64.urlsafe_b64encode(os.urandom(12)).decode()  # 96 bits, 16 characters


def memory(r, layout, n):
    r.cmd("FLUSHALL")
    time.sleep(0.2)
    before = stored_bytes(r)
    now = int(time.time() * 1000)
    cmds = []
    if layout == "strings":
        for _ in range(n):
            cmds.append(("SET", "pairguard:{%s}" % tag(), "900", "PXAT", now + 900000))
    else:
        buckets = int(layout)
        for i in range(n):
            cmds.append(("HSET", "pairguard:{b%d}" % (i % buckets), tag(), "1a2b3c4d"))
        for b in range(buckets):
            cmds.append(("PEXPIREAT", "pairguard:{b%d}" % b, now + 1800000))
    for i in range(0, len(cmds), 1000):
        r.pipe(cmds[i:i + 1000])
    time.sleep(0.2)
    enc = r.cmd("OBJECT", "ENCODING", "pairguard:{b0}") if layout != "strings" else "string"
    return (stored_bytes(r) - before) / n, enc


def info(r, section):
    return info_fields(r.cmd("INFO", section))


def main_cpu(r):
    i = info(r, "cpu")
    return float(i["used_cpu_user_main_thread"]) + float(i["used_cpu_sys_main_thread"])


def per_command(r, name, cmds):
    """Redis main-thread CPU µs per command, INFO's usec_per_call, and the
    share of the answers that carried a value (OK or a string)."""
    r.cmd("CONFIG", "RESETSTAT")
    c0 = main_cpu(r)
    hits = 0
    for i in range(0, len(cmds), 1000):
        hits += sum(1 for x in r.pipe(cmds[i:i + 1000]) if x is not None)
    c1 = main_cpu(r)
    st = info(r, "commandstats").get("cmdstat_" + name, "")
    upc = dict(kv.split("=") for kv in st.split(",")).get("usec_per_call") if st else None
    return 1e6 * (c1 - c0) / len(cmds), float(upc) if upc else None, hits / len(cmds)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    work = tempfile.mkdtemp(prefix="pg-packing.")
    sock = os.path.join(work, "redis.sock")
    proc = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
                             "--save", "", "--appendonly", "no", "--dir", work],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        r = None
        for _ in range(100):
            if proc.poll() is not None:
                raise SystemExit("redis-server exited")
            try:
                r = Redis("unix:" + sock)
                break
            except OSError:
                time.sleep(0.1)
        if r is None:
            raise SystemExit("redis-server did not start")
        if int(info(r, "server")["process_id"]) != proc.pid:
            raise SystemExit("the socket is not this probe's redis-server")
        lp = r.cmd("CONFIG", "GET", "hash-max-listpack-entries")[1]
        print("| layout (%d records; hash-max-listpack-entries %s) | bytes per tracked record, 3 passes | encoding |"
              % (n, lp))
        print("|---|--:|---|")
        for layout, label in (("strings", "one string per key (today)"),
                              ("256", "fields of 256 hashes"), ("1024", "fields of 1024 hashes")):
            runs = [memory(r, layout, n) for _ in range(3)]
            print("| %s | %s | %s |" % (label, " / ".join("%.1f" % b for b, _ in runs), runs[-1][1]))
        # the commands, each on keys of its own: fresh names for SET NX, keys
        # holding a value for GETDEL, present fields of 256 buckets for HGET;
        # three passes each (the keys filled again each time), the range printed
        m = 200000
        results = {}
        for _ in range(3):
            r.cmd("FLUSHALL")
            fill = [("SET", "pairguard:{g%012d}" % i, "|||1717171717171|") for i in range(m)]
            fill += [("HSET", "pairguard:{b%d}" % (i % 256), "%016d" % i, "1a2b3c4d") for i in range(n)]
            for i in range(0, len(fill), 1000):
                r.pipe(fill[i:i + 1000])
            fields = [(i * 7919) % n for i in range(m)]
            for name, cmds in (
                    ("set", [("SET", "pairguard:{s%012d}" % i, "|||1717171717171|", "NX", "PX", "60000")
                             for i in range(m)]),
                    ("getdel", [("GETDEL", "pairguard:{g%012d}" % i) for i in range(m)]),
                    ("hget", [("HGET", "pairguard:{b%d}" % (f % 256), "%016d" % f) for f in fields])):
                cpu, upc, hits = per_command(r, name, cmds)
                results.setdefault(name, []).append((cpu, upc, hits))
        print()
        print("| command (pipelined 1000 deep, %d each, 3 passes) | Redis CPU µs per command | usec_per_call "
              "| answers with a value |" % m)
        print("|---|--:|--:|--:|")
        for name, label in (
                ("set", "`SET key value NX PX`, a fresh key (a fresh reserve today)"),
                ("getdel", "`GETDEL key`, a key holding its reservation (a success settle today)"),
                ("hget", "`HGET bucket field`, a present field of a bucket of about %d (what packing adds)"
                 % (n // 256))):
            rs = results[name]
            cpus = [x[0] for x in rs]
            upcs = [x[1] for x in rs if x[1] is not None]
            print("| %s | %.2f–%.2f | %s | %.0f%% |" % (
                label, min(cpus), max(cpus),
                "%.2f–%.2f" % (min(upcs), max(upcs)) if upcs else "—",
                100.0 * min(x[2] for x in rs)))
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
