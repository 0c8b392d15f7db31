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
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
command -v wrk >/dev/null || apt_install wrk
use_build

files=("$@")
[ ${#files[@]} -gt 0 ] || files=(tests/reliability/*.t)
prove -v -I t/lib -I tests/reliability "${files[@]}"
