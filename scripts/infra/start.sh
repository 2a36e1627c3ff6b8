#!/usr/bin/env bash
# Start RabbitMQ, MongoDB (mongo-java-server), MinIO and Zipkin natively on loopback, as background
# daemons, and wait until each one answers. Run install.sh first.
#
# State (data, logs, pid files) lives in $CONCILIARE_STATE (default
# ~/.local/state/conciliare), one subdirectory per server. Idempotent: a server
# whose port already answers its health check is left alone.
#
# Ports (env overrides): CONCILIARE_AMQP_PORT=5672, CONCILIARE_RABBITMQ_MGMT_PORT=15672,
# CONCILIARE_RABBITMQ_DIST_PORT=25672, CONCILIARE_MONGO_PORT=27017,
# CONCILIARE_MINIO_PORT=9000, CONCILIARE_MINIO_CONSOLE_PORT=9001, CONCILIARE_ZIPKIN_PORT=9411.
# Timeouts: CONCILIARE_START_TIMEOUT (seconds per server, default 120).
# MongoDB backend: CONCILIARE_MONGO_BACKEND=h2 (default; data in
# $CONCILIARE_STATE/mongo/conciliare.mv, kept across restarts) or memory (starts
# empty, nothing on disk; what test runs use). JVM options: CONCILIARE_MONGO_JAVA_OPTS.
#
# RabbitMQ runs as our own Erlang node ($CONCILIARE_RABBITMQ_NODENAME, default
# conciliare@localhost), never via systemd/init scripts. If Debian's system node
# (rabbit@<host>, user "rabbitmq") is running and holds one of our ports, it is
# stopped with Debian's `rabbitmqctl stop` (a note says how to bring it back);
# set CONCILIARE_KEEP_SYSTEM_RABBITMQ=1 to get an error instead.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TIMEOUT="${CONCILIARE_START_TIMEOUT:-120}"

# launch NAME PIDFILE LOG CMD...: start CMD detached (own session, no stdin) and
# record its pid. `exec` keeps the pid written by the wrapper shell valid.
launch() {
    local name="$1" pidfile="$2" log="$3"; shift 3
    printf '\n==== %s starting at %s\n' "$name" "$(date -Is)" >>"$log"
    # shellcheck disable=SC2016
    setsid sh -c 'echo $$ > "$0"; exec "$@"' "$pidfile" "$@" >>"$log" 2>&1 </dev/null &
    # Wait briefly for the pid file so callers can rely on it.
    for _ in $(seq 50); do [[ -s "$pidfile" ]] && return 0; sleep 0.1; done
    die "$name" "could not launch (no pid file $pidfile)"
}

# wait_up NAME PIDFILE LOG HEALTHFN [REPORT_PIDFILE]: poll HEALTHFN until it
# succeeds; on timeout or if the process dies, name the server and show its log tail.
wait_up() {
    local name="$1" pidfile="$2" log="$3" health="$4" report="${5:-$2}"
    local deadline=$((SECONDS + TIMEOUT))
    until "$health"; do
        if ! read_pid "$pidfile" >/dev/null; then
            printf '==> [%s] ERROR: process exited during startup\n' "$name" >&2
            tail_log "$log"; exit 1
        fi
        if ((SECONDS >= deadline)); then
            printf '==> [%s] ERROR: not answering after %ss (pid %s still running)\n' \
                "$name" "$TIMEOUT" "$(read_pid "$pidfile")" >&2
            tail_log "$log"; exit 1
        fi
        sleep 0.5
    done
    say "$name" "up ($((SECONDS - t0))s after start.sh began; pid $(read_pid "$report" || echo '?'))"
}

# already_up NAME PIDFILE HEALTHFN PORT...: true (and says so) if the server
# answers. Fails loudly if a port is taken by something that isn't healthy.
already_up() {
    local name="$1" pidfile="$2" health="$3"; shift 3
    if "$health"; then
        local pid
        if pid="$(read_pid "$pidfile")"; then
            say "$name" "already up (pid $pid), leaving it"
        else
            say "$name" "already up, but not started by these scripts ($(port_owner "$1")); leaving it"
        fi
        return 0
    fi
    # Our own process may still be booting from an earlier (interrupted) start.
    if read_pid "$pidfile" >/dev/null; then
        return 1
    fi
    local port
    for port in "$@"; do
        if port_open "$port"; then
            die "$name" "port $port is in use by another process ($(port_owner "$port")) that is not a healthy $name; stop it or set a different port"
        fi
    done
    return 1
}

# ---------------------------------------------------------------------------
# RabbitMQ
# ---------------------------------------------------------------------------
# system_rabbit_pid PORT: pid of Debian's system node if it is what listens on PORT.
system_rabbit_pid() {
    local pid
    pid="$(port_pid "$1")"
    [[ -n "$pid" ]] || return 1
    [[ "$(ps -o user= -p "$pid")" == rabbitmq ]] || return 1
    [[ "$(ps -o comm= -p "$pid")" == beam* ]] || return 1
    echo "$pid"
}

stop_system_rabbitmq() {
    local port pid=""
    for port in "$AMQP_PORT" "$RABBITMQ_MGMT_PORT" "$RABBITMQ_DIST_PORT"; do
        pid="$(system_rabbit_pid "$port")" && break
    done
    [[ -n "$pid" ]] || return 0
    if [[ "${CONCILIARE_KEEP_SYSTEM_RABBITMQ:-0}" == 1 ]]; then
        die rabbitmq "Debian's system RabbitMQ node (pid $pid) holds port $port; stop it or choose other ports (CONCILIARE_KEEP_SYSTEM_RABBITMQ=1 is set)"
    fi
    [[ $(id -u) -eq 0 ]] || die rabbitmq "Debian's system RabbitMQ node (pid $pid) holds port $port and only root can stop it"
    say rabbitmq "NOTE: stopping Debian's system RabbitMQ node (pid $pid, holds port $port) so ours can use it;"
    say rabbitmq "      bring it back later with: service rabbitmq-server start"
    # /usr/sbin/rabbitmqctl su's to user rabbitmq and uses that node's cookie.
    /usr/sbin/rabbitmqctl stop >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
    for _ in $(seq 60); do pid_alive "$pid" || return 0; sleep 0.5; done
    die rabbitmq "system RabbitMQ node (pid $pid) did not stop"
}

start_rabbitmq() {
    local d="$CONCILIARE_STATE/rabbitmq"
    local pidfile="$d/rabbitmq.pid" log="$d/startup.log"
    mkdir -p "$d/mnesia" "$d/log"

    if health_rabbitmq && rabbitmqctl_ours ping >/dev/null 2>&1; then
        say rabbitmq "already up (node $RABBITMQ_NODE, pid $(read_pid "$pidfile" || echo '?')), leaving it"
        return
    fi
    if ! read_pid "$pidfile" >/dev/null; then
        stop_system_rabbitmq
        if health_rabbitmq; then
            say rabbitmq "already up, but not our node ($(port_owner "$AMQP_PORT")); leaving it"
            return
        fi
        local port
        for port in "$AMQP_PORT" "$RABBITMQ_MGMT_PORT" "$RABBITMQ_DIST_PORT"; do
            if port_open "$port"; then
                die rabbitmq "port $port is in use by another process ($(port_owner "$port")); stop it or set a different port"
            fi
        done

        # Config is rewritten on each start so port overrides take effect.
        cat >"$d/rabbitmq.conf" <<EOF
# Generated by scripts/infra/start.sh -- edits are overwritten.
listeners.tcp.1 = $HOST:$AMQP_PORT
management.tcp.ip = $HOST
management.tcp.port = $RABBITMQ_MGMT_PORT
# guest/guest is the default user; it may only log in over loopback, which is all we listen on.
loopback_users.guest = true
# Dev machines and CI runners often have little free disk; don't block publishers.
disk_free_limit.absolute = 50MB
log.console = false
log.file.level = info
EOF
        # The consistent-hash exchange partitions enrolment requests by offering (README: click day).
        echo '[rabbitmq_management,rabbitmq_consistent_hash_exchange].' >"$d/enabled_plugins"
        : >"$d/rabbitmq-env.conf"

        # epmd (Erlang port mapper, 4369) is shared by all Erlang nodes. If none is
        # running we start it ourselves, on loopback, so stop.sh can stop it too.
        if ! epmd -names >/dev/null 2>&1; then
            launch epmd "$d/epmd.pid" "$d/epmd.log" epmd -address "$HOST"
            for _ in $(seq 50); do epmd -names >/dev/null 2>&1 && break; sleep 0.1; done
        fi

        say rabbitmq "starting node $RABBITMQ_NODE (amqp $AMQP_PORT, management $RABBITMQ_MGMT_PORT)"
        rm -f "$pidfile"
        # The node itself writes RABBITMQ_PID_FILE (the beam.smp pid); launcher.pid
        # is the rabbitmq-server wrapper script.
        (rabbitmq_env; launch rabbitmq "$d/launcher.pid" "$log" "$RABBITMQ_LIBBIN/rabbitmq-server")
    fi
    # While booting, the wrapper's pid (alive as long as the node) is what we watch.
    PENDING+=("rabbitmq|$d/launcher.pid|$log|health_rabbitmq_ours|$pidfile")
}

# Healthy = AMQP + management API answer with guest/guest, and it is our node.
health_rabbitmq_ours() { health_rabbitmq && rabbitmqctl_ours ping >/dev/null 2>&1; }

# ---------------------------------------------------------------------------
# MongoDB wire protocol: mongo-java-server through our launcher, on an H2 MVStore
# file in state/mongo/ (CONCILIARE_MONGO_BACKEND=h2, default) or in memory.
# ---------------------------------------------------------------------------
start_mongo() {
    local d="$CONCILIARE_STATE/mongo"
    local pidfile="$d/mongo.pid" log="$d/mongo.log"
    case "$MONGO_BACKEND" in
        h2|memory) ;;
        *) die mongo "CONCILIARE_MONGO_BACKEND=$MONGO_BACKEND: must be h2 or memory" ;;
    esac
    mkdir -p "$d"
    if already_up mongo "$pidfile" health_mongo "$MONGO_PORT"; then
        # The backend of a running server is whatever it was started with.
        local running
        running="$(mongo_backend_of "$pidfile")"
        if [[ -n "$running" && "$running" != "$MONGO_BACKEND" ]]; then
            warn mongo "running with backend $running, not $MONGO_BACKEND (CONCILIARE_MONGO_BACKEND); stop.sh first to switch"
        fi
        return
    fi
    if ! read_pid "$pidfile" >/dev/null; then
        # Checked only now: a server started from an older launcher may still be running.
        [[ -f "$MONGO_CLASSES/.verified" && -f "$MONGO_LIB/.complete" ]] ||
            die mongo "launcher $MONGO_LAUNCHER_HASH not built (no $MONGO_CLASSES/.verified); run scripts/infra/install.sh"
        if [[ "$MONGO_BACKEND" == h2 ]]; then
            say mongo "starting mongo-java-server $MONGO_SERVER_VERSION on $HOST:$MONGO_PORT (backend h2, $MONGO_DATA_FILE)"
            mongo_server_cmd h2 "$MONGO_PORT" "$MONGO_DATA_FILE"
        else
            say mongo "starting mongo-java-server $MONGO_SERVER_VERSION on $HOST:$MONGO_PORT (backend memory: starts empty)"
            mongo_server_cmd memory "$MONGO_PORT"
        fi
        launch mongo "$pidfile" "$log" "${MONGO_CMD[@]}"
    fi
    PENDING+=("mongo|$pidfile|$log|health_mongo")
}

# ---------------------------------------------------------------------------
# MinIO (single drive in state/minio/data)
# ---------------------------------------------------------------------------
start_minio() {
    local d="$CONCILIARE_STATE/minio"
    local pidfile="$d/minio.pid" log="$d/minio.log"
    [[ -x "$MINIO_BIN" ]] || die minio "$MINIO_BIN not found; run scripts/infra/install.sh"
    mkdir -p "$d/data" "$d/certs"
    already_up minio "$pidfile" health_minio "$MINIO_PORT" "$MINIO_CONSOLE_PORT" && return
    if ! read_pid "$pidfile" >/dev/null; then
        say minio "starting on $HOST:$MINIO_PORT (console $MINIO_CONSOLE_PORT, user $MINIO_ROOT_USER)"
        # --certs-dir keeps MinIO from creating ~/.minio; MINIO_UPDATE=off refuses
        # in-place binary self-updates (`mc admin update`): the binary is in our cache.
        MINIO_ROOT_USER="$MINIO_ROOT_USER" MINIO_ROOT_PASSWORD="$MINIO_ROOT_PASSWORD" \
            MINIO_UPDATE=off \
            launch minio "$pidfile" "$log" "$MINIO_BIN" server \
            --address "$HOST:$MINIO_PORT" --console-address "$HOST:$MINIO_CONSOLE_PORT" \
            --certs-dir "$d/certs" "$d/data"
    fi
    PENDING+=("minio|$pidfile|$log|health_minio")
}

# ---------------------------------------------------------------------------
# Zipkin (in-memory storage; traces are lost on restart)
# ---------------------------------------------------------------------------
start_zipkin() {
    local d="$CONCILIARE_STATE/zipkin"
    local pidfile="$d/zipkin.pid" log="$d/zipkin.log"
    [[ -s "$ZIPKIN_JAR" ]] || die zipkin "$ZIPKIN_JAR not found; run scripts/infra/install.sh"
    mkdir -p "$d"
    already_up zipkin "$pidfile" health_zipkin "$ZIPKIN_PORT" && return
    if ! read_pid "$pidfile" >/dev/null; then
        say zipkin "starting $ZIPKIN_VERSION on $HOST:$ZIPKIN_PORT"
        # Zipkin 3 (Armeria) ignores --server.address; binding to loopback needs the
        # whole armeria.ports[0] entry. MEM_MAX_SPANS keeps the heap bounded.
        # Lowest CPU priority: when the machine is saturated (a click day) families come
        # first and spans wait in the exporters' buffers. The session's autogroup gets
        # it too, as nice alone only orders processes inside one session.
        # shellcheck disable=SC2086
        MEM_MAX_SPANS="${MEM_MAX_SPANS:-100000}" \
            launch zipkin "$pidfile" "$log" nice -n 19 java ${CONCILIARE_ZIPKIN_JAVA_OPTS:--Xms64m -Xmx512m} \
            -jar "$ZIPKIN_JAR" \
            "--armeria.ports[0].port=$ZIPKIN_PORT" "--armeria.ports[0].ip=$HOST" \
            "--armeria.ports[0].protocols[0]=http"
        echo 19 >"/proc/$(cat "$pidfile")/autogroup" 2>/dev/null || true
    fi
    PENDING+=("zipkin|$pidfile|$log|health_zipkin")
}

# ---------------------------------------------------------------------------
# SMTP sink (a real SMTP server that keeps every message as a .eml file)
# ---------------------------------------------------------------------------
start_smtp() {
    local d="$CONCILIARE_STATE/smtp"
    local pidfile="$d/smtp.pid" log="$d/smtp.log"
    [[ -x "$SMTP_SINK_PYTHON" ]] || die smtp "$SMTP_SINK_PYTHON not found; run make install (the sink needs aiosmtpd)"
    mkdir -p "$d/mail"
    already_up smtp "$pidfile" health_smtp "$SMTP_PORT" && return
    if ! read_pid "$pidfile" >/dev/null; then
        say smtp "starting the SMTP sink on $HOST:$SMTP_PORT (mail in $d/mail)"
        launch smtp "$pidfile" "$log" "$SMTP_SINK_PYTHON" "$SMTP_SINK" --host "$HOST" --port "$SMTP_PORT" --dir "$d/mail"
    fi
    PENDING+=("smtp|$pidfile|$log|health_smtp")
}

command -v python3 >/dev/null || die infra "python3 is required for health checks"
mkdir -p "$CONCILIARE_STATE"
t0=$SECONDS
# Launch everything first, then wait, so the slow JVM/Erlang boots overlap.
PENDING=()   # "name|pidfile|log|healthfn[|report_pidfile]" of servers still booting
start_rabbitmq
start_mongo
start_minio
start_zipkin
start_smtp
for entry in "${PENDING[@]}"; do
    IFS='|' read -r -a args <<<"$entry"
    wait_up "${args[@]}"
done
say all "all servers up in $((SECONDS - t0))s; state in $CONCILIARE_STATE"
mongo_backend="$(mongo_backend_of "$CONCILIARE_STATE/mongo/mongo.pid")"
cat <<EOF
    AMQP_URI=amqp://guest:guest@$HOST:$AMQP_PORT/   (management http://$HOST:$RABBITMQ_MGMT_PORT guest/guest)
    MONGO_URI=mongodb://$HOST:$MONGO_PORT/   (backend ${mongo_backend:-unknown: not started by these scripts})
    MINIO_ENDPOINT=$HOST:$MINIO_PORT  ($MINIO_ROOT_USER / $MINIO_ROOT_PASSWORD; console http://$HOST:$MINIO_CONSOLE_PORT)
    ZIPKIN=http://$HOST:$ZIPKIN_PORT  (spans: http://$HOST:$ZIPKIN_PORT/api/v2/spans)
    SMTP=$HOST:$SMTP_PORT  (received mail: $CONCILIARE_STATE/smtp/mail/*.eml)
EOF
