#!/bin/sh
# pairguard owner warnings: follows the event stream and runs a command per
# event (README "Owner warnings"). Events carry labels only, never a code,
# password, token or key. One copy per site is enough (it reads Redis, not a
# node); run more and each warns.
#
#   PAIRGUARD_REDIS         Redis address as for pairguardctl (default 127.0.0.1:6379)
#   PAIRGUARD_PREFIX        key prefix, if nginx has prefix= (default pairguard:)
#   PAIRGUARD_NOTIFY_TYPES  event types that warn (default: wrong approvals and locks)
#   PAIRGUARD_NOTIFY_URL    when set, each event is POSTed there as JSON (curl);
#                           else it goes to syslog (logger -t pairguard)
#   PAIRGUARDCTL            the pairguardctl binary (default: from PATH)
set -u
ctl=${PAIRGUARDCTL:-pairguardctl}
types=${PAIRGUARD_NOTIFY_TYPES:-wrong_approval lock}

notify() {
    if [ -n "${PAIRGUARD_NOTIFY_URL:-}" ]; then
        curl -fsS -m 10 -H 'Content-Type: application/json' --data-binary "$1" "$PAIRGUARD_NOTIFY_URL" >/dev/null \
            || logger -t pairguard "notify failed: $1"
    else
        logger -t pairguard -p auth.warning "$1"
    fi
}

dir=$(mktemp -d) || exit 1
fifo=$dir/events
mkfifo "$fifo" || exit 1
ctlpid=
stop() {
    [ -n "$ctlpid" ] && kill "$ctlpid" 2>/dev/null
    rm -rf "$dir"
    exit 0
}
trap stop INT TERM
while :; do
    # --count 0: only events from now on (the stream keeps the last 10 000:
    # `pairguardctl events` lists what was missed while this was down)
    "$ctl" events --follow --json --count 0 > "$fifo" &
    ctlpid=$!
    while IFS= read -r line; do
        type=$(printf '%s\n' "$line" | sed -n 's/^{"type":"\([a-z_]*\)".*/\1/p')
        case " $types " in
        *" $type "*) notify "$line" ;;
        esac
    done < "$fifo"
    wait "$ctlpid"
    ctlpid=
    sleep 5    # Redis went away: follow again
done
