#!/usr/bin/env bash
# All tests: builds (installing what is missing), runs the core's unit tests,
# then the integration tests in t/ against a real nginx and redis-server.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

bash scripts/build.sh

echo "== unit tests"
"$ROOT/build/cmake/unit_tests" --gtest_brief=1

echo "== integration tests"
export PG_MODULE="$ROOT/build/ngx_http_pairguard_module.so"
prove -I t/lib -r t/ "$@"
