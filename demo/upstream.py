#!/usr/bin/env python3
"""Demo upstream for pairguard: seed 002's device-provisioning API.

Python 3 standard library only. It is the application pairguard protects in
the demo (scripts/run.sh) and in the integration tests (t/*.t):

  POST /api/provision/register   -> 201 {"pairing_code":"NNNNNN"}
       optional JSON body {"age": SECONDS} backdates the code (expiry tests),
       {"pairing_code": "NNNNNN"} chooses the code (tests with known codes)
  POST /api/provision/pair       {"pairing_code": ..., "name"?}  (JSON or form)
       400 missing code, 404 unknown code, 410 expired code,
       200 {"paired":true,"name":...} (the code is consumed)
  POST /api/login                {"username", "password"}  (JSON or form)
       200 {"user":...} when the password is the username + "-password"
       (alice / alice-password), else 401 {"error":"invalid_credentials"}
  ANY  /status/NNN               -> answers status NNN with a small JSON body
  ANY  /echo                     -> 200 {"method","path","headers","body"}
  GET  /__stats                  -> {"requests","by_path","by_status","pid"}
  POST /__reset                  -> zeroes the statistics

It never prints a pairing code; per-request logging only with --verbose.
"""

import argparse
import json
import os
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class State:
    """Pending codes and request statistics, shared by all handler threads."""

    def __init__(self, code_ttl):
        self.code_ttl = code_ttl
        self.lock = threading.Lock()
        self.codes = {}  # code -> creation time (time.time())
        self.reset_stats()

    def reset_stats(self):
        self.requests = 0
        self.by_path = {}
        self.by_status = {}

    def count(self, path, status):
        with self.lock:
            self.requests += 1
            self.by_path[path] = self.by_path.get(path, 0) + 1
            key = str(status)
            self.by_status[key] = self.by_status.get(key, 0) + 1

    def stats(self):
        with self.lock:
            return {
                "requests": self.requests,
                "by_path": dict(self.by_path),
                "by_status": dict(self.by_status),
                "pid": os.getpid(),
            }

    def register(self, age=0.0, code=None):
        with self.lock:
            if code is None:
                code = "%06d" % secrets.randbelow(1000000)
                while code in self.codes:
                    code = "%06d" % secrets.randbelow(1000000)
            self.codes[code] = time.time() - age
            return code

    def claim(self, code):
        """Returns 'unknown', 'expired' or 'ok' (and consumes the code)."""
        with self.lock:
            created = self.codes.get(code)
            if created is None:
                return "unknown"
            if time.time() - created > self.code_ttl:
                return "expired"
            del self.codes[code]
            return "ok"


def parse_body(content_type, raw):
    """JSON object or form fields; anything else gives an empty dict.

    Returns None when the body claims to be JSON and does not parse.
    """
    text = raw.decode("utf-8", "replace")
    ctype = (content_type or "").split(";")[0].strip().lower()
    looks_json = text.lstrip().startswith("{")
    if ctype == "application/x-www-form-urlencoded" and looks_json:
        # curl -d sends JSON as a form; be as lenient as a typical web app.
        try:
            value = json.loads(text)
            if isinstance(value, dict):
                return value
        except ValueError:
            pass
    if ctype == "application/json" or (not ctype and looks_json):
        if not text.strip():
            return {}
        try:
            value = json.loads(text)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None
    if ctype in ("application/x-www-form-urlencoded", ""):
        return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}
    return {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pairguard-demo-upstream"

    def version_string(self):
        return self.server_version

    # -- plumbing ---------------------------------------------------------

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("upstream: %s %s\n" % (self.address_string(), fmt % args))

    def read_body(self):
        length = self.headers.get("Content-Length")
        if length is not None:
            try:
                n = int(length)
            except ValueError:
                n = 0
            return self.rfile.read(n) if n > 0 else b""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                line = self.rfile.readline()
                if not line:
                    break
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return b""

    def reply(self, status, obj, count=True):
        body = b"" if status in (204, 304) or status < 200 else (json.dumps(obj) + "\n").encode()
        # counted before the answer leaves: a client that has its answer
        # and then asks /__reset or /__stats finds this request counted
        if count:
            self.server.state.count(self.path_only, status)
        self.send_response(status)
        if body:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    # -- dispatch ---------------------------------------------------------

    def handle_any(self):
        url = urlsplit(self.path)
        self.path_only = url.path
        body = self.read_body()
        state = self.server.state

        if url.path == "/__stats":
            return self.reply(200, state.stats(), count=False)
        if url.path == "/__reset":
            with state.lock:
                state.reset_stats()
            return self.reply(200, {"reset": True}, count=False)

        if self.server.delay:
            time.sleep(self.server.delay)

        if url.path.startswith("/status/"):
            try:
                code = int(url.path[len("/status/"):])
            except ValueError:
                code = 0
            if not 100 <= code <= 599 or code < 200:
                return self.reply(400, {"error": "bad status"})
            return self.reply(code, {"status": code})

        if url.path == "/echo":
            return self.reply(200, {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"),
            })

        if url.path == "/api/provision/register":
            if self.command != "POST":
                return self.reply(405, {"error": "method not allowed"})
            fields = parse_body(self.headers.get("Content-Type"), body) or {}
            try:
                age = float(fields.get("age", 0) or 0)
            except (TypeError, ValueError):
                age = 0.0
            wanted = fields.get("pairing_code")
            wanted = str(wanted) if wanted not in (None, "") else None
            code = state.register(age=age, code=wanted)
            return self.reply(201, {"pairing_code": code})

        if url.path == "/api/provision/pair":
            if self.command != "POST":
                return self.reply(405, {"error": "method not allowed"})
            fields = parse_body(self.headers.get("Content-Type"), body)
            if fields is None:
                return self.reply(400, {"error": "invalid body"})
            code = fields.get("pairing_code")
            if code in (None, ""):
                return self.reply(400, {"error": "pairing_code required"})
            result = state.claim(str(code))
            if result == "unknown":
                return self.reply(404, {"error": "unknown code"})
            if result == "expired":
                return self.reply(410, {"error": "code expired"})
            name = fields.get("name") or "Display"
            return self.reply(200, {"paired": True, "name": name})

        if url.path == "/api/login":
            # a stand-in for a real login: every user's password is
            # USERNAME-password
            if self.command != "POST":
                return self.reply(405, {"error": "method not allowed"})
            fields = parse_body(self.headers.get("Content-Type"), body)
            if fields is None:
                return self.reply(400, {"error": "invalid body"})
            user = str(fields.get("username") or "")
            if user and str(fields.get("password") or "") == user + "-password":
                return self.reply(200, {"user": user})
            return self.reply(401, {"error": "invalid_credentials"})

        return self.reply(404, {"error": "not found"})

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Burst tests open hundreds of connections at once: keep them all queued.
    request_queue_size = 1024


def main():
    ap = argparse.ArgumentParser(description="pairguard demo upstream (seed 002 provisioning API)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--code-ttl", type=float, default=900, help="seconds a pairing code stays claimable")
    ap.add_argument("--delay-ms", type=int, default=0, help="latency added to every request")
    ap.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = ap.parse_args()

    server = Server((args.host, args.port), Handler)
    server.state = State(args.code_ttl)
    server.delay = args.delay_ms / 1000.0
    server.verbose = args.verbose
    if args.verbose:
        sys.stderr.write("upstream: listening on %s:%d\n" % (args.host, args.port))
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
