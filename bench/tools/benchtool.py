#!/usr/bin/env python3
"""Small helpers for scripts/bench.sh (standard library only).

  benchtool.py ports N                       N distinct free loopback ports
  benchtool.py wait-port PORT SECONDS        wait until 127.0.0.1:PORT accepts
  benchtool.py redis PORT CMD [ARG...]       run one Redis command, print the reply
  benchtool.py cmdstats PORTS                {"cmd": calls, ...} from INFO commandstats
                                             (summed over the nodes of PORTS)
  benchtool.py redis-mem PORT [SAMPLE]       used_memory, client and script memory,
                                             DBSIZE [and mean MEMORY USAGE of SAMPLE keys]
  benchtool.py get URL XFF [N]               N sequential GETs; prints the statuses
  benchtool.py burst URL[,URL...] XFF N       N requests on N connections, sent at once
                                             (spread round-robin over the URLs: nodes)
  benchtool.py monitor RPORT URL MODE ARG N  N sequential GETs under Redis MONITOR;
                                             counts commands sent by clients vs
                                             run inside scripts
  benchtool.py haproxy-clear SOCKET TABLE    clear a HAProxy stick table
  benchtool.py callgrind FILE                 {"total": Ir, "objects": {object: Ir}}: the
                                             self cost of one callgrind dump, summed
                                             per shared object (nginx, libc, ...),
                                             and "sha256": the calls to
                                             SHA256_Transform, their inclusive Ir
  benchtool.py sha256-native DIR             {"per_block": N, "sha_ni": bool}: the
                                             instructions of one SHA256_Transform
                                             run natively (gdb single-steps it;
                                             builds a small program in DIR)
  benchtool.py reset PORTS [--stats-only] [--haproxy SOCKET TABLE]
                                             FLUSHALL (unless --stats-only), CONFIG
                                             RESETSTAT on every node of PORTS, clear
                                             the HAProxy table
  benchtool.py cpu-snap ROOTPID              "WALL BUSY OURS": machine busy ticks and
                                             those of the process tree under ROOTPID
  benchtool.py record WRK_OUT [key=value...] [--redis PORT]
                                             [--cpu ROOTPID SNAPSHOT]
                                             one JSON line: the wrk BENCHJSON plus
                                             the given fields and the Redis command
                                             counts (fails when wrk's output has no
                                             usable BENCHJSON), and the share of
                                             CPU that other processes used since
                                             SNAPSHOT; req/s on stderr
                                             [--procs SNAPSHOT NAME=PID...]: CPU
                                             seconds each named process tree used
                                             since a proc-snap (cpu_s)
  benchtool.py proc-snap NAME=PID...         {"NAME": ticks}: utime+stime of PID and
                                             its descendants (their own time)
  benchtool.py mint-devices SECRET POLICY BASE N OUT
                                             N lines "ADDRESS TOKEN": a valid trusted-
                                             device token (device_cookie) of POLICY for
                                             each client address from the 32-bit BASE
                                             up, made as the module makes them

A Redis PORT is a loopback port, or tls:PORT for a TLS-only redis-server (the
certificate is not checked: the bench's own server on loopback), or
unix:PATH. PORTS is a
comma-separated list of them (the masters of a Redis Cluster: FLUSHALL,
CONFIG RESETSTAT and commandstats on each; --redis PORTS in record too). A
PID in proc-snap / --procs may be a comma-separated list (NAME=PID,PID: the
sum of their trees, e.g. every node of a cluster).
"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import selectors
import socket
import subprocess
import ssl
import sys
import time
import urllib.parse


def die(msg):
    sys.stderr.write("benchtool: %s\n" % msg)
    sys.exit(1)


# --- Redis (minimal RESP client) -------------------------------------------

class Redis:
    def __init__(self, port, timeout=5.0):
        port = str(port)
        if port.startswith("unix:"):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(port[len("unix:"):])
            self.buf = b""
            return
        tls = port.startswith("tls:")
        if tls:
            port = port[len("tls:"):]
        self.sock = socket.create_connection(("127.0.0.1", int(port)), timeout=timeout)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self.sock = ctx.wrap_socket(self.sock)
        self.buf = b""

    def send(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode(errors="replace")
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise RuntimeError("unexpected redis reply %r" % line)

    def cmd(self, *args):
        self.send(*args)
        return self.reply()

    def pipe(self, cmds):
        """Sends the commands at once, returns their replies in order."""
        out = []
        for args in cmds:
            a = [x if isinstance(x, bytes) else str(x).encode() for x in args]
            out.append(b"*%d\r\n" % len(a))
            out.extend(b"$%d\r\n%s\r\n" % (len(x), x) for x in a)
        self.sock.sendall(b"".join(out))
        return [self.reply() for _ in cmds]


def data_bytes(r):
    """What the data takes (MEMORY STATS dataset.bytes plus db 0's keyspace
    and expiry tables), without client buffers or the script cache."""
    st = r.cmd("MEMORY", "STATS")
    st = dict(zip(st[0::2], st[1::2]))
    db0 = st.get("db.0") or []
    db0 = dict(zip(db0[0::2], db0[1::2]))
    return int(st.get("dataset.bytes", 0)), \
        int(db0.get("overhead.hashtable.main", 0)) + int(db0.get("overhead.hashtable.expires", 0))


def info_fields(text):
    out = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k] = v
    return out


def cmdstats(ports):
    """Command calls of every node of PORTS (comma-separated), summed."""
    stats = {}
    for port in str(ports).split(","):
        info = info_fields(Redis(port).cmd("INFO", "commandstats"))
        for k, v in info.items():
            if not k.startswith("cmdstat_"):
                continue
            fields = dict(p.split("=", 1) for p in v.split(","))
            name = k[len("cmdstat_"):]
            stats[name] = stats.get(name, 0) + int(fields["calls"])
    return stats


# --- CPU accounting -----------------------------------------------------------

def cpu_snapshot(root):
    """(wall seconds, busy ticks of the machine, ticks of the process tree
    under root). A reaped child's time moves into its parent's cutime/cstime,
    so the tree's total only grows while its processes come and go."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...
    busy = sum(fields[:3]) + sum(fields[5:8])
    procs = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        rest = st[st.rindex(")") + 2:].split()
        # rest[1] ppid; rest[11..14] utime stime cutime cstime
        procs[int(d)] = (int(rest[1]), sum(int(x) for x in rest[11:15]))
    children = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    ours, todo = 0, [int(root)]
    while todo:
        pid = todo.pop()
        if pid in procs:
            ours += procs[pid][1]
        todo.extend(children.get(pid, []))
    return time.time(), busy, ours


def proc_ticks(specs):
    """{name: utime+stime ticks of pid and its live descendants} for
    NAME=PID specs (their own time, not that of reaped children)."""
    procs = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        rest = st[st.rindex(")") + 2:].split()
        procs[int(d)] = (int(rest[1]), int(rest[11]) + int(rest[12]))
    children = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    out = {}
    for spec in specs:
        name, pids = spec.split("=", 1)
        total, todo = 0, [int(p) for p in pids.split(",") if p]
        while todo:
            p = todo.pop()
            if p in procs:
                total += procs[p][1]
            todo.extend(children.get(p, []))
        out[name] = total
    return out


def foreign_cpu(before, after):
    """Share of the machine's CPU (0..1 of all cores) used by processes that
    are not ours between two snapshots, steal time included."""
    wall = after[0] - before[0]
    if wall <= 0:
        return None
    hz = os.sysconf("SC_CLK_TCK")
    other = (after[1] - before[1]) - (after[2] - before[2])
    return max(0.0, other / hz / wall / os.cpu_count())


# --- HTTP -----------------------------------------------------------------

def split_url(url):
    u = urllib.parse.urlsplit(url)
    return u.hostname, u.port or 80, (u.path or "/") + ("?" + u.query if u.query else "")


def get_many(url, xffs):
    host, port, path = split_url(url)
    conn = http.client.HTTPConnection(host, port, timeout=10)
    statuses = []
    for xff in xffs:
        conn.request("GET", path, headers={"X-Forwarded-For": xff})
        r = conn.getresponse()
        r.read()
        statuses.append(r.status)
    conn.close()
    return statuses


def ip(n):
    n %= 1 << 32
    return "%d.%d.%d.%d" % (n >> 24, (n >> 16) & 255, (n >> 8) & 255, n & 255)


def burst(urls, xff, n):
    """n connections opened first (round-robin over urls: one node each),
    then one request on each, all written in one tight loop (well under a
    millisecond apart), so that the guards see them at the same time;
    returns {status: count}."""
    targets = []
    for url in urls:
        host, port, path = split_url(url)
        req = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nX-Forwarded-For: %s\r\n"
               "Connection: close\r\n\r\n" % (path, host, port, xff)).encode()
        targets.append((host, port, req))
    socks, reqs = [], []
    for i in range(n):
        host, port, req = targets[i % len(targets)]
        socks.append(socket.create_connection((host, port), timeout=10))
        reqs.append(req)
    time.sleep(0.05)     # let the servers accept them all
    for s, req in zip(socks, reqs):
        s.sendall(req)
    sel = selectors.DefaultSelector()
    bufs = {}
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        bufs[s] = b""
    out = {}
    deadline = time.time() + 30
    while bufs and time.time() < deadline:
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            try:
                chunk = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if chunk:
                bufs[s] += chunk
                continue
            sel.unregister(s)
            s.close()
            line = bufs.pop(s).split(b"\r\n", 1)[0].split()
            code = line[1].decode() if len(line) > 1 else "error"
            out[code] = out.get(code, 0) + 1
    for s in bufs:
        out["error"] = out.get("error", 0) + 1
        s.close()
    return out


# --- commands ---------------------------------------------------------------

def callgrind_objects(path):
    """Self cost (Ir) of one callgrind dump, per object, and the calls to
    OpenSSL's SHA256_Transform with their inclusive cost (valgrind does not
    run the SHA extensions: see sha256_native). Cost lines follow fn= (self
    cost) or calls= (the callee's inclusive cost: counted only for
    SHA256_Transform); names are compressed as "(id) name" once, "(id)"
    after."""
    objs, fns, cur, total, skip = {}, {}, "?", 0, False
    by = {}
    cfn = None
    sha = {"calls": 0, "cost": 0}
    for line in open(path, errors="replace"):
        if line.startswith(("ob=", "cob=")):
            key, _, val = line.rstrip("\n").partition("=")
            m = re.match(r"\((\d+)\)(?: (.*))?", val)
            if m and m.group(2):
                objs[m.group(1)] = m.group(2)
            if key == "ob":
                cur = objs.get(m.group(1), "?") if m else val.strip()
            continue
        if line.startswith(("fn=", "cfn=", "cfi=", "cfl=")):
            key, _, val = line.rstrip("\n").partition("=")
            if key in ("fn", "cfn"):
                m = re.match(r"\((\d+)\)(?: (.*))?", val)
                name = val.strip()
                if m:
                    if m.group(2):
                        fns[m.group(1)] = m.group(2)
                    name = fns.get(m.group(1), "?")
                if key == "cfn":
                    cfn = name
            continue
        if line.startswith("calls="):
            skip = True
            if cfn == "SHA256_Transform":
                sha["calls"] += int(line.split("=", 1)[1].split()[0])
            continue
        if line[:1].isdigit() or line[:1] in "+-*":
            parts = line.split()
            if skip:
                skip = False
                if cfn == "SHA256_Transform" and len(parts) >= 2 and parts[1].isdigit():
                    sha["cost"] += int(parts[1])
                continue
            if len(parts) >= 2 and parts[1].isdigit():
                c = int(parts[1])
                total += c
                name = os.path.basename(cur) or "?"
                by[name] = by.get(name, 0) + c
    return {"total": total, "objects": by, "sha256": sha}


def sha256_native(workdir):
    """Instructions this CPU executes for one SHA256_Transform (one 64-byte
    block), counted natively: a small program calls it twice and gdb
    single-steps the second call, from its first instruction to its return.
    On a CPU with the SHA extensions OpenSSL runs them; valgrind cannot, so
    under callgrind OpenSSL takes its AVX2/SSSE3 code instead."""
    src = os.path.join(workdir, "sha256_block.c")
    exe = os.path.join(workdir, "sha256_block")
    with open(src, "w") as f:
        f.write("#define OPENSSL_SUPPRESS_DEPRECATED\n#include <openssl/sha.h>\n"
                "int main(void) { SHA256_CTX c; unsigned char b[64] = {1};\n"
                "  SHA256_Init(&c); SHA256_Transform(&c, b); SHA256_Transform(&c, b);\n"
                "  return (int) (c.h[0] & 1); }\n")
    subprocess.run(["cc", "-O1", "-o", exe, src, "-lcrypto"], check=True)
    script = os.path.join(workdir, "sha256_block.gdb")
    with open(script, "w") as f:
        f.write("set pagination off\nset confirm off\nbreak *SHA256_Transform\nrun\ncontinue\n"
                "python\nsp0 = int(gdb.parse_and_eval('$sp'))\nn = 0\n"
                "while int(gdb.parse_and_eval('$sp')) <= sp0 and n < 100000:\n"
                "    gdb.execute('stepi', to_string=True)\n    n += 1\n"
                "print('STEPS %d' % n)\nend\nkill\nquit\n")
    out = subprocess.run(["gdb", "-batch", "-nx", "-x", script, exe], capture_output=True, text=True,
                         timeout=300).stdout
    m = re.search(r"STEPS (\d+)", out)
    if not m:
        raise RuntimeError("gdb did not count SHA256_Transform: " + out[-500:])
    flags = open("/proc/cpuinfo").read()
    return {"per_block": int(m.group(1)), "sha_ni": " sha_ni" in flags}


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0
    cmd, args = argv[1], argv[2:]

    if cmd == "ports":
        socks = []
        for _ in range(int(args[0])):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        print(" ".join(str(s.getsockname()[1]) for s in socks))
        for s in socks:
            s.close()
        return 0

    if cmd == "mint-devices":
        # src/core/device.cpp: version 1, 16-byte id, expiry (8 bytes big-endian
        # unix seconds), then HMAC-SHA256(secret, "dc\0" POLICY "\0" account tag
        # version id expiry)[:16]; the account tag is HMAC-SHA256(secret,
        # "g\0" POLICY "\0" KEY)[:16]
        with open(args[0], "rb") as f:
            secret = f.read()
        policy = args[1].encode()
        base, n = int(args[2]), int(args[3])
        expires = int(time.time()) + 86400
        with open(args[4], "w") as out:
            for i in range(n):
                addr = ip(base + i)
                account = hmac.new(secret, b"g\0" + policy + b"\0" + addr.encode(), hashlib.sha256).digest()[:16]
                body = b"\x01" + os.urandom(16) + expires.to_bytes(8, "big")
                mac = hmac.new(secret, b"dc\0" + policy + b"\0" + account + body, hashlib.sha256).digest()[:16]
                token = base64.urlsafe_b64encode(body + mac).rstrip(b"=").decode()
                out.write(f"{addr} {token}\n")
        return 0

    if cmd == "wait-port":
        port, deadline = int(args[0]), time.time() + float(args[1])
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return 0
            except OSError:
                time.sleep(0.05)
        return 1

    if cmd == "redis":
        r = Redis(args[0]).cmd(*args[1:])
        print(r if not isinstance(r, list) else json.dumps(r))
        return 0

    if cmd == "cmdstats":
        print(json.dumps(cmdstats(args[0]), sort_keys=True))
        return 0

    if cmd == "callgrind":
        print(json.dumps(callgrind_objects(args[0]), sort_keys=True))
        return

    if cmd == "sha256-native":
        print(json.dumps(sha256_native(args[0]), sort_keys=True))
        return 0

    if cmd == "redis-mem":
        r = Redis(args[0])
        mem = info_fields(r.cmd("INFO", "memory"))
        out = {k: int(mem.get(k, 0)) for k in
               ("used_memory", "mem_clients_normal", "used_memory_scripts")}
        out["dbsize"] = r.cmd("DBSIZE")
        out["dataset_bytes"], out["keyspace_overhead"] = data_bytes(r)
        want = int(args[1]) if len(args) > 1 else 0
        if want:
            # MEMORY USAGE of up to `want` keys (SCAN order): the key and value
            # alone, without the keyspace tables' share.
            keys, cursor = [], "0"
            while len(keys) < want:
                cursor, batch = r.cmd("SCAN", cursor, "COUNT", 1000)
                keys.extend(batch)
                if cursor == "0":
                    break
            sizes = [r.cmd("MEMORY", "USAGE", k, "SAMPLES", "0") for k in keys[:want]]
            sizes = [x for x in sizes if isinstance(x, int)]
            out["memory_usage_sampled"] = len(sizes)
            out["memory_usage_avg"] = sum(sizes) / len(sizes) if sizes else None
        print(json.dumps(out))
        return 0

    if cmd == "get":
        n = int(args[2]) if len(args) > 2 else 1
        print(" ".join(str(s) for s in get_many(args[0], [args[1]] * n)))
        return 0

    if cmd == "burst":
        print(json.dumps(burst(args[0].split(","), args[1], int(args[2])), sort_keys=True))
        return 0

    if cmd == "monitor":
        rport, url, mode, arg, n = args[0], args[1], args[2], args[3], int(args[4])
        xffs = [arg] * n if mode == "fixed" else [ip(int(arg) + i) for i in range(n)]
        mon = Redis(rport)
        if mon.cmd("MONITOR") != "OK":
            die("MONITOR refused")
        statuses = get_many(url, xffs)
        time.sleep(0.3)          # let timers and settles run
        mon.sock.settimeout(0.3)
        client, script = {}, {}
        try:
            while True:
                line = mon.reply()
                # 1700000000.123456 [0 127.0.0.1:5678] "evalsha" ... / [0 lua] "get" ...
                try:
                    src = line.split("[", 1)[1].split("]", 1)[0].split(" ", 1)[1]
                    name = line.split('"', 2)[1].lower()
                except IndexError:
                    continue
                d = script if src == "lua" else client
                d[name] = d.get(name, 0) + 1
        except (socket.timeout, TimeoutError):
            pass
        st = {}
        for s in statuses:
            st[str(s)] = st.get(str(s), 0) + 1
        print(json.dumps({"requests": n, "client": client, "script": script, "status": st},
                         sort_keys=True))
        return 0

    if cmd == "reset":
        # reset RPORT [--stats-only] [--haproxy SOCKET TABLE]
        for port in args[0].split(","):
            r = Redis(port)
            if "--stats-only" not in args:
                r.cmd("FLUSHALL")
            r.cmd("CONFIG", "RESETSTAT")
        if "--haproxy" in args:
            i = args.index("--haproxy")
            return main([argv[0], "haproxy-clear", args[i + 1], args[i + 2]])
        return 0

    if cmd == "proc-snap":
        print(json.dumps(proc_ticks(args)))
        return 0

    if cmd == "cpu-snap":
        print("%.3f %d %d" % cpu_snapshot(args[0]))
        return 0

    if cmd == "haproxy-clear":
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(args[0])
        s.sendall(("clear table %s\n" % args[1]).encode())
        out = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            out += chunk
        if out.strip():
            die("haproxy: %s" % out.decode(errors="replace").strip())
        return 0

    if cmd == "record":
        wrk_out = open(args[0], errors="replace").read()
        rec, redis_port = {}, None
        rest = args[1:]
        i = 0
        while i < len(rest):
            if rest[i] == "--redis":
                redis_port = rest[i + 1]
                i += 2
                continue
            if rest[i] == "--cpu":
                # --cpu ROOTPID "WALL BUSY OURS" (a cpu-snap taken before the run)
                b = rest[i + 2].split()
                before = (float(b[0]), int(b[1]), int(b[2]))
                rec["foreign_cpu"] = foreign_cpu(before, cpu_snapshot(rest[i + 1]))
                i += 3
                continue
            if rest[i] == "--procs":
                # --procs SNAPSHOT NAME=PID ... (up to the next --option)
                before = json.loads(rest[i + 1])
                j = i + 2
                specs = []
                while j < len(rest) and not rest[j].startswith("--") and "=" in rest[j] \
                        and rest[j].split("=", 1)[0] in before:
                    specs.append(rest[j])
                    j += 1
                after = proc_ticks(specs)
                hz = os.sysconf("SC_CLK_TCK")
                rec.setdefault("cpu_s", {}).update(
                    {k: (after[k] - before[k]) / hz for k in after})
                i = j
                continue
            k, v = rest[i].split("=", 1)
            try:
                rec[k] = int(v)
            except ValueError:
                try:
                    rec[k] = float(v)
                except ValueError:
                    rec[k] = v
            i += 1
        lines = [l for l in wrk_out.splitlines() if l.startswith("BENCHJSON ")]
        if len(lines) != 1:
            die("wrk output has no BENCHJSON line (%s):\n%s" % (args[0], wrk_out[-2000:]))
        w = json.loads(lines[0][len("BENCHJSON "):])
        if w["requests"] <= 0 or w["duration_us"] <= 0:
            die("wrk made no requests (%s):\n%s" % (args[0], wrk_out[-2000:]))
        # Cross-check with wrk's own text.
        rps_text = None
        for l in wrk_out.splitlines():
            if l.startswith("Requests/sec:"):
                rps_text = float(l.split()[1])
        if rps_text is None:
            die("wrk output has no Requests/sec line (%s)" % args[0])
        rec["wrk"] = w
        rec["rps"] = w["requests"] * 1e6 / w["duration_us"]
        rec["rps_wrk"] = rps_text
        if redis_port:
            rec["redis_calls"] = cmdstats(redis_port)
        print(json.dumps(rec, sort_keys=True))
        fc = rec.get("foreign_cpu")
        sys.stderr.write("%.0f req/s%s\n" % (rec["rps"], "" if fc is None else
                         ", other processes %.0f%% of the CPU" % (100 * fc)))
        return 0

    die("unknown command %s" % cmd)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
