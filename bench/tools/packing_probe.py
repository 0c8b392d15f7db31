#!/usr/bin/env python3
"""What packing tracked keys into Redis hashes would save and cost.

    python3 bench/tools/packing_probe.py [KEYS]

Starts its own redis-server (on a free loopback port, stopped by its pid at
the end) and measures, for KEYS one-failure keys (default 20 000, as the
bench's memory table):

- bytes per tracked key (MEMORY STATS dataset.bytes plus db 0's keyspace
  and expiry tables, as scripts/bench.sh counts them) for pairguard's
  layout today (one string per key: a 28-character name, a shared-integer
  value, an expiry) and for the same records packed as fields of 256 or
  1024 hashes (16-character fields, 8-character values, one expiry per
  hash; listpack-encoded at this size);
- the Redis cost of the commands a clean path would run, pipelined 32 deep
  from one client (redis-benchmark; Redis is the bottleneck, so 10^6 /
  req/s is its µs per command): today's SET NX PX and GETDEL, and the
  HGET a packed layout would add to every fresh reserve (the bucket may
  hold the key's one failure).

Prints a table; changes nothing outside its own temporary directory.
"""
import base64
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Redis:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.f = self.s.makefile("rb")

    @staticmethod
    def enc(*args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def read(self):
        line = self.f.readline()
        t, rest = line[:1], line[1:-2]
        if t in (b"+", b":"):
            return rest
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2]
        if t == b"*":
            return [self.read() for _ in range(int(rest))]
        raise RuntimeError("unexpected reply %r" % line)

    def pipe(self, cmds):
        self.s.sendall(b"".join(self.enc(*c) for c in cmds))
        return [self.read() for _ in cmds]

    def cmd(self, *args):
        return self.pipe([args])[0]


def data_bytes(r):
    m = r.cmd("MEMORY", "STATS")
    d = dict(zip(m[::2], m[1::2]))
    n = int(d[b"dataset.bytes"])
    db = d.get(b"db.0")
    if db:
        dd = dict(zip(db[::2], db[1::2]))
        n += int(dd[b"overhead.hashtable.main"]) + int(dd[b"overhead.hashtable.expires"])
    return n


def tag():
    return base64.urlsafe_b64encode(os.urandom(12)).decode()  # 96 bits, 16 characters


def memory(r, layout, n):
    r.cmd("FLUSHALL")
    time.sleep(0.2)
    before = data_bytes(r)
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
    enc = r.cmd("OBJECT", "ENCODING", "pairguard:{b0}").decode() if layout != "strings" else "string"
    return (data_bytes(r) - before) / n, enc


def bench(port, args):
    out = subprocess.run(["redis-benchmark", "-p", str(port), "-n", "400000", "-P", "32", "-c", "1",
                          "-r", "256", "-q"] + args, capture_output=True, text=True).stdout
    m = re.findall(r"([\d.]+) requests per second", out.replace("\r", "\n"))
    return float(m[-1]) if m else None


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    work = tempfile.mkdtemp(prefix="pg-packing.")
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", work],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            try:
                r = Redis(port)
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise SystemExit("redis-server did not start")
        print("| layout | bytes per tracked key | encoding |")
        print("|---|--:|---|")
        for layout, label in (("strings", "one string per key (today)"),
                              ("256", "fields of 256 hashes"), ("1024", "fields of 1024 hashes")):
            b, enc = memory(r, layout, n)
            print("| %s | %.1f | %s |" % (label, b, enc))
        # the buckets a packed lookup would scan: 256 of about n/256 fields
        r.cmd("FLUSHALL")
        cmds = [("HSET", "pairguard:{b%012d}" % (i % 256), "%016d" % i, "1a2b3c4d") for i in range(n)]
        for i in range(0, len(cmds), 1000):
            r.pipe(cmds[i:i + 1000])
        print()
        print("| command (pipelined 32 deep) | req/s | Redis µs per command |")
        print("|---|--:|--:|")
        for label, args in (
                ("SET key value NX PX (a fresh reserve)",
                 ["SET", "pairguard:{__rand_int__}", "|||1717171717171|", "NX", "PX", "60000"]),
                ("GETDEL key (a success settle)", ["GETDEL", "pairguard:{__rand_int__}"]),
                ("HGET bucket field (the packed layout's check)",
                 ["HGET", "pairguard:{b__rand_int__}", "0000000000000077"])):
            rps = bench(port, args)
            print("| %s | %s | %s |" % (label, "%.0f" % rps if rps else "—",
                                        "%.2f" % (1e6 / rps) if rps else "—"))
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
