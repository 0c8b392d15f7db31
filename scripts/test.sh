#!/usr/bin/env bash
# All tests: builds (installing what is missing), runs the core's unit tests,
# then the integration tests in t/ against a real nginx and redis-server
# (pairguardctl's tests among them, t/cli_*.t).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

# ---- reliability (issue 12): --sanitize runs the t/ suite under ASan+UBSan ----
if [ "${1:-}" = "--sanitize" ]; then
    shift
    exec bash scripts/sanitize.sh "$@"
fi
# ---- end reliability ----

bash scripts/build.sh

# ---- observability (issue 11): promtool and a Prometheus server for t/status_*.t ----
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
    echo "test.sh: installing prometheus (the tests run their own server on a loopback port)"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
# ---- end observability ----

echo "== unit tests"
"$ROOT/build/cmake/unit_tests" --gtest_brief=1

# ---- reliability (issue 12): every fuzz harness briefly, so they keep compiling ----
echo "== fuzz harnesses (3 s each; scripts/fuzz.sh SECONDS for a real run)"
bash scripts/fuzz.sh 3 > "$ROOT/build/fuzz-brief.log" 2>&1 || { cat "$ROOT/build/fuzz-brief.log"; exit 1; }
tail -n +2 "$ROOT/build/fuzz/summary.txt"
# ---- end reliability ----

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

echo "== demo (scripts/run.sh --check)"
demo_dir=$(mktemp -d)
trap 'rm -rf "$demo_dir"' EXIT
PG_RUN_DIR="$demo_dir" PG_SKIP_BUILD=1 PG_PORT=$(free_port) PG_REDIS_PORT=$(free_port) \
    PG_UPSTREAM_PORT=$(free_port) bash scripts/run.sh --check

echo "== integration tests"
export PG_MODULE="$ROOT/build/ngx_http_pairguard_module.so"
prove -I t/lib -r t/ "$@"
