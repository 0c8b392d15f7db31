# shellcheck shell=bash
# What the scripts share: messages, installing missing Debian packages,
# loopback ports, and stopping what a script started, by pid. Sourced:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Messages are prefixed with PG_SCRIPT (default: the script's file name).

PG_SCRIPT=${PG_SCRIPT:-$(basename "$0")}

say() { printf '==> %s\n' "$*"; }
die() { printf '%s: error: %s\n' "$PG_SCRIPT" "$*" >&2; exit 1; }

# Runs a command as root: directly, or through sudo.
as_root() {
    if ((EUID == 0)); then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

pkg_installed() {
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]
}

# Any flavour of Debian's nginx (modules are built against Debian's).
have_debian_nginx() {
    local p
    for p in nginx nginx-core nginx-full nginx-light nginx-extras; do
        pkg_installed "$p" && return 0
    done
    return 1
}

# The packages among PKG... that are not installed, one per line.
missing_pkgs() {
    local p
    for p in "$@"; do
        pkg_installed "$p" || printf '%s\n' "$p"
    done
}

# apt_install [--no-recommends] [--verbose] PKG...: installs those of PKG...
# that are missing (quietly, unless --verbose), as root or through sudo.
apt_install() {
    local opts=() quiet=1 missing
    while [[ ${1:-} == --* ]]; do
        case $1 in
            --no-recommends) opts+=(--no-install-recommends) ;;
            --verbose) quiet=0 ;;
            *) die "apt_install: unknown option $1" ;;
        esac
        shift
    done
    mapfile -t missing < <(missing_pkgs "$@")
    ((${#missing[@]})) || return 0
    echo "$PG_SCRIPT: installing ${missing[*]}"
    if ((quiet)); then
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${opts[@]}" "${missing[@]}" >/dev/null
    else
        as_root apt-get update
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${opts[@]}" "${missing[@]}"
    fi
}

# A free loopback port; free_port LO HI: one outside LO..HI.
free_port() {
    python3 - "${1:-0}" "${2:--1}" <<'EOF'
import socket, sys
lo, hi = int(sys.argv[1]), int(sys.argv[2])
while True:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    if not lo <= p <= hi:
        print(p); break
EOF
}

# True when nothing listens on HOST:PORT (a bind test, so that a listener on
# 0.0.0.0 counts too).
port_free() {   # PORT [HOST]
    python3 - "${2:-127.0.0.1}" "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind((sys.argv[1], int(sys.argv[2])))
except OSError:
    sys.exit(1)
EOF
}

# True when something accepts on 127.0.0.1:PORT.
port_open() {   # PORT
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Runs COMMAND every 0.1 s until it succeeds (true) or SECONDS pass (false).
wait_until() {   # SECONDS COMMAND...
    local tries=$(($1 * 10)) i
    shift
    for ((i = 0; i < tries; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

wait_port() {   # PORT [SECONDS]
    wait_until "${2:-10}" port_open "$1"
}

# Stops PID (a process this script started): SIGCONT (in case it was
# stopped), SIGTERM, up to SECONDS (5) to exit, then SIGKILL; reaps it.
stop_pid() {   # PID [SECONDS] [NAME]
    local pid=$1 secs=${2:-5} name=${3:-} i
    [[ -n $pid ]] || return 0
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -CONT "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < secs * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        [[ -z $name ]] || echo "$PG_SCRIPT: $name (pid $pid) did not stop in ${secs}s, killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# PG_MODULE and PG_CTL of the build tree (PG_BUILD_DIR, default build/),
# built first when the module is missing.
use_build() {
    local root
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    BUILD="${PG_BUILD_DIR:-$root/build}"
    export PG_MODULE="${PG_MODULE:-$BUILD/ngx_http_pairguard_module.so}"
    export PG_CTL="${PG_CTL:-$BUILD/pairguardctl}"
    [ -f "$PG_MODULE" ] || bash "$root/scripts/build.sh"
}
