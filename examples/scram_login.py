#!/usr/bin/env python3
"""Log in to a `pairguard_auth haystack` location with SCRAM-SHA-256 (the
Project Haystack exchange: HELLO, two SCRAM round trips), then call it with
the session token. Python 3 standard library only.

    examples/scram_login.py http://127.0.0.1:8080/api/about alice
    (the password is read from PAIRGUARD_PASSWORD, else prompted for)

Prints the session token on stdout; it works with `Authorization: Bearer
TOKEN` on `pairguard_auth_require` and `/auth/session` too.
"""
import base64
import getpass
import hashlib
import hmac
import os
import secrets
import sys
import urllib.error
import urllib.request


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def params(header: str) -> dict:
    """'SCRAM handshakeToken=T, hash=SHA-256, data=D' -> {name: value}"""
    _, _, rest = header.strip().partition(" ")
    out = {}
    for part in rest.split(","):
        name, _, value = part.strip().partition("=")
        out[name.strip().lower()] = value.strip()
    return out


def request(url: str, authorization: str):
    req = urllib.request.Request(url, headers={"Authorization": authorization})
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def scram_login(url: str, user: str, password: str) -> str:
    # 1. HELLO -> 401 WWW-Authenticate: SCRAM hash=SHA-256, handshakeToken=T1
    status, headers, _ = request(url, "HELLO username=" + b64url(user.encode()))
    if status != 401:
        raise SystemExit(f"HELLO: unexpected {status}")
    t1 = params(headers["WWW-Authenticate"])["handshaketoken"]

    # 2. client-first -> 401 with server-first (salt, iterations, nonce)
    #    (user names with ',' or '=' are escaped as =2C and =3D)
    name = user.replace("=", "=3D").replace(",", "=2C")
    cnonce = b64url(secrets.token_bytes(18))
    first_bare = f"n={name},r={cnonce}"
    status, headers, _ = request(
        url, f"SCRAM handshakeToken={t1}, data=" + b64url(("n,," + first_bare).encode()))
    if status != 401:
        raise SystemExit(f"client-first: refused ({status})")
    p = params(headers["WWW-Authenticate"])
    t2 = p["handshaketoken"]
    server_first = unb64url(p["data"]).decode()
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    nonce, salt, iterations = attrs["r"], base64.b64decode(attrs["s"]), int(attrs["i"])
    if not nonce.startswith(cnonce):
        raise SystemExit("server nonce does not extend ours")

    # 3. client-final with the proof -> 200 Authentication-Info: authToken=..., data=...
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    final_bare = "c=" + base64.b64encode(b"n,,").decode() + ",r=" + nonce
    auth_message = ",".join([first_bare, server_first, final_bare]).encode()
    signature = hmac.digest(stored_key, auth_message, "sha256")
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    client_final = final_bare + ",p=" + base64.b64encode(proof).decode()
    status, headers, _ = request(url, f"SCRAM handshakeToken={t2}, data=" + b64url(client_final.encode()))
    if status != 200:
        raise SystemExit(f"login refused ({status})")
    info = params("x " + headers["Authentication-Info"])

    # the server proves it knows the credentials too
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    expected = "v=" + base64.b64encode(hmac.digest(server_key, auth_message, "sha256")).decode()
    if unb64url(info["data"]).decode() != expected:
        raise SystemExit("the server's signature is wrong: not this server")
    return info["authtoken"]


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(f"usage: {sys.argv[0]} URL USER")
    url, user = sys.argv[1], sys.argv[2]
    password = os.environ.get("PAIRGUARD_PASSWORD") or getpass.getpass(f"password for {user}: ")
    token = scram_login(url, user, password)
    print(token)
    # a later request: BEARER authToken=TOKEN, forwarded to the application
    status, _, body = request(url, "BEARER authToken=" + token)
    print(f"GET {url} with the token: {status} {body[:200]!r}", file=sys.stderr)


if __name__ == "__main__":
    main()
