#!/usr/bin/env bash
# Stop the servers that start.sh started -- and nothing else: only processes
# recorded in $CONCILIARE_STATE/*/*.pid (checked against the expected command
# line, so a recycled pid is never killed) and our own RabbitMQ node.
# Waits for each to exit. Idempotent: already-stopped servers are reported.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STOP_TIMEOUT="${CONCILIARE_STOP_TIMEOUT:-30}"

# our_pid PIDFILE PATTERN: pid from PIDFILE if alive and its command line (or,
# for RabbitMQ's beam.smp whose command line doesn't name the node, its
# environment) contains PATTERN.
our_pid() {
    local pid text
    pid="$(read_pid "$1")" || return 1
    # No `| grep -q` here: with pipefail, SIGPIPE would make a match look like a miss.
    text="$(tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline"; tr '\0' '\n' 2>/dev/null <"/proc/$pid/environ")" || true
    [[ "$text" == *"$2"* ]] || return 1
    echo "$pid"
}

# wait_exit PID SECONDS: true once PID is gone.
wait_exit() {
    local deadline=$((SECONDS + $2))
    while pid_alive "$1"; do
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
    # Our node's beam.smp carries RABBITMQ_MNESIA_BASE=<our state dir> in its environment.
    local mark="RABBITMQ_MNESIA_BASE=$d/mnesia" was_running=0
    if our_pid "$d/rabbitmq.pid" "$mark" >/dev/null || our_pid "$d/launcher.pid" rabbitmq-server >/dev/null; then
        was_running=1
    fi
    if rabbitmqctl_ours ping >/dev/null 2>&1; then
        was_running=1
        say rabbitmq "stopping node $RABBITMQ_NODE (pid $(read_pid "$d/rabbitmq.pid" || echo '?'))"
        # `shutdown` returns only once the node's OS process has exited.
        rabbitmqctl_ours shutdown --timeout "$STOP_TIMEOUT" >>"$d/startup.log" 2>&1 ||
            warn rabbitmq "rabbitmqctl shutdown failed; falling back to signals"
    fi
    # Fallback for a node that doesn't answer rabbitmqctl (e.g. half-booted):
    # signal beam.smp by pid file. The rabbitmq-server wrapper exits with it.
    if our_pid "$d/rabbitmq.pid" "$mark" >/dev/null; then
        stop_pidfile rabbitmq "$d/rabbitmq.pid" "$mark"
    fi
    if pid="$(our_pid "$d/launcher.pid" rabbitmq-server)" && ! wait_exit "$pid" 10; then
        stop_pidfile rabbitmq-wrapper "$d/launcher.pid" rabbitmq-server
    fi
    rm -f "$d/rabbitmq.pid" "$d/launcher.pid"
    if ((was_running)); then
        say rabbitmq "stopped"
    else
        say rabbitmq "not running (nothing of ours to stop)"
    fi

    # epmd: only if start.sh started it and no other Erlang node still uses it.
    if our_pid "$d/epmd.pid" epmd >/dev/null; then
        local names
        names="$(epmd -names 2>/dev/null)" || true
        if [[ "$names" == *$'\nname '* ]]; then
            say epmd "left running (other Erlang nodes still registered)"
        else
            stop_pidfile epmd "$d/epmd.pid" epmd
        fi
    else
        rm -f "$d/epmd.pid"
    fi
}

stop_zipkin()   { stop_pidfile zipkin "$CONCILIARE_STATE/zipkin/zipkin.pid" "$ZIPKIN_JAR"; }
stop_smtp()     { stop_pidfile smtp "$CONCILIARE_STATE/smtp/smtp.pid" "$SMTP_SINK"; }
stop_minio()    { stop_pidfile minio "$CONCILIARE_STATE/minio/minio.pid" "$MINIO_BIN"; }
# SIGTERM runs the launcher's shutdown hook, which closes the H2 store: the last
# acknowledged writes are on disk once the process is gone. The jar directory
# (not the launcher hash) identifies it, so a launcher edited since start still matches.
stop_mongo()    { stop_pidfile mongo "$CONCILIARE_STATE/mongo/mongo.pid" "$MONGO_LIB/"; }

# Each takes a few seconds to shut down gracefully, so stop them in parallel.
pids=()
stop_zipkin & pids+=($!)
stop_smtp & pids+=($!)
stop_minio & pids+=($!)
stop_mongo & pids+=($!)
stop_rabbitmq & pids+=($!)
rc=0
for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
exit "$rc"
