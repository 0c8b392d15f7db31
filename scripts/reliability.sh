#!/usr/bin/env bash
# Reload, worker kill and Redis restart under wrk load
# (tests/reliability/*.t, about 2 minutes; not part of scripts/test.sh).
#
#   scripts/reliability.sh [tests/reliability/FILE.t ...]
#
# Environment: PG_MODULE, PG_CTL, PG_NGINX as for the t/ suite (default:
# build/); PG_BUILD_DIR to take both from another build tree.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
command -v wrk >/dev/null || {
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get install -y -qq wrk >/dev/null
}
BUILD="${PG_BUILD_DIR:-$ROOT/build}"
export PG_MODULE="${PG_MODULE:-$BUILD/ngx_http_pairguard_module.so}"
export PG_CTL="${PG_CTL:-$BUILD/pairguardctl}"
[ -f "$PG_MODULE" ] || bash scripts/build.sh

files=("$@")
[ ${#files[@]} -gt 0 ] || files=(tests/reliability/*.t)
prove -v -I t/lib -I tests/reliability "${files[@]}"
