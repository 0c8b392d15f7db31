#!/usr/bin/env bash
# Soak: mixed traffic for MINUTES (default 10) against one edge, with Redis
# blips, sampling worker RSS, open fds, Redis used_memory and keys every
# 10 s (tests/reliability/soak.pl). Not part of CI. The table is printed
# and written to PG_SOAK_TABLE (default build/soak.md).
#
#   scripts/soak.sh [MINUTES]
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
use_build
export PG_SOAK_MINUTES="${1:-10}"
export PG_SOAK_TABLE="${PG_SOAK_TABLE:-$BUILD/soak.md}"
perl -I t/lib -I tests/reliability tests/reliability/soak.pl
echo "soak.sh: table in $PG_SOAK_TABLE"
