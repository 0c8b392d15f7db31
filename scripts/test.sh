#!/usr/bin/env bash
# All tests: builds (installing what is missing), runs the core's unit tests
# and every fuzz harness briefly, then the integration tests in t/ against a
# real nginx and redis-server (pairguardctl's tests, t/cli_*.t, and the
# demo's smoke test, t/demo_smoke.t, among them).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

# ---- reliability (issue 12): --sanitize runs the t/ suite under ASan+UBSan ----
if [ "${1:-}" = "--sanitize" ]; then
    shift
    exec bash scripts/sanitize.sh "$@"
fi
# ---- end reliability ----

bash scripts/build.sh

# ---- observability (issue 11): promtool and a Prometheus server for t/status_*.t ----
# (the tests run their own server on a loopback port)
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
    apt_install --no-recommends prometheus
fi
# ---- end observability ----

# another module's access handler for t/seam_access_module.t (access_by_lua)
if [ ! -f /usr/lib/nginx/modules/ngx_http_lua_module.so ]; then
    apt_install --no-recommends libnginx-mod-http-lua
fi

echo "== unit tests"
"$ROOT/build/cmake/unit_tests" --gtest_brief=1

# ---- reliability (issue 12): every fuzz harness briefly, so they keep compiling ----
echo "== fuzz harnesses (3 s each; scripts/fuzz.sh SECONDS for a real run)"
bash scripts/fuzz.sh 3 > "$ROOT/build/fuzz-brief.log" 2>&1 || { cat "$ROOT/build/fuzz-brief.log"; exit 1; }
tail -n +2 "$ROOT/build/fuzz/summary.txt"
# ---- end reliability ----

echo "== integration tests"
export PG_MODULE="$ROOT/build/ngx_http_pairguard_module.so"
prove -I t/lib -r t/ "$@"
