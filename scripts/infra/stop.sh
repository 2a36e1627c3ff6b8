#!/usr/bin/env bash
# Stop the servers that start.sh started -- and nothing else: only processes
# recorded in $CONCILIARE_STATE/*/*.pid (checked against the expected command
# line, so a recycled pid is never killed) and our own RabbitMQ node.
# Waits for each to exit. Idempotent: already-stopped servers are reported.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STOP_TIMEOUT="${CONCILIARE_STOP_TIMEOUT:-30}"

# our_pid PIDFILE PATTERN: pid from PIDFILE if alive and its command line contains PATTERN.
our_pid() {
    local pid
    pid="$(read_pid "$1")" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2" || return 1
    echo "$pid"
}

# wait_exit PID SECONDS: true once PID is gone.
wait_exit() {
    local deadline=$((SECONDS + $2))
    while kill -0 "$1" 2>/dev/null; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# stop_pidfile NAME PIDFILE PATTERN: SIGTERM, wait, then SIGKILL as a last resort.
stop_pidfile() {
    local name="$1" pidfile="$2" pattern="$3" pid
    if ! pid="$(our_pid "$pidfile" "$pattern")"; then
        say "$name" "not running (nothing of ours to stop)"
        rm -f "$pidfile"
        return
    fi
    say "$name" "stopping pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_exit "$pid" "$STOP_TIMEOUT"; then
        warn "$name" "pid $pid still running after ${STOP_TIMEOUT}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_exit "$pid" 10 || die "$name" "pid $pid would not die"
    fi
    rm -f "$pidfile"
    say "$name" "stopped"
}

stop_rabbitmq() {
    local d="$CONCILIARE_STATE/rabbitmq" pid
    if rabbitmqctl_ours ping >/dev/null 2>&1; then
        pid="$(read_pid "$d/rabbitmq.pid" || echo '?')"
        say rabbitmq "stopping node $RABBITMQ_NODE (pid $pid)"
        # `shutdown` returns only once the node's OS process has exited.
        if ! rabbitmqctl_ours shutdown --timeout "$STOP_TIMEOUT" >>"$d/startup.log" 2>&1; then
            warn rabbitmq "rabbitmqctl shutdown failed; falling back to signals"
        fi
    fi
    # Fallback (node not answering rabbitmqctl, e.g. half-booted): signal the
    # node and the rabbitmq-server wrapper script by pid file.
    if our_pid "$d/rabbitmq.pid" "$RABBITMQ_NODE" >/dev/null; then
        stop_pidfile rabbitmq "$d/rabbitmq.pid" "$RABBITMQ_NODE"
    fi
    if our_pid "$d/launcher.pid" rabbitmq-server >/dev/null; then
        pid="$(read_pid "$d/launcher.pid")"
        wait_exit "$pid" 10 || stop_pidfile rabbitmq "$d/launcher.pid" rabbitmq-server
    fi
    rm -f "$d/rabbitmq.pid" "$d/launcher.pid"
    say rabbitmq "stopped"

    # epmd: only if start.sh started it and no other Erlang node still uses it.
    if pid="$(our_pid "$d/epmd.pid" epmd)"; then
        if epmd -names 2>/dev/null | grep -q '^name '; then
            say epmd "left running (other Erlang nodes still registered)"
        else
            stop_pidfile epmd "$d/epmd.pid" epmd
        fi
    fi
}

stop_zipkin()   { stop_pidfile zipkin "$CONCILIARE_STATE/zipkin/zipkin.pid" "$ZIPKIN_JAR"; }
stop_minio()    { stop_pidfile minio "$CONCILIARE_STATE/minio/minio.pid" "$MINIO_BIN"; }
stop_ferretdb() { stop_pidfile ferretdb "$CONCILIARE_STATE/ferretdb/ferretdb.pid" "$FERRETDB_BIN"; }

# Reverse start order; none depends on another, so order is cosmetic.
stop_zipkin
stop_minio
stop_ferretdb
stop_rabbitmq
