#!/usr/bin/env bash
# Benchmark pairguard against its peers, all in front of the same upstream.
#
#   scripts/bench.sh           full run (3 rounds x 3 s per measurement, about 20 min)
#   scripts/bench.sh --quick   1 round x 2 s, to check the script (writes quick.*)
#
# Contenders, each its own nginx (or haproxy) with one worker, all proxying to
# one upstream nginx (one worker, fixed 200/404 answers):
#   plain      proxy_pass only (the ceiling)
#   limitreq   nginx limit_req per client address, never triggering
#   lua        access_by_lua GET + log_by_lua timer EVALSHA on Redis (bench/lua/)
#   haproxy    stick table counting 401/403/404 per source, 429 at 5
#   pairguard  pairguard_policy ip key=$remote_addr max_failures=5 window=15m lockout=15m
# and, in scenario r only, the same pairguard config with its Redis elsewhere:
#   pg_tls      a TLS-only redis-server (--port 0 --tls-port P, no client
#               certificates; a throwaway CA and server certificate made with
#               openssl in the work directory): tls tls_trusted_certificate=CA
#   pg_cluster  a 3-master Redis Cluster (three redis-server --cluster-enabled
#               yes, joined with redis-cli --cluster create, replicas 0):
#               pairguard_redis cluster=the three masters
# Scenarios, measured interleaved (every round runs every contender):
#   a  allowed traffic, a distinct client address per request, upstream 200
#   b  one locked client hammering (locked first with 5 failures), expect 429
#   c  distributed guessing, a distinct address per request, upstream 404
#   d  pairguard only: Redis stopped / hung (SIGSTOP) under load, for each
#      pairguard_store_down mode; guarded and unguarded route of one nginx
#   s  scenario a with 1, 2 and 3 stacked policies (pairguard, pg_stack2,
#      pg_stack3) against plain proxy_pass
#   w  scenario a with 1 and 2 nginx workers (plain, lua, pairguard and their
#      *_w2 twins)
#   v  scenario a with a trusted-device cookie on every request (pg_device:
#      the pairguard policy with device_cookie, a valid token per address
#      minted by benchtool.py mint-devices) against pairguard and plain
#   r  scenario a against each Redis deployment: pairguard (one Redis, plain
#      TCP), pg_tls and pg_cluster, against plain proxy_pass; the Redis CPU of
#      pg_cluster is the sum over the three nodes, its Redis commands too
# plus Redis commands per request, Redis script calls per request, guard
# operations per batch, CPU µs per request split into edge (the contender's
# processes), Redis, upstream and wrk (/proc utime+stime over each
# measurement), user-space instructions per request (perf stat, when the
# machine has hardware counters), Redis bytes per tracked key, and a burst of
# 200 concurrent failing requests of one address, at one node and spread over
# two pairguard nodes (how many reach the upstream).
#
# Results: bench/results/latest.{md,json,png} (--quick: quick.*); the table is
# printed at the end.
#
# Environment:
#   PG_BENCH_ROUNDS=3        rounds (medians over rounds)
#   PG_BENCH_SECONDS=3       seconds per saturating measurement
#   PG_BENCH_LAT_SECONDS=2   seconds per fixed-load (wrk -c4) measurement
#   PG_BENCH_D_SECONDS=3     seconds per scenario-d measurement
#   PG_BENCH_CONNS=50        wrk connections for the saturating measurements
#   PG_BENCH_MEM_KEYS=20000  addresses for the bytes-per-key step
#   PG_BENCH_RETRIES=2       re-measure when other processes took > 10% of the
#   PG_BENCH_RETRY_BUDGET=60   CPU during a measurement (seconds for all retries)
#   PG_BENCH_KEEP=1          keep the work directory (configs, logs) afterwards
#   PG_SKIP_BUILD=1          do not run scripts/build.sh
#   PG_BUILD_DIR=DIR         build directory (scripts/build.sh's; default build/):
#                            the module and pairguardctl are taken from there
#   PG_BENCH_SRC=DIR         source tree to build and to name in the results
#                            (default: this one; e.g. a git worktree of HEAD)
#
# Only loopback addresses and free ports; stops exactly what it started.

# Functions run from traps look unreachable to shellcheck.
# shellcheck disable=SC2317
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
RESULTS=$BENCH/results
TOOL=(python3 "$BENCH/tools/benchtool.py")
WRK_LUA=$BENCH/wrk/load.lua
T_START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

QUICK=0
for arg in "$@"; do
    case $arg in
        --quick) QUICK=1 ;;
        -h|--help) awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "bench.sh: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

if ((QUICK)); then
    ROUNDS=${PG_BENCH_ROUNDS:-1}; SECS=${PG_BENCH_SECONDS:-2}; LAT_SECS=${PG_BENCH_LAT_SECONDS:-2}
    D_SECS=${PG_BENCH_D_SECONDS:-2}; MEM_KEYS=${PG_BENCH_MEM_KEYS:-5000}; MEM_SECS=2
    OUT_NAME=quick
else
    ROUNDS=${PG_BENCH_ROUNDS:-3}; SECS=${PG_BENCH_SECONDS:-3}; LAT_SECS=${PG_BENCH_LAT_SECONDS:-2}
    D_SECS=${PG_BENCH_D_SECONDS:-3}; MEM_KEYS=${PG_BENCH_MEM_KEYS:-20000}; MEM_SECS=4
    OUT_NAME=latest
fi
CONNS=${PG_BENCH_CONNS:-50}
# Re-measure when other processes took more than this share of the machine's
# CPU during a measurement (at most MAX_RETRIES times, RETRY_BUDGET s in all).
FOREIGN_LIMIT=0.10
MAX_RETRIES=${PG_BENCH_RETRIES:-2}
RETRY_BUDGET=${PG_BENCH_RETRY_BUDGET:-$((QUICK ? 20 : 60))}
LAT_CONNS=4
D_CONNS=$(( CONNS / 2 > 1 ? CONNS / 2 : 1 ))
BURST_N=200
SAMPLE_N=200
for v in MAX_RETRIES RETRY_BUDGET; do
    [[ ${!v} =~ ^[0-9]+$ ]] || { echo "bench.sh: $v must be a number (got '${!v}')" >&2; exit 2; }
done
for v in ROUNDS SECS LAT_SECS D_SECS CONNS MEM_KEYS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: $v must be a positive integer (got '${!v}')" >&2; exit 2; }
done

# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
# (lib.sh's say, with the time since the start)
say()  { printf '==> [%3d s] %s\n' "$(($(date +%s) - T_START))" "$*"; }

# --- 1. packages and build ---------------------------------------------------

need_pkgs=(redis-server redis-tools wrk libnginx-mod-http-lua lua-nginx-redis haproxy gnuplot-nox python3 curl openssl)
# Any Debian nginx flavour will do instead of nginx-core.
have_debian_nginx || need_pkgs+=(nginx-core)
apt_install --no-recommends "${need_pkgs[@]}"

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x $NGINX ]] || die "nginx not found"
for m in ndk_http_module ngx_http_lua_module; do
    [[ -f /usr/lib/nginx/modules/$m.so ]] || die "/usr/lib/nginx/modules/$m.so is missing (libnginx-mod-http-lua)"
done
[[ -f /usr/share/lua/5.1/nginx/redis.lua ]] || die "/usr/share/lua/5.1/nginx/redis.lua is missing (lua-nginx-redis)"

SRC=$(cd "${PG_BENCH_SRC:-$ROOT}" && pwd)
BUILD=${PG_BUILD_DIR:-$SRC/build}
export PG_BUILD_DIR=$BUILD
if [[ ${PG_SKIP_BUILD:-0} != 1 ]]; then
    say "building the module ($SRC/scripts/build.sh into $BUILD)"
    bash "$SRC/scripts/build.sh"
fi
[[ -f $BUILD/ngx_http_pairguard_module.so ]] || die "$BUILD/ngx_http_pairguard_module.so is missing"
[[ -x $BUILD/pairguardctl ]] || die "$BUILD/pairguardctl is missing"
PGCTL=$BUILD/pairguardctl

# --- 2. work directory, ports, configs ---------------------------------------

WORK=$(mktemp -d /tmp/pairguard-bench.XXXXXX)
chmod 755 "$WORK"
RAW=$WORK/raw.jsonl
ODD=$WORK/odd.txt
: >"$RAW"; : >"$ODD"
odd() { printf '%s\n' "$*" >>"$ODD"; printf 'bench.sh: note: %s\n' "$*" >&2; }

PIDS=()        # every process we started, in start order
REDIS_PID=''
TLS_REDIS_PID=''   # scenario r: the TLS redis-server
CLUSTER_PIDS=()    # scenario r: the three cluster nodes

FAILED=1

# Forget a pid once it has been waited for, so that cleanup never signals a
# number the system may have given to someone else's process since.
forget_pid() {
    local keep=() p
    for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

cleanup() {
    local i
    # Everything but the Redis servers first (newest first), then they, so
    # that the guards do not log a Redis outage while shutting down.
    local redises=" $REDIS_PID $TLS_REDIS_PID ${CLUSTER_PIDS[*]} "
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        [[ $redises == *" ${PIDS[i]} "* ]] || stop_pid "${PIDS[i]}"
    done
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        [[ $redises != *" ${PIDS[i]} "* ]] || stop_pid "${PIDS[i]}"
    done
    wait 2>/dev/null || true
    if [[ ${PG_BENCH_KEEP:-0} == 1 || $FAILED == 1 ]]; then
        echo "bench.sh: work directory kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The module is copied, so that a rebuild during the run cannot touch the
# file the running nginx has mapped.
cp "$BUILD/ngx_http_pairguard_module.so" "$WORK/"
(umask 077 && head -c 32 /dev/urandom >"$WORK/pairguard.secret")
mkdir -p "$WORK"/tmp/{body,proxy,fastcgi,uwsgi,scgi} "$WORK/redis" "$WORK/redis-tls" \
    "$WORK"/redis-cluster/{1,2,3}
if ((EUID == 0)); then
    NGX_USER=www-data
    id -u "$NGX_USER" >/dev/null 2>&1 || NGX_USER=nobody
    chown -R "$NGX_USER" "$WORK/tmp"
    USER_LINE="user $NGX_USER;"
else
    USER_LINE=""
fi

CONTENDERS=(plain limitreq lua haproxy pairguard)
# Scenario s: stacked policies; scenario w: two workers.
STACKED=(plain pairguard pg_stack2 pg_stack3)
SCALING=(plain lua pairguard plain_w2 lua_w2 pairguard_w2)
DEVICES=(plain pairguard pg_device)
# Scenario r: one Redis, TLS, Redis Cluster.
DEPLOYS=(plain pairguard pg_tls pg_cluster)
GUARDED=" lua haproxy pairguard pg_stack2 pg_stack3 lua_w2 pairguard_w2 pg_device pg_tls pg_cluster "
INSTANCES=(upstream "${CONTENDERS[@]}" pg_local pg_deny pg_allow pg_stack2 pg_stack3 pg_device
           plain_w2 lua_w2 pairguard_w2 pg_tls pg_cluster cg_plain cg_lua cg_pairguard)
# One more port each for Redis and the TLS Redis, and six for the cluster:
# three client ports and their three cluster-bus ports (--cluster-port; the
# default, port + 10000, may not exist or be taken).
read -r -a ports <<<"$("${TOOL[@]}" ports $((${#INSTANCES[@]} + 8)))"
declare -A PORT
for i in "${!INSTANCES[@]}"; do PORT[${INSTANCES[i]}]=${ports[i]}; done
n=${#INSTANCES[@]}
REDIS_PORT=${ports[n]}
TLS_REDIS_PORT=${ports[n + 1]}
CLUSTER_PORTS=("${ports[n + 2]}" "${ports[n + 3]}" "${ports[n + 4]}")
CLUSTER_BUS_PORTS=("${ports[n + 5]}" "${ports[n + 6]}" "${ports[n + 7]}")
CLUSTER_SPEC=$(IFS=,; echo "${CLUSTER_PORTS[*]}")

# Scenario r's TLS Redis: a throwaway CA and a server certificate for
# 127.0.0.1 (an IP SAN, so that the module checks it with tls_verify=on).
TLS_DIR=$WORK/redis-tls
(
    cd "$TLS_DIR"
    umask 077
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj '/CN=pairguard bench CA' -keyout ca.key -out ca.crt
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj '/CN=127.0.0.1' -keyout redis.key -out redis.csr
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >redis.ext
    openssl x509 -req -in redis.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
        -extfile redis.ext -out redis.crt
    chmod 644 ca.crt
) >"$WORK/openssl.log" 2>&1 || { cat "$WORK/openssl.log" >&2; die "openssl could not make the TLS Redis certificates"; }

render() {   # TEMPLATE KEY=VALUE... -> stdout
    local tmpl=$1 t k v kv
    t=$(<"$tmpl"); shift
    for kv in "$@"; do
        k=${kv%%=*}; v=${kv#*=}
        t=${t//@"$k"@/"$v"}
    done
    if [[ $t =~ @[A-Z_]+@ ]]; then
        die "$tmpl: placeholder ${BASH_REMATCH[0]} has no value"
    fi
    printf '%s\n' "$t"
}

render "$BENCH/conf/common.conf.in" WORK="$WORK" UPSTREAM_PORT="${PORT[upstream]}" >"$WORK/common.conf"

nginx_conf() {   # NAME TEMPLATE LOAD_MODULES [EXTRA KEY=VALUE...] (WORKERS=N: env)
    local name=$1 tmpl=$2 mods=$3 dir=$WORK/$1
    shift 3
    mkdir -p "$dir"
    {
        render "$BENCH/conf/main.conf.in" LOAD_MODULES="$mods" USER_LINE="$USER_LINE" \
            DIR="$dir" ERROR_LEVEL=notice WORKERS="${WORKERS:-1}"
        render "$BENCH/conf/$tmpl" WORK="$WORK" BENCH="$BENCH" DIR="$dir" PORT="${PORT[$name]}" \
            UPSTREAM_PORT="${PORT[upstream]}" REDIS_PORT="$REDIS_PORT" \
            REDIS="${REDIS:-127.0.0.1:$REDIS_PORT}" "$@"
    } >"$dir/nginx.conf"
    "$NGINX" -t -q -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" 2>"$dir/nginx-t.log" \
        || { cat "$dir/nginx-t.log" >&2; die "nginx -t failed for $dir/nginx.conf"; }
}

LUA_MODS="load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;"
PG_MOD="load_module $WORK/ngx_http_pairguard_module.so;"
nginx_conf upstream upstream.conf.in ""
nginx_conf plain plain.conf.in ""
nginx_conf limitreq limitreq.conf.in ""
nginx_conf lua lua.conf.in "$LUA_MODS"
nginx_conf pairguard pairguard.conf.in "$PG_MOD" STORE_DOWN=local SLOW_LOG=""
# Scenario d: one more nginx per store_down mode, logging guarded requests
# that took 50 ms or more (the count wrk's corrected latencies cannot give).
for mode in local deny allow; do
    nginx_conf "pg_$mode" pairguard.conf.in "$PG_MOD" STORE_DOWN="$mode" \
        SLOW_LOG="access_log $WORK/pg_$mode/slow.log combined if=\$pg_bench_slow;"
done
# Scenario s: 2 and 3 policies on one location (each its own Redis key).
nginx_conf pg_stack2 pairguard_stack.conf.in "$PG_MOD" GUARDS="pairguard ip; pairguard ip2;"
nginx_conf pg_stack3 pairguard_stack.conf.in "$PG_MOD" GUARDS="pairguard ip; pairguard ip2; pairguard ip3;"
# Scenario v: the pairguard policy with trusted devices.
nginx_conf pg_device pairguard_device.conf.in "$PG_MOD"
# Scenario r: the pairguard contender's config against the TLS Redis and the
# Redis Cluster (REDIS: what follows pairguard_redis).
REDIS="127.0.0.1:$TLS_REDIS_PORT tls tls_trusted_certificate=$TLS_DIR/ca.crt" \
    nginx_conf pg_tls pairguard.conf.in "$PG_MOD" STORE_DOWN=local SLOW_LOG=""
REDIS="cluster=127.0.0.1:${CLUSTER_PORTS[0]},127.0.0.1:${CLUSTER_PORTS[1]},127.0.0.1:${CLUSTER_PORTS[2]}" \
    nginx_conf pg_cluster pairguard.conf.in "$PG_MOD" STORE_DOWN=local SLOW_LOG=""
# Scenario w: the same contenders with two workers.
WORKERS=2 nginx_conf plain_w2 plain.conf.in ""
WORKERS=2 nginx_conf lua_w2 lua.conf.in "$LUA_MODS"
WORKERS=2 nginx_conf pairguard_w2 pairguard.conf.in "$PG_MOD" STORE_DOWN=local SLOW_LOG=""
mkdir -p "$WORK/haproxy"
render "$BENCH/conf/haproxy.cfg.in" DIR="$WORK/haproxy" PORT="${PORT[haproxy]}" \
    UPSTREAM_PORT="${PORT[upstream]}" >"$WORK/haproxy/haproxy.cfg"
haproxy -c -q -f "$WORK/haproxy/haproxy.cfg" >"$WORK/haproxy/check.log" 2>&1 \
    || { cat "$WORK/haproxy/check.log" >&2; die "haproxy -c failed"; }

# --- 3. start everything -----------------------------------------------------

wait_up() {   # NAME PORT PID LOG
    if ! "${TOOL[@]}" wait-port "$2" 10; then
        tail -20 "$4" >&2 2>/dev/null || true
        die "$1 did not accept on 127.0.0.1:$2"
    fi
    kill -0 "$3" 2>/dev/null || { tail -20 "$4" >&2; die "$1 exited"; }
}

start_redis() {
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$WORK/redis" --logfile "$WORK/redis/redis.log" --daemonize no &
    REDIS_PID=$!
    PIDS+=("$REDIS_PID")

    wait_up redis "$REDIS_PORT" "$REDIS_PID" "$WORK/redis/redis.log"
}

# Scenario r's Redis servers: TLS only (no plain port), and three cluster
# masters joined into one cluster (every slot covered, no replicas).
start_tls_redis() {
    redis-server --port 0 --tls-port "$TLS_REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --tls-cert-file "$TLS_DIR/redis.crt" --tls-key-file "$TLS_DIR/redis.key" \
        --tls-ca-cert-file "$TLS_DIR/ca.crt" --tls-auth-clients no \
        --dir "$TLS_DIR" --logfile "$TLS_DIR/redis.log" --daemonize no &
    TLS_REDIS_PID=$!
    PIDS+=("$TLS_REDIS_PID")
    wait_up "TLS redis" "$TLS_REDIS_PORT" "$TLS_REDIS_PID" "$TLS_DIR/redis.log"
}

start_cluster() {
    local i d nodes=() ok
    for i in 0 1 2; do
        d=$WORK/redis-cluster/$((i + 1))
        redis-server --port "${CLUSTER_PORTS[i]}" --cluster-port "${CLUSTER_BUS_PORTS[i]}" \
            --bind 127.0.0.1 --cluster-enabled yes --cluster-config-file "$d/nodes.conf" \
            --save '' --appendonly no --dir "$d" --logfile "$d/redis.log" --daemonize no &
        CLUSTER_PIDS+=("$!")
        PIDS+=("$!")
        nodes+=("127.0.0.1:${CLUSTER_PORTS[i]}")
    done
    for i in 0 1 2; do
        wait_up "cluster node $((i + 1))" "${CLUSTER_PORTS[i]}" "${CLUSTER_PIDS[i]}" \
            "$WORK/redis-cluster/$((i + 1))/redis.log"
    done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes \
        >"$WORK/redis-cluster/create.log" 2>&1 \
        || { cat "$WORK/redis-cluster/create.log" >&2; die "redis-cli --cluster create failed"; }
    for ((i = 0; i < 100; i++)); do   # until every node says cluster_state:ok
        ok=0
        for p in "${CLUSTER_PORTS[@]}"; do
            [[ $(redis-cli -p "$p" CLUSTER INFO 2>/dev/null) == *cluster_state:ok* ]] && ok=$((ok + 1))
        done
        ((ok == 3)) && return 0
        sleep 0.1
    done
    die "the Redis Cluster on ${nodes[*]} did not reach cluster_state:ok in 10 s"
}

stop_redis() {
    stop_pid "$REDIS_PID"
    wait "$REDIS_PID" 2>/dev/null || true
    forget_pid "$REDIS_PID"
    REDIS_PID=''
}

declare -A MAINPID   # instance -> its master (or haproxy) pid
start_nginx() {   # NAME
    local dir=$WORK/$1
    "$NGINX" -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" &
    PIDS+=("$!")
    MAINPID[$1]=$!
    wait_up "$1" "${PORT[$1]}" "$!" "$dir/error.log"
}

say "work directory $WORK; redis :$REDIS_PORT, TLS redis :$TLS_REDIS_PORT, cluster :${CLUSTER_SPEC//,/ :}, upstream :${PORT[upstream]}"
start_redis
start_tls_redis
start_cluster
start_nginx upstream
for c in plain limitreq lua pairguard pg_local pg_deny pg_allow pg_stack2 pg_stack3 pg_device \
         plain_w2 lua_w2 pairguard_w2 pg_tls pg_cluster; do
    start_nginx "$c"
done
haproxy -db -f "$WORK/haproxy/haproxy.cfg" >"$WORK/haproxy/haproxy.log" 2>&1 &
PIDS+=("$!")
MAINPID[haproxy]=$!
wait_up haproxy "${PORT[haproxy]}" "$!" "$WORK/haproxy/haproxy.log"

url() { echo "http://127.0.0.1:${PORT[$1]}"; }
rcmd() { "${TOOL[@]}" redis "$REDIS_PORT" "$@" >/dev/null; }

# Every contender answers 200 on /ok and 404 on /fail through the upstream.
# (a failing address of its own for each, as they share policy keys in Redis)
i=0
for c in "${CONTENDERS[@]}" pg_local pg_deny pg_allow pg_stack2 pg_stack3 pg_device plain_w2 lua_w2 pairguard_w2 \
         pg_tls pg_cluster; do
    i=$((i + 1))
    got=$("${TOOL[@]}" get "$(url "$c")/ok" 203.0.113.7)
    [[ $got == 200 ]] || die "$c: GET /ok answered $got, not 200"
    got=$("${TOOL[@]}" get "$(url "$c")/fail" "203.0.113.$((100 + i))")
    [[ $got == 404 ]] || die "$c: GET /fail answered $got, not 404"
done
rcmd FLUSHALL
"${TOOL[@]}" reset "tls:$TLS_REDIS_PORT,$CLUSTER_SPEC"

# --- 4. measurements -----------------------------------------------------------

is_guarded() { [[ $GUARDED == *" $1 "* ]]; }

# The Redis a contender uses: benchtool's ports (tls:PORT; a list for the
# cluster) and the pids whose CPU counts as Redis'.
redis_ports() {   # CONTENDER
    case $1 in
        pg_tls) echo "tls:$TLS_REDIS_PORT" ;;
        pg_cluster) echo "$CLUSTER_SPEC" ;;
        *) echo "$REDIS_PORT" ;;
    esac
}
redis_pids() {   # CONTENDER
    case $1 in
        pg_tls) echo "$TLS_REDIS_PID" ;;
        pg_cluster) (IFS=,; echo "${CLUSTER_PIDS[*]}") ;;
        *) echo "$REDIS_PID" ;;
    esac
}

reset_state() {   # [PORTS]: flush Redis and its statistics, clear the HAProxy table
    "${TOOL[@]}" reset "${1:-$REDIS_PORT}" --haproxy "$WORK/haproxy/admin.sock" fe
}

lock_client() {   # CONTENDER ADDRESS: 5 failures, then the 6th must be refused
    local c=$1 a=$2 got i
    is_guarded "$c" || return 0
    got=$("${TOOL[@]}" get "$(url "$c")/fail" "$a" 5)
    [[ $got == "404 404 404 404 404" ]] || odd "$c: locking $a: the 5 failures were answered '$got'"
    for ((i = 0; i < 20; i++)); do   # the lua peer records from a timer
        got=$("${TOOL[@]}" get "$(url "$c")/fail" "$a")
        [[ $got == 429 ]] && return 0
        sleep 0.05
    done
    odd "$c: $a not locked after 5 failures (answer $got)"
}

run_wrk() {   # OUT CONNS SECONDS URL PATH MODE ARG [STOP]; wrk's CPU seconds in OUT.cpu
    local out=$1 conns=$2 secs=$3 u=$4 rc=0 TIMEFORMAT='%3U %3S'
    shift 4
    { time wrk -t1 -c"$conns" -d"${secs}s" --timeout 5s --latency -s "$WRK_LUA" "$u" -- "$@" \
        >"$out" 2>&1 || rc=$?; } 2>"$out.time"
    if ((rc)); then
        cat "$out" >&2
        die "wrk failed ($u $*)"
    fi
    awk '{ print $1 + $2 }' "$out.time" >"$out.cpu"
}

MEASURE_N=0
RETRY_SPENT=0
RETRIES=0
# One wrk run against one contender. PREP (flush: FLUSHALL and clear the
# HAProxy table; stats: keep the data) runs first and resets Redis's
# statistics, so the Redis commands counted are this run's. When other
# processes on the machine took more than FOREIGN_LIMIT of its CPU during the
# run, it is run again (within RETRY_BUDGET seconds for the whole benchmark)
# and the quieter attempt is kept.
measure() {   # ROUND SCENARIO CONTENDER LOAD PATH MODE ARG PREP
    local r=$1 s=$2 c=$3 load=$4 path=$5 mode=$6 arg=$7 prep=$8
    local conns secs out rec msg snap psnap procs attempt best='' best_fc=2 fc t0 rports
    if [[ $load == sat ]]; then conns=$CONNS; secs=$SECS; else conns=$LAT_CONNS; secs=$LAT_SECS; fi
    rports=$(redis_ports "$c")
    for ((attempt = 1; ; attempt++)); do
        t0=$(date +%s)
        if [[ $prep == flush ]]; then reset_state "$rports"; else "${TOOL[@]}" reset "$rports" --stats-only; fi
        MEASURE_N=$((MEASURE_N + 1))
        out=$WORK/wrk-$MEASURE_N-$s-$c-$load.txt
        procs=("edge=${MAINPID[$c]}" "redis=$(redis_pids "$c")" "upstream=${MAINPID[upstream]}")
        psnap=$("${TOOL[@]}" proc-snap "${procs[@]}")
        snap=$("${TOOL[@]}" cpu-snap $$)
        run_wrk "$out" "$conns" "$secs" "$(url "$c")" "$path" "$mode" "$arg"
        rec=$WORK/rec-$MEASURE_N.json
        msg=$("${TOOL[@]}" record "$out" kind=load round="$r" scenario="$s" contender="$c" \
            load="$load" conns="$conns" seconds="$secs" attempt="$attempt" wrk_cpu_s="$(<"$out.cpu")" \
            --procs "$psnap" "${procs[@]}" --cpu $$ "$snap" --redis "$rports" 2>&1 >"$rec") \
            || { echo "$msg" >&2; die "could not read wrk's output for $c/$s/$load"; }
        printf '    %-9s %-3s %s\n' "$c" "$load" "$msg"
        [[ $(<"$rec") =~ \"foreign_cpu\":\ ([0-9.e-]+) ]] && fc=${BASH_REMATCH[1]} || fc=0
        if awk -v a="$fc" -v b="$best_fc" 'BEGIN { exit !(a < b) }'; then best=$rec; best_fc=$fc; fi
        RETRY_SPENT=$((RETRY_SPENT + (attempt > 1 ? $(date +%s) - t0 : 0)))
        awk -v a="$best_fc" -v l="$FOREIGN_LIMIT" 'BEGIN { exit !(a > l) }' || break
        ((attempt <= MAX_RETRIES && RETRY_SPENT + secs <= RETRY_BUDGET)) || break
        RETRIES=$((RETRIES + 1))
        printf '    %-9s %-3s other processes were busy: measuring again\n' "$c" "$load"
    done
    cat "$best" >>"$RAW"
}

BASE_A=$((10 << 24))     # 10.0.0.0: allowed clients
BASE_C=$((20 << 24))     # 20.0.0.0: guessing clients
BASE_M=$((30 << 24))     # 30.0.0.0: bytes-per-key step
BASE_D=$((40 << 24))     # 40.0.0.0: scenario d
# Scenario v: a valid device token for each of 200 000 client addresses from
# BASE_A (more than a saturating measurement sends, so no device repeats)
DEVICE_TOKENS=$WORK/device-tokens.txt
"${TOOL[@]}" mint-devices "$WORK/pairguard.secret" ip "$BASE_A" 200000 "$DEVICE_TOKENS"

for ((r = 1; r <= ROUNDS; r++)); do
    # Rotate the order each round so that no contender always goes first.
    order=()
    for ((i = 0; i < ${#CONTENDERS[@]}; i++)); do
        order+=("${CONTENDERS[(i + r - 1) % ${#CONTENDERS[@]}]}")
    done
    say "round $r/$ROUNDS: ${order[*]}"
    for s in a b c; do
        say "  scenario $s"
        for ci in "${!order[@]}"; do
            c=${order[ci]}
            case $s in
                a)  for load in sat c4; do
                        measure "$r" a "$c" "$load" /ok distinct "$BASE_A" flush
                    done ;;
                b)  locked="100.64.$r.$((ci + 1))"
                    reset_state
                    lock_client "$c" "$locked"
                    measure "$r" b "$c" sat /fail fixed "$locked" stats
                    measure "$r" b "$c" c4 /fail fixed "$locked" stats ;;
                c)  for load in sat c4; do
                        measure "$r" c "$c" "$load" /fail distinct "$BASE_C" flush
                    done ;;
            esac
        done
    done
    # s: scenario a with 1, 2 and 3 stacked policies.
    say "  scenario s (stacked policies)"
    for ((i = 0; i < ${#STACKED[@]}; i++)); do
        c=${STACKED[(i + r - 1) % ${#STACKED[@]}]}
        measure "$r" s "$c" sat /ok distinct "$BASE_A" flush
    done
    # v: scenario a with a trusted device cookie on every request.
    say "  scenario v (trusted devices)"
    for ((i = 0; i < ${#DEVICES[@]}; i++)); do
        c=${DEVICES[(i + r - 1) % ${#DEVICES[@]}]}
        if [[ $c == pg_device ]]; then
            measure "$r" v "$c" sat /ok devices "$DEVICE_TOKENS" flush
        else
            measure "$r" v "$c" sat /ok distinct "$BASE_A" flush
        fi
    done
    # r: scenario a against one Redis, a TLS Redis and a 3-master cluster.
    say "  scenario r (Redis deployments)"
    for ((i = 0; i < ${#DEPLOYS[@]}; i++)); do
        c=${DEPLOYS[(i + r - 1) % ${#DEPLOYS[@]}]}
        measure "$r" r "$c" sat /ok distinct "$BASE_A" flush
    done
    # w: scenario a with 1 and 2 workers per contender.
    say "  scenario w (1 and 2 workers)"
    for ((i = 0; i < ${#SCALING[@]}; i++)); do
        c=${SCALING[(i + r - 1) % ${#SCALING[@]}]}
        measure "$r" w "$c" sat /ok distinct "$BASE_A" flush
    done

    # e: the paired-only route (pairguard_require_paired) for one approved
    # client, against plain proxy_pass; the approval is made the way an owner
    # makes it: a code from the request endpoint, approved with pairguardctl.
    say "  scenario e"
    reset_state
    paired="100.70.0.$r"
    code=$(curl -sS -X POST -H 'Content-Type: application/json' \
        -d "{\"platform\":\"bench\",\"user_id\":\"$paired\"}" "$(url pairguard)/pairing/request" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["code"])') ||
        die "scenario e: no pairing code from $(url pairguard)/pairing/request"
    "$PGCTL" --redis "127.0.0.1:$REDIS_PORT" --secret-file "$WORK/pairguard.secret" \
        approve bench "$code" >/dev/null || die "scenario e: pairguardctl approve failed"
    for c in "${order[@]}"; do
        [[ $c == plain || $c == pairguard ]] || continue
        for load in sat c4; do
            measure "$r" e "$c" "$load" /paired/ fixed "$paired" stats
        done
    done

    # f: the bearer-protected route (pairguard_auth_require) with a session
    # token from a real password login (user made with pairguardctl).
    say "  scenario f"
    printf 'bench-password\n' | "$PGCTL" --redis "127.0.0.1:$REDIS_PORT" \
        --secret-file "$WORK/pairguard.secret" user add bench --password-stdin >/dev/null ||
        die "scenario f: pairguardctl user add failed"
    token=$(curl -sS -X POST -H 'Content-Type: application/json' \
        -d '{"user":"bench","password":"bench-password"}' "$(url pairguard)/auth/login" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])') ||
        die "scenario f: no session token from $(url pairguard)/auth/login"
    for c in "${order[@]}"; do
        [[ $c == plain || $c == pairguard ]] || continue
        for load in sat c4; do
            PG_BENCH_AUTHORIZATION="Bearer $token" measure "$r" f "$c" "$load" /bearer/ fixed "$paired" stats
        done
    done

    say "  burst: $BURST_N concurrent failing requests of one address"
    for ci in "${!order[@]}"; do
        c=${order[ci]}
        a="198.18.$r.$((ci + 1))"
        p="/burst/$c/r$r"
        reset_state
        answers=$("${TOOL[@]}" burst "$(url "$c")$p" "$a" "$BURST_N")
        sleep 0.3
        reached=$(grep -cx "$p" "$WORK/upstream/burst.log" || true)
        printf '    %-9s reached the upstream: %s  answers: %s\n' "$c" "$reached" "$answers"
        echo "{\"kind\":\"burst\",\"round\":$r,\"contender\":\"$c\",\"sent\":$BURST_N,\"reached\":$reached,\"answers\":$answers}" >>"$RAW"
    done
    # The same burst spread over two pairguard nodes sharing Redis (one with
    # one worker, one with two), connections alternating between them.
    a="198.19.$r.1"
    p="/burst/pg2nodes/r$r"
    reset_state
    answers=$("${TOOL[@]}" burst "$(url pairguard)$p,$(url pairguard_w2)$p" "$a" "$BURST_N")
    sleep 0.3
    reached=$(grep -cx "$p" "$WORK/upstream/burst.log" || true)
    printf '    %-9s reached the upstream: %s  answers: %s\n' "2 nodes" "$reached" "$answers"
    echo "{\"kind\":\"burst2\",\"round\":$r,\"contender\":\"pairguard\",\"nodes\":2,\"sent\":$BURST_N,\"reached\":$reached,\"answers\":$answers}" >>"$RAW"
done

say "Redis commands per request (MONITOR, $SAMPLE_N sequential requests)"
for c in lua pairguard; do
    for s in a b c; do
        reset_state
        case $s in
            a) res=$("${TOOL[@]}" monitor "$REDIS_PORT" "$(url "$c")/ok" distinct "$BASE_A" "$SAMPLE_N") ;;
            b) lock_client "$c" 100.64.250.1
               res=$("${TOOL[@]}" monitor "$REDIS_PORT" "$(url "$c")/fail" fixed 100.64.250.1 "$SAMPLE_N") ;;
            c) res=$("${TOOL[@]}" monitor "$REDIS_PORT" "$(url "$c")/fail" distinct "$BASE_C" "$SAMPLE_N") ;;
        esac
        printf '    %-9s %s %s\n' "$c" "$s" "$res"
        echo "{\"kind\":\"monitor\",\"contender\":\"$c\",\"scenario\":\"$s\",\"sample\":$res}" >>"$RAW"
    done
done

# User-space instructions per request of the edge's worker (scenario a):
# perf stat counts the worker while one wrk run lasts. Needs hardware
# counters (absent in many VMs: then skipped with a note).
perf_probe=$(perf stat -x, -e instructions:u -- true 2>&1 || true)
if command -v perf >/dev/null 2>&1 && [[ $perf_probe =~ (^|$'\n')[0-9]+,,?instructions ]]; then
    say "user-space instructions per request (perf stat, scenario a)"
    for c in plain lua pairguard; do
        reset_state
        workers=$(pgrep -P "${MAINPID[$c]}" | paste -sd, -)
        out=$WORK/wrk-perf-$c.txt
        perf stat -x, -e instructions:u -o "$WORK/perf-$c.txt" -p "$workers" -- \
            wrk -t1 -c"$CONNS" -d"${SECS}s" --timeout 5s --latency -s "$WRK_LUA" "$(url "$c")" \
            -- /ok distinct "$BASE_A" >"$out" 2>&1 || die "perf stat / wrk failed for $c"
        ins=$(awk -F, '/instructions/ { print $1; exit }' "$WORK/perf-$c.txt")
        [[ $ins =~ ^[0-9]+$ ]] || { odd "perf stat gave no instruction count for $c"; continue; }
        "${TOOL[@]}" record "$out" kind=instructions contender="$c" scenario=a instructions="$ins" >>"$RAW" 2>/dev/null \
            || die "could not read wrk's output for the instructions step of $c"
        printf '    %-9s %s instructions\n' "$c" "$ins"
    done
elif command -v valgrind >/dev/null 2>&1 && command -v callgrind_control >/dev/null 2>&1; then
    # No hardware counters (a VM): callgrind counts the instructions instead.
    # Each contender's config again, with master_process off (the one process
    # that valgrind runs is the worker), on its own port: warmed up, counters
    # zeroed, CG_N requests of scenario a (distinct addresses, allowed), dumped.
    CG_N=${PG_BENCH_CG_REQUESTS:-3000}
    # valgrind cannot run the SHA extensions (OpenSSL takes its AVX2 code
    # under it): one SHA-256 block is also counted natively, so that the
    # report can count the module's blocks as this CPU runs them
    sha_native=""
    if command -v gdb >/dev/null 2>&1 && command -v cc >/dev/null 2>&1; then
        sha_native=$("${TOOL[@]}" sha256-native "$WORK" 2>"$WORK/sha256-native.log") \
            || { odd "one SHA-256 block not counted natively: $(tail -1 "$WORK/sha256-native.log")"; sha_native=""; }
    else
        odd "one SHA-256 block not counted natively: gdb or cc missing"
    fi
    say "user-space instructions per request (callgrind, scenario a, $CG_N requests each; one SHA-256 block natively: ${sha_native:-not counted})"
    for c in plain lua pairguard; do
        reset_state
        dir=$WORK/cg_$c
        mkdir -p "$dir/out"
        chmod 777 "$dir/out"
        sed -e 's/^master_process on;/master_process off;/' -e "s/^user .*;//" \
            -e "s|listen 127.0.0.1:${PORT[$c]} |listen 127.0.0.1:${PORT[cg_$c]} |" \
            -e "s|$WORK/$c/|$dir/|g" "$WORK/$c/nginx.conf" >"$dir/nginx.conf"
        valgrind --tool=callgrind --callgrind-out-file="$dir/out/cg.%p" \
            "$NGINX" -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" >"$dir/valgrind.log" 2>&1 &
        vpid=$!
        PIDS+=("$vpid")
        "${TOOL[@]}" wait-port "${PORT[cg_$c]}" 60 || { tail -5 "$dir/valgrind.log" >&2; die "$c did not start under valgrind"; }
        wrk -t1 -c10 -d20s --timeout 10s -s "$WRK_LUA" "http://127.0.0.1:${PORT[cg_$c]}" \
            -- /ok distinct "$BASE_A" 500 >"$dir/warmup.txt" 2>&1 || true
        callgrind_control -z "$vpid" >/dev/null 2>&1 || { odd "callgrind_control could not reach $c"; stop_pid "$vpid"; forget_pid "$vpid"; continue; }
        out=$WORK/wrk-cg-$c.txt
        wrk -t1 -c10 -d60s --timeout 10s -s "$WRK_LUA" "http://127.0.0.1:${PORT[cg_$c]}" \
            -- /ok distinct "$((BASE_A + 65536))" "$CG_N" >"$out" 2>&1 || die "wrk failed for $c under callgrind"
        callgrind_control -d "$vpid" >/dev/null 2>&1
        stop_pid "$vpid"
        wait "$vpid" 2>/dev/null || true
        forget_pid "$vpid"
        dump=$(ls "$dir"/out/cg.*.1 2>/dev/null | head -1)
        [[ -n $dump ]] || { odd "no callgrind dump for $c"; continue; }
        cg=$("${TOOL[@]}" callgrind "$dump")
        ins=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["total"])' "$cg")
        "${TOOL[@]}" record "$out" kind=instructions contender="$c" scenario=a tool=callgrind \
            instructions="$ins" objects="$cg" sha_native="$sha_native" >>"$RAW" 2>/dev/null \
            || die "could not read wrk's output for the callgrind step of $c"
        printf '    %-9s %s instructions\n' "$c" "$ins"
    done
else
    odd "user-space instructions per request not measured: perf stat has no hardware counters here (instructions:u <not supported>) and valgrind is not installed"
fi

say "Redis bytes per tracked key (up to $MEM_KEYS addresses, one failure each)"
for c in lua pairguard; do
    reset_state
    sleep 0.2
    m0=$("${TOOL[@]}" redis-mem "$REDIS_PORT")
    out=$WORK/wrk-mem-$c.txt
    run_wrk "$out" "$CONNS" "$MEM_SECS" "$(url "$c")" /fail distinct "$BASE_M" "$MEM_KEYS"
    prev=-1
    for ((i = 0; i < 20; i++)); do   # until the last settles/timers are in
        sleep 0.2
        n=$("${TOOL[@]}" redis "$REDIS_PORT" DBSIZE)
        [[ $n == "$prev" ]] && break
        prev=$n
    done
    m1=$("${TOOL[@]}" redis-mem "$REDIS_PORT" 200)
    "${TOOL[@]}" record "$out" kind=memory contender="$c" before="$m0" after="$m1" >>"$RAW" 2>/dev/null \
        || die "could not read wrk's output for the memory step of $c"
    printf '    %-9s before %s after %s\n' "$c" "$m0" "$m1"
done

# --- scenario d: Redis unreachable / hanging -----------------------------------

wait_pg_up() {   # INSTANCE: until a guarded request reaches Redis again
    local inst=$1 i n
    for ((i = 0; i < 60; i++)); do
        rcmd CONFIG RESETSTAT 2>/dev/null || { sleep 0.2; continue; }
        "${TOOL[@]}" get "$(url "$inst")/ok" "192.0.2.$((i + 1))" >/dev/null || true
        n=$("${TOOL[@]}" cmdstats "$REDIS_PORT" | python3 -c \
            'import json,sys; d=json.load(sys.stdin); print(sum(v for k,v in d.items() if k.split("|")[0] in ("evalsha","eval","fcall")))')
        ((n > 0)) && return 0
        sleep 0.2
    done
    odd "$inst: store did not come back within 12 s after Redis was back"
    return 1
}

measure_d() {   # INSTANCE MODE STATE
    local inst=$1 mode=$2 state=$3 og=$WORK/wrk-d-$1-$3-g.txt ou=$WORK/wrk-d-$1-$3-u.txt pg pu rg ru snap
    local slow_log=$WORK/$1/slow.log slow0 slow1
    slow0=$(wc -l <"$slow_log" 2>/dev/null || echo 0)
    snap=$("${TOOL[@]}" cpu-snap $$)
    wrk -t1 -c"$D_CONNS" -d"${D_SECS}s" --timeout 5s --latency -s "$WRK_LUA" "$(url "$inst")" \
        -- /ok distinct "$BASE_D" >"$og" 2>&1 &
    pg=$!; PIDS+=("$pg")
    wrk -t1 -c"$D_CONNS" -d"${D_SECS}s" --timeout 5s --latency -s "$WRK_LUA" "$(url "$inst")" \
        -- /open/x fixed 203.0.113.9 >"$ou" 2>&1 &
    pu=$!; PIDS+=("$pu")
    wait "$pg" || { cat "$og" >&2; die "wrk failed (d, $inst, $state, guarded)"; }
    forget_pid "$pg"
    wait "$pu" || { cat "$ou" >&2; die "wrk failed (d, $inst, $state, unguarded)"; }
    forget_pid "$pu"
    sleep 0.2
    slow1=$(wc -l <"$slow_log" 2>/dev/null || echo 0)
    rg=$("${TOOL[@]}" record "$og" kind=stored mode="$mode" state="$state" route=guarded \
        conns="$D_CONNS" seconds="$D_SECS" slow_nginx=$((slow1 - slow0)) \
        --cpu $$ "$snap" 2>&1 >>"$RAW") \
        || { echo "$rg" >&2; die "could not read wrk's output (d, $inst, $state, guarded)"; }
    ru=$("${TOOL[@]}" record "$ou" kind=stored mode="$mode" state="$state" route=unguarded \
        conns="$D_CONNS" seconds="$D_SECS" 2>&1 >>"$RAW") \
        || { echo "$ru" >&2; die "could not read wrk's output (d, $inst, $state, unguarded)"; }
    printf '    %-6s %-7s guarded %s, unguarded %s\n' "$mode" "$state" "$rg" "$ru"
}

say "scenario d: Redis stopped / hung, guarded (/ok) and unguarded (/open/) routes at once, ${D_CONNS}+${D_CONNS} connections"
for mode in local deny allow; do
    inst=pg_$mode
    rcmd FLUSHALL
    wait_pg_up "$inst" || true
    measure_d "$inst" "$mode" up
    stop_redis
    measure_d "$inst" "$mode" stopped
    start_redis
    wait_pg_up "$inst" || true
    kill -STOP "$REDIS_PID"
    measure_d "$inst" "$mode" hung
    kill -CONT "$REDIS_PID"
    wait_pg_up "$inst" || true
done

# --- 5. report -----------------------------------------------------------------

# What the servers logged at error level or worse, summarised into the notes.
# pairguard's store state changes are expected (scenario d stops Redis) and
# only counted.
state_re='pairguard: redis .* unavailable \('
states=0
for c in upstream plain limitreq lua pairguard pg_local pg_deny pg_allow pg_stack2 pg_stack3 \
         plain_w2 lua_w2 pairguard_w2 pg_tls pg_cluster; do
    n=$(grep -E '\[(error|crit|alert|emerg)\]' "$WORK/$c/error.log" | grep -c -v -E "$state_re" || true)
    states=$((states + $(grep -c -E "$state_re" "$WORK/$c/error.log" || true)))
    ((n == 0)) && continue
    top=$(grep -E '\[(error|crit|alert|emerg)\]' "$WORK/$c/error.log" | grep -v -E "$state_re" \
        | sed -E 's/^[0-9\/]+ [0-9:]+ //; s/[0-9]+#[0-9]+: (\*[0-9]+ )?//; s/, client: .*//' \
        | sort | uniq -c | sort -rn | head -3 | sed -E 's/^ *([0-9]+) (.*)/\2 (x\1)/' | paste -sd ';' -)
    odd "$c: error.log has $n unexpected lines at error level or worse: $top"
done
echo "{\"kind\":\"log\",\"store_down_lines\":$states}" >>"$RAW"
n=$(grep -c -E '\[(ALERT|WARNING)\]' "$WORK/haproxy/haproxy.log" || true)
((n == 0)) || odd "haproxy: $n ALERT/WARNING lines, e.g. $(grep -m1 -E '\[(ALERT|WARNING)\]' "$WORK/haproxy/haproxy.log")"

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mkdir -p "$RESULTS"
T_END=$(date +%s)
python3 "$BENCH/tools/report.py" --raw "$RAW" --odd "$ODD" --out "$RESULTS/$OUT_NAME" --gnuplot "$WORK/chart.gp" \
    nproc="$(nproc)" cpu="${cpu:-unknown}" kernel="$(uname -r)" \
    nginx="$("$NGINX" -v 2>&1 | sed 's/^nginx version: nginx\///')" \
    redis="$(redis-server --version | awk '{ print $3 }' | sed 's/^v=//')" \
    haproxy="$(haproxy -v | awk 'NR == 1 { print $3 }')" \
    wrk="$(wrk -v 2>&1 | awk 'NR == 1 { print $2 }')" \
    lua_module="$(dpkg-query -W -f='${Version}' libnginx-mod-http-lua 2>/dev/null || echo '?')" \
    commit="$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$SRC" diff --quiet HEAD -- src config 2>/dev/null || echo '+dirty')" \
    load_avg="$(cut -d' ' -f1-3 /proc/loadavg)" load_avg_start="$LOAD_START" \
    date="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    rounds="$ROUNDS" seconds="$SECS" lat_seconds="$LAT_SECS" d_seconds="$D_SECS" conns="$CONNS" \
    lat_conns="$LAT_CONNS" d_conns="$D_CONNS" burst="$BURST_N" mem_keys="$MEM_KEYS" \
    retries="$RETRIES" retry_spent="$RETRY_SPENT" retry_budget="$RETRY_BUDGET" \
    sample="$SAMPLE_N" quick="$QUICK" elapsed="$((T_END - T_START))" \
    || die "report.py failed"
gnuplot "$WORK/chart.gp" || die "gnuplot failed"

echo
cat "$RESULTS/$OUT_NAME.md"
echo
say "results: $RESULTS/$OUT_NAME.md, $RESULTS/$OUT_NAME.json, $RESULTS/$OUT_NAME.png ($((T_END - T_START)) s)"
FAILED=0
