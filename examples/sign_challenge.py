#!/usr/bin/env python3
"""Log in to `pairguard_auth challenge` / `verify` with a private key:
ask for a nonce, sign "pairguard-auth-v1\\n" HOST "\\n" USER "\\n" NONCE, and
trade the signature for a session token. Needs the `cryptography` package.

    examples/sign_challenge.py http://127.0.0.1:8080 alice alice.key [--host HOST]

alice.key: an Ed25519 or ECDSA P-256 private key in PEM, e.g. from
    openssl genpkey -algorithm ed25519 -out alice.key
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out alice.key
whose public half (openssl pkey -in alice.key -pubout -out alice.pem) was
given to `pairguardctl user add alice --pubkey alice.pem` or `key set`.

HOST is what nginx sees as $host: the Host header's name in lower case,
without the port. It defaults to the URL's host; pass --host when a proxy
in between changes it. Prints the session token on stdout.
"""
import base64
import json
import sys
import urllib.error
import urllib.parse
import urllib.request

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519


def post(url: str, body: dict):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def sign(key, message: bytes) -> bytes:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(message)                            # 64 bytes
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1":
        return key.sign(message, ec.ECDSA(hashes.SHA256()))  # DER, as required
    raise SystemExit("the key must be Ed25519 or ECDSA P-256")


def main() -> None:
    args = sys.argv[1:]
    host = None
    if "--host" in args:
        i = args.index("--host")
        host = args[i + 1]
        del args[i:i + 2]
    if len(args) != 3:
        raise SystemExit(f"usage: {sys.argv[0]} BASE_URL USER KEY.pem [--host HOST]")
    base, user, key_file = args[0].rstrip("/"), args[1], args[2]
    if host is None:
        host = urllib.parse.urlsplit(base).hostname  # lower case, no port
        if ":" in host:
            host = f"[{host}]"                       # an IPv6 literal, as nginx keeps it
    with open(key_file, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)

    status, answer = post(base + "/auth/challenge", {"user": user})
    if status != 200:
        raise SystemExit(f"challenge: {status} {answer}")
    nonce = answer["nonce"]  # base64 text, signed as text

    message = "\n".join(["pairguard-auth-v1", host, user, nonce]).encode("utf-8")
    signature = base64.b64encode(sign(key, message)).decode()

    status, answer = post(base + "/auth/verify", {"user": user, "signature": signature})
    if status != 200:
        raise SystemExit(f"verify: {status} {answer}")
    print(answer["token"])
    print(f"expires at {answer['expires_at']} (Unix time)", file=sys.stderr)


if __name__ == "__main__":
    main()
