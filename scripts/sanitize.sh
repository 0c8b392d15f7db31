#!/usr/bin/env bash
# The integration suite (t/) against the module built with ASan and UBSan,
# loaded by Debian's own /usr/sbin/nginx with the ASan runtime preloaded.
# Fails on any sanitizer report (one file per report, in
# PG_BUILD_DIR/sanitizer-reports/), and, as always, on any [alert].
#
#   scripts/sanitize.sh [t/FILE.t ...]      # or: scripts/test.sh --sanitize
#
# Environment: PG_BUILD_DIR (default build-san). Leak detection is off:
# nginx does not free its pools at exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
export PG_BUILD_DIR="${PG_BUILD_DIR:-$ROOT/build-san}"
PG_SANITIZE=1 bash scripts/build.sh

libasan=$(gcc -print-file-name=libasan.so)
libasan=$(readlink -f "$libasan")
[ -f "$libasan" ] || die "no libasan ($libasan)"

reports="$PG_BUILD_DIR/sanitizer-reports"
rm -rf "$reports"
mkdir -p "$reports"

# nginx, as the tests start it, with the runtime preloaded; the options are
# read once by the master, its workers are forks of it.
wrapper="$PG_BUILD_DIR/nginx-asan"
cat > "$wrapper" <<EOF
#!/bin/sh
export LD_PRELOAD="$libasan"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:log_path=$reports/asan.\${PG_SAN_TEST:-nginx}:print_cmdline=1"
export UBSAN_OPTIONS="print_stacktrace=1:log_path=$reports/ubsan.\${PG_SAN_TEST:-nginx}"
exec /usr/sbin/nginx "\$@"
EOF
chmod +x "$wrapper"

export PG_NGINX="$wrapper"
export PG_MODULE="$PG_BUILD_DIR/ngx_http_pairguard_module.so"
export PG_CTL="$PG_BUILD_DIR/pairguardctl"

files=("$@")
[ ${#files[@]} -gt 0 ] || files=(t/*.t)

failed=()
for f in "${files[@]}"; do
    name=$(basename "$f" .t)
    before=$(ls "$reports" | wc -l)
    rc=0
    PG_SAN_TEST="$name" prove -I t/lib "$f" || rc=$?
    after=$(ls "$reports" | wc -l)
    if [ "$after" -gt "$before" ]; then
        echo "sanitize.sh: $f: sanitizer report(s):"
        ls "$reports"/*".$name".* 2>/dev/null | while read -r r; do
            echo "--- $r"
            head -40 "$r"
        done
        failed+=("$f (sanitizer)")
    elif [ "$rc" -ne 0 ]; then
        failed+=("$f (tests)")
    fi
done

echo "== sanitizer run: ${#files[@]} files, $(ls "$reports" | wc -l) report(s) in $reports"
if [ ${#failed[@]} -gt 0 ]; then
    printf 'sanitize.sh: failed: %s\n' "${failed[@]}"
    exit 1
fi
echo "sanitize.sh: no sanitizer report, no failure"
