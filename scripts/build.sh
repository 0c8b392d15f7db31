#!/usr/bin/env bash
# Builds build/ngx_http_pairguard_module.so, binary-compatible with Debian's
# nginx (from nginx-dev's source tree and its configure flags), and the core's
# unit tests. Installs missing Debian packages first. Safe to run repeatedly.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# PG_BUILD_DIR: another build tree (parallel work, sanitizer builds)
BUILD="${PG_BUILD_DIR:-$ROOT/build}"
NGX_SRC=/usr/share/nginx/src

# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
apt_install nginx-core nginx-dev libhiredis-dev libjansson-dev libssl-dev libargon2-dev \
    libgtest-dev cmake g++ make redis-server redis-tools redis-sentinel perl libio-socket-ssl-perl python3 python3-yaml

mkdir -p "$BUILD"

# The module: configure once (and again when config or the scripts change),
# then make only the modules target.
NGX_BUILD="$BUILD/nginx"
stamp="$NGX_BUILD/.pairguard-configured"
# PG_SANITIZE=1: the module with ASan and UBSan (scripts/sanitize.sh; nginx
# must then run with libasan preloaded). Use another PG_BUILD_DIR.
# Otherwise the hardening and optimisation Debian builds its nginx with
# (`nginx -V`: dpkg-buildflags' stack protector, FORTIFY_SOURCE, format
# checks, full RELRO and immediate binding); nginx-dev's conf_flags leave
# them out, which would give the module nginx's plain `-O`.
san_opts=(--with-cc-opt="-g -O2 -fstack-protector-strong -Wformat -Werror=format-security -fPIC -D_FORTIFY_SOURCE=2"
          --with-ld-opt="-Wl,-z,relro -Wl,-z,now -fPIC")
if [ "${PG_SANITIZE:-0}" = 1 ]; then
    san_opts=(--with-cc-opt="-g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined"
              --with-ld-opt="-fsanitize=address,undefined")
fi
inputs_sum=$( (cat "$ROOT/config" "$ROOT"/src/lua/*.lua "$ROOT/scripts/embed-lua.sh"; echo "${san_opts[*]}") \
    | sha1sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$inputs_sum" ]; then
    rm -rf "$NGX_BUILD"
    cp -r "$NGX_SRC" "$NGX_BUILD"
    (
        cd "$NGX_BUILD"
        # shellcheck disable=SC1091
        source ./conf_flags
        ./configure "${NGX_CONF_FLAGS[@]}" "${san_opts[@]}" --add-dynamic-module="$ROOT" > "$BUILD/configure.log" 2>&1 \
            || { tail -30 "$BUILD/configure.log"; exit 1; }
    )
    echo "$inputs_sum" > "$stamp"
fi
make -C "$NGX_BUILD" -f objs/Makefile modules -j"$(nproc)" > "$BUILD/make.log" 2>&1 \
    || { grep -E 'error:|Error [0-9]|undefined' "$BUILD/make.log" | head -40; exit 1; }
# a new file renamed into place: nginx processes (running tests) that have the
# old one mapped keep it; copying over it in place would crash them
cp "$NGX_BUILD/objs/ngx_http_pairguard_module.so" "$BUILD/ngx_http_pairguard_module.so.tmp.$$"
mv -f "$BUILD/ngx_http_pairguard_module.so.tmp.$$" "$BUILD/ngx_http_pairguard_module.so"

# The plain C++ core, its unit tests, the owner CLI and its test tool.
cmake -S "$ROOT" -B "$BUILD/cmake" -DCMAKE_BUILD_TYPE=RelWithDebInfo > "$BUILD/cmake.log" 2>&1 \
    || { tail -30 "$BUILD/cmake.log"; exit 1; }
cmake --build "$BUILD/cmake" -j"$(nproc)" > "$BUILD/cmake-build.log" 2>&1 \
    || { grep -E 'error|Error' "$BUILD/cmake-build.log" | head -40; exit 1; }
cp "$BUILD/cmake/pairguardctl" "$BUILD/pairguardctl"

echo "build.sh: built $BUILD/ngx_http_pairguard_module.so and $BUILD/pairguardctl"
