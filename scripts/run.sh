#!/usr/bin/env bash
# Run the pairguard demo edge on this machine: Redis, the demo upstream
# (seed 002's provisioning API) and nginx with the module, all on 127.0.0.1.
#
#   scripts/run.sh           start everything, print how to try it, Ctrl-C stops
#   scripts/run.sh --check   the demo's smoke test, t/demo_smoke.t: runs this
#                            script on free ports, tries the guard, the
#                            pairing flow and a Redis stop, stops it; exit 0
#                            when it passed
#
# Stopping Redis (redis-cli -p PG_REDIS_PORT shutdown nosave) leaves the
# demo running: the edge keeps guarding with per-node counters
# (pairguard_store_down local).
#
# Environment:
#   PG_PORT=8080 PG_REDIS_PORT=6390 PG_UPSTREAM_PORT=8081   ports (127.0.0.1)
#   PG_RUN_DIR=run/         state: secret, logs, rendered nginx.conf
#   PG_RUN_CHECK=1          same as --check
#   PG_SKIP_BUILD=1         do not call scripts/build.sh (module already built)
#   PG_MODULE, PG_CTL, PG_NGINX   another module, pairguardctl or nginx
#                           (default: build/'s, and Debian's nginx)
#
# On a fresh Debian 12 it installs what is missing (nginx, redis-server,
# python3, curl) with apt, as root or through sudo.

# Functions called through traps and wait_for look unreachable to shellcheck.
# shellcheck disable=SC2317
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

PORT=${PG_PORT:-8080}
REDIS_PORT=${PG_REDIS_PORT:-6390}
UPSTREAM_PORT=${PG_UPSTREAM_PORT:-8081}
RUN_DIR=${PG_RUN_DIR:-$ROOT/run}
CHECK=${PG_RUN_CHECK:-0}
HOST=127.0.0.1
MODULE=${PG_MODULE:-$ROOT/build/ngx_http_pairguard_module.so}
CTL=${PG_CTL:-$ROOT/build/pairguardctl}
TEMPLATE=$ROOT/conf/demo.conf

usage() {
    awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "${BASH_SOURCE[0]}"
}

for arg in "$@"; do
    case $arg in
        --check) CHECK=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
    esac
done
[[ $CHECK == 1 ]] || CHECK=0

PG_SCRIPT=run.sh
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

# --check: the smoke test runs this script itself (without --check).
if ((CHECK)); then
    if [[ ${PG_SKIP_BUILD:-0} != 1 ]]; then
        say "building the module (scripts/build.sh)"
        "$ROOT/scripts/build.sh"
    fi
    cd "$ROOT"
    PG_MODULE=$MODULE PG_CTL=$CTL PG_RUN_CHECK=0 exec prove -I t/lib t/demo_smoke.t
fi

# --- 1. packages -------------------------------------------------------------

# The module is built against Debian's nginx, so the binary must be Debian's
# (have_debian_nginx, scripts/lib.sh).
install_missing() {
    local missing=()
    have_debian_nginx || missing+=(nginx-core)
    { command -v redis-server && command -v redis-cli; } >/dev/null 2>&1 \
        || missing+=(redis-server)
    command -v python3 >/dev/null 2>&1 || missing+=(python3)
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    ((${#missing[@]} == 0)) && return 0
    apt_install --no-recommends --verbose "${missing[@]}"
}

install_missing

NGINX=${PG_NGINX:-$(command -v nginx || true)}
[[ -n $NGINX ]] || NGINX=/usr/sbin/nginx
[[ -x $NGINX ]] || die "nginx not found (expected /usr/sbin/nginx)"
# Use the interpreter itself, not a wrapper, so that its pid is the one we stop.
PYTHON=$(python3 -c 'import sys; print(sys.executable)')

# --- 2. build ----------------------------------------------------------------

if [[ ${PG_SKIP_BUILD:-0} != 1 ]]; then
    say "building the module (scripts/build.sh)"
    "$ROOT/scripts/build.sh"
fi
[[ -f $MODULE ]] || die "$MODULE is missing: scripts/build.sh did not build it"
[[ -x $CTL ]] || die "$CTL is missing: scripts/build.sh did not build it"
[[ -f $ROOT/demo/upstream.py ]] || die "$ROOT/demo/upstream.py is missing"

# --- 3. ports ----------------------------------------------------------------

check_port() {   # NAME PORT ENV-VARIABLE
    local name=$1 port=$2 var=$3
    if ! [[ $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
        die "$name port '$port' is not a port number"
    fi
    port_free "$port" "$HOST" \
        || die "$name port $port on $HOST is taken (something listens on it); choose another with $var=PORT"
}

[[ $PORT != "$REDIS_PORT" && $PORT != "$UPSTREAM_PORT" && $REDIS_PORT != "$UPSTREAM_PORT" ]] \
    || die "ports must differ: edge $PORT, redis $REDIS_PORT, upstream $UPSTREAM_PORT"
check_port edge "$PORT" PG_PORT
check_port redis "$REDIS_PORT" PG_REDIS_PORT
check_port upstream "$UPSTREAM_PORT" PG_UPSTREAM_PORT

# --- 4. run directory and secret ---------------------------------------------

mkdir -p "$RUN_DIR"
RUN_DIR=$(cd "$RUN_DIR" && pwd)
SECRET_FILE=$RUN_DIR/pairguard.secret
NGX_PREFIX=$RUN_DIR/nginx
NGX_CONF=$NGX_PREFIX/nginx.conf
mkdir -p "$RUN_DIR/redis" "$NGX_PREFIX/tmp"/{body,proxy,fastcgi,uwsgi,scgi}

# 32 random bytes; the module takes the file byte for byte.
new_secret() {
    (umask 077 && head -c 32 /dev/urandom >"$SECRET_FILE")
}
if [[ ! -s $SECRET_FILE ]]; then
    say "creating $SECRET_FILE (32 random bytes)"
    new_secret
fi
chmod 600 "$SECRET_FILE"

# As root the nginx master drops its workers to www-data: they need only the
# temp directories (the master opens the logs and reads the secret).
if ((EUID == 0)); then
    NGX_USER=www-data
    id -u "$NGX_USER" >/dev/null 2>&1 || NGX_USER=nobody
    chown -R "$NGX_USER" "$NGX_PREFIX/tmp"
    USER_LINE="user $NGX_USER;"
else
    USER_LINE="# not started as root: the workers run as $(id -un)"
fi

# --- 5. render conf/demo.conf ------------------------------------------------

render() {
    local t
    t=$(<"$TEMPLATE")
    # Quoted replacements: no '&' expansion (bash 5.2 patsub_replacement).
    t=${t//@MODULE@/"$MODULE"}
    t=${t//@RUN_DIR@/"$RUN_DIR"}
    t=${t//@PORT@/"$PORT"}
    t=${t//@REDIS_PORT@/"$REDIS_PORT"}
    t=${t//@UPSTREAM_PORT@/"$UPSTREAM_PORT"}
    t=${t//@SECRET_FILE@/"$SECRET_FILE"}
    t=${t//@USER_LINE@/"$USER_LINE"}
    if [[ $t =~ @[A-Z_]+@ ]]; then
        die "conf/demo.conf: placeholder ${BASH_REMATCH[0]} has no value"
    fi
    printf '%s\n' "$t" >"$NGX_CONF"
}
render

if ! "$NGINX" -t -q -p "$NGX_PREFIX/" -c "$NGX_CONF" 2>"$RUN_DIR/nginx-t.log"; then
    cat "$RUN_DIR/nginx-t.log" >&2
    die "nginx -t failed for $NGX_CONF"
fi

# --- 6. start, and stop exactly what we started ------------------------------

REDIS_PID='' UPSTREAM_PID='' NGINX_PID=''
STOPPED=0

cleanup() {
    ((STOPPED)) && return 0
    STOPPED=1
    local running=()
    [[ -z $NGINX_PID ]] || running+=(nginx)
    [[ -z $UPSTREAM_PID ]] || running+=(upstream)
    [[ -z $REDIS_PID ]] || running+=(redis)
    if ((${#running[@]})); then
        say "stopping ${running[*]}"
    fi
    stop_pid "$NGINX_PID" 5 nginx
    stop_pid "$UPSTREAM_PID" 5 upstream
    stop_pid "$REDIS_PID" 5 redis
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

show_logs() {
    local f
    for f in "$RUN_DIR/redis/redis.log" "$RUN_DIR/upstream.log" \
             "$NGX_PREFIX/stderr.log" "$NGX_PREFIX/error.log"; do
        [[ -s $f ]] || continue
        echo "--- last lines of $f" >&2
        tail -n 20 "$f" >&2
    done
}

wait_for() {   # NAME PID COMMAND...
    local name=$1 pid=$2 i
    shift 2
    for ((i = 0; i < 150; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            show_logs
            die "$name exited during start-up"
        fi
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    show_logs
    die "$name did not answer within 15s"
}

redis_ping() { [[ $(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; }
http_ok()    { curl -fsS -o /dev/null --max-time 2 "$1"; }

# Fresh logs for each run, so that what is shown on a failure is this run's.
: >"$RUN_DIR/redis/redis.log"
: >"$NGX_PREFIX/error.log"
: >"$NGX_PREFIX/access.log"

say "starting redis on $HOST:$REDIS_PORT"
# No persistence: every run starts with no counters and no locks.
redis-server --bind "$HOST" --port "$REDIS_PORT" --protected-mode yes \
    --save '' --appendonly no --dir "$RUN_DIR/redis" \
    --daemonize no --logfile "$RUN_DIR/redis/redis.log" </dev/null &
REDIS_PID=$!
wait_for redis "$REDIS_PID" redis_ping

say "starting the demo upstream on $HOST:$UPSTREAM_PORT"
"$PYTHON" "$ROOT/demo/upstream.py" --host "$HOST" --port "$UPSTREAM_PORT" \
    </dev/null >"$RUN_DIR/upstream.log" 2>&1 &
UPSTREAM_PID=$!
wait_for upstream "$UPSTREAM_PID" http_ok "http://$HOST:$UPSTREAM_PORT/__stats"

say "starting nginx on $HOST:$PORT"
"$NGINX" -p "$NGX_PREFIX/" -c "$NGX_CONF" </dev/null >"$NGX_PREFIX/stderr.log" 2>&1 &
NGINX_PID=$!
wait_for nginx "$NGINX_PID" http_ok "http://$HOST:$PORT/echo"

EDGE=http://$HOST:$PORT

# --- 7. print how to try it, wait for Ctrl-C ---------------------------------

RC="redis-cli -p $REDIS_PORT"
cat <<EOF

pairguard demo is up (Ctrl-C stops it):
$(printf '  %-9s %-26s %s\n' \
    edge "$EDGE" "nginx pid $NGINX_PID (master + 2 workers)" \
    upstream "http://$HOST:$UPSTREAM_PORT" "demo/upstream.py pid $UPSTREAM_PID" \
    redis "$HOST:$REDIS_PORT" "redis-server pid $REDIS_PID")
  logs      $NGX_PREFIX/error.log
            $NGX_PREFIX/access.log

/api/provision/pair is guarded: 5 unknown codes (404) within 15 minutes lock
the client address and the code for 15 minutes.

1. Register a device; the upstream answers a 6-digit pairing code:
     curl -s -X POST $EDGE/api/provision/register

2. Guess wrong codes; the sixth is refused at the edge (429, Retry-After) and
   never reaches the upstream:
     for c in 000001 000002 000003 000004 000005 000006; do
       curl -s -o /dev/null -w "%{http_code} retry-after=%header{retry-after}\\n" \\
         -H 'Content-Type: application/json' \\
         -d "{\\"pairing_code\\":\\"\$c\\"}" $EDGE/api/provision/pair
     done
     curl -si -H 'Content-Type: application/json' \\
       -d '{"pairing_code":"000007"}' $EDGE/api/provision/pair

3. Pair with the right code (replace NNNNNN). From 127.0.0.1 it is refused
   while that address is locked; from another loopback address it pairs:
     curl -si -H 'Content-Type: application/json' \\
       -d '{"pairing_code":"NNNNNN","name":"Lobby"}' $EDGE/api/provision/pair
     curl -si --interface 127.0.0.2 -H 'Content-Type: application/json' \\
       -d '{"pairing_code":"NNNNNN","name":"Lobby"}' $EDGE/api/provision/pair

4. Look at the store: keys are HMACs, never an address or a code:
     $RC --scan --pattern 'pairguard:*'
     $RC get 'KEY'          # L|N|T|R|F: lock end, lockouts, last lockout, reservations, failures
     $RC pttl 'KEY'

5. Watch the decisions and the lockout notices:
     tail -f $NGX_PREFIX/access.log $NGX_PREFIX/error.log
     curl -s http://$HOST:$UPSTREAM_PORT/__stats      # what the upstream saw

The pairing flow (seeds 000/001): a chat user asks for a code, the owner
approves it with pairguardctl, the user's requests then pass /bot/.

6. Point pairguardctl at this demo's Redis and secret (owner's shell):
     export PATH=$ROOT/build:\$PATH
     export PAIRGUARD_REDIS=$HOST:$REDIS_PORT
     export PAIRGUARD_SECRET_FILE=$SECRET_FILE

7. A user (telegram id 4242) asks for a pairing code; asking again within
   10 minutes is refused (429 rate_limited):
     curl -s -H 'Content-Type: application/json' \\
       -d '{"platform":"telegram","user_id":"4242","user_name":"Alice"}' $EDGE/pairing/request
     {"code":"K7QW3MZP","expires_in":3600}

8. Until approved, the paired-only route refuses the user (403 not_paired):
     curl -si -H 'X-Platform: telegram' -H 'X-User-Id: 4242' $EDGE/bot/echo

9. The owner lists pending requests (ids, never codes) and approves the code
   the user tells them (any case; spaces and dashes are ignored):
     pairguardctl pending
     pairguardctl approve telegram k7qw-3mzp
   (or over HTTP, loopback only: curl -s $EDGE/pairing/admin/pending,
    curl -s -d '{"platform":"telegram","code":"K7QW3MZP"}' $EDGE/pairing/admin/approve)

10. The user now passes; the upstream sees X-Pairguard-User: 4242:
     curl -s -H 'X-Platform: telegram' -H 'X-User-Id: 4242' $EDGE/bot/echo
     pairguardctl approved

11. Revoke: refused again at once, on every worker:
     pairguardctl revoke telegram 4242
     curl -si -H 'X-Platform: telegram' -H 'X-User-Id: 4242' $EDGE/bot/echo

   Five wrong approvals lock the platform's approvals for an hour (even the
   right code): pairguardctl locks shows it, pairguardctl unlock --platform
   telegram lifts it.

Defending real users (README "Defending real users"): a login whose
account an attacker locks, while the user's browser (its device cookie)
still gets in; IPv6 clients counted per /64; every lock as an event.

12. Log in once (the demo's passwords are NAME-password): the success sets
    the device cookie pg_device. Then lock the account from elsewhere:
     curl -si -c jar -H 'Content-Type: application/json' \\
       -d '{"username":"alice","password":"alice-password"}' $EDGE/api/login
     for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{http_code} ' \\
       -H "X-Forwarded-For: 2001:db8:bad::\$i" -H 'Content-Type: application/json' \\
       -d '{"username":"alice","password":"guess"}' $EDGE/api/login; done

13. Without the cookie the right password gets 429; with it, 200:
     curl -s -H 'Content-Type: application/json' \\
       -d '{"username":"alice","password":"alice-password"}' $EDGE/api/login
     curl -s -b jar -H 'Content-Type: application/json' \\
       -d '{"username":"alice","password":"alice-password"}' $EDGE/api/login
     pairguardctl events; pairguardctl locks

14. Stop Redis to watch pairguard_store_down local at work; the demo keeps
    running:
     $RC shutdown nosave
   The edge logs "redis $HOST:$REDIS_PORT unavailable ..., store_down local"
   and keeps guarding /api/provision/pair with per-node counters in shared
   memory (step 2 still locks after 5 guesses, from a fresh address such as
   --interface 127.0.0.3). The pairing endpoints, /bot/ and pairguardctl need
   Redis: 503 store_unavailable, exit status 3. Start a Redis on the same
   port and the edge uses it again (it reconnects by itself):
     redis-server --bind $HOST --port $REDIS_PORT --save '' --appendonly no

Restarting scripts/run.sh starts with an empty Redis (no locks, no pairings).
EOF

# Stay up until Ctrl-C or until nginx or the upstream exits by itself. Redis
# may go away: that is step 14.
set +e
while true; do
    if [[ -n $REDIS_PID ]]; then
        wait -n "$REDIS_PID" "$UPSTREAM_PID" "$NGINX_PID"
    else
        wait -n "$UPSTREAM_PID" "$NGINX_PID"
    fi
    rc=$?
    if [[ -n $REDIS_PID ]] && ! kill -0 "$REDIS_PID" 2>/dev/null \
        && kill -0 "$UPSTREAM_PID" 2>/dev/null && kill -0 "$NGINX_PID" 2>/dev/null; then
        echo "run.sh: redis (pid $REDIS_PID) stopped (status $rc); the demo keeps running:" \
            "the edge guards with per-node counters (pairguard_store_down local)," \
            "pairing and pairguardctl answer store unavailable until a Redis listens on" \
            "$HOST:$REDIS_PORT again; Ctrl-C stops nginx and the upstream" >&2
        REDIS_PID=''
        continue
    fi
    break
done
set -e
for p in "redis:$REDIS_PID" "upstream:$UPSTREAM_PID" "nginx:$NGINX_PID"; do
    [[ -n ${p#*:} ]] || continue
    kill -0 "${p#*:}" 2>/dev/null || echo "run.sh: ${p%%:*} (pid ${p#*:}) exited (status $rc)" >&2
done
show_logs
exit 1
