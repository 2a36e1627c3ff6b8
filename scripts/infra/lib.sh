# shellcheck shell=bash disable=SC2034  # variables are used by the scripts sourcing this
# Shared settings and helpers for the native (no-Docker) infrastructure scripts.
# Sourced by install.sh, start.sh, stop.sh and status.sh; not meant to be run.

INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$INFRA_DIR/../.." && pwd)"
# The SMTP sink is Python (aiosmtpd): it runs from the project's virtualenv, which
# `make install` creates before any server starts.
SMTP_SINK="$INFRA_DIR/smtp_sink.py"
SMTP_SINK_PYTHON="${CONCILIARE_SMTP_SINK_PYTHON:-$REPO_ROOT/.venv/bin/python}"
PROBE="$INFRA_DIR/probe.py"

# --- Where things live (outside the repo, shared by all checkouts) -----------
CONCILIARE_CACHE="${CONCILIARE_CACHE:-$HOME/.cache/conciliare}"   # built binaries, keyed by version
CONCILIARE_STATE="${CONCILIARE_STATE:-$HOME/.local/state/conciliare}"  # data, logs, pids

# --- Pinned versions (the cache key: bump one and install.sh rebuilds it) -----
MONGO_SERVER_VERSION="1.47.0"   # de.bwaldvogel:mongo-java-server (+ -h2-backend)
# slf4j-api version mongo-java-server 1.47.0 depends on; slf4j-simple must match it.
SLF4J_VERSION="2.0.17"
# What `go install github.com/minio/minio@latest` resolved to on 2026-02-12;
# pinned so the cache key (and the binary) is stable.
MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"
# Newest Zipkin 3.x on Maven Central; 3.x needs Java 17+.
ZIPKIN_VERSION="3.6.1"

# mongo-java-server: jars in lib/, plus our launcher compiled into a directory
# named after the hash of its source, so editing the launcher rebuilds (only) it.
MONGO_DIR="$CONCILIARE_CACHE/mongo-java-server-$MONGO_SERVER_VERSION"
MONGO_LIB="$MONGO_DIR/lib"
MONGO_LAUNCHER_SRC="$INFRA_DIR/mongo-server/MongoServerLauncher.java"
MONGO_LAUNCHER_HASH="$(sha256sum "$MONGO_LAUNCHER_SRC" 2>/dev/null)" || MONGO_LAUNCHER_HASH="missing"
MONGO_LAUNCHER_HASH="${MONGO_LAUNCHER_HASH:0:12}"
MONGO_CLASSES="$MONGO_DIR/launcher-$MONGO_LAUNCHER_HASH"
MONGO_MAIN_CLASS="MongoServerLauncher"
MINIO_BIN="$CONCILIARE_CACHE/minio-$MINIO_VERSION/minio"
ZIPKIN_JAR="$CONCILIARE_CACHE/zipkin-$ZIPKIN_VERSION/zipkin.jar"
RABBITMQ_LIBBIN="/usr/lib/rabbitmq/bin"   # Debian's real scripts (not the /usr/sbin su wrappers)

# --- Ports (loopback only) ----------------------------------------------------
HOST="127.0.0.1"
AMQP_PORT="${CONCILIARE_AMQP_PORT:-5672}"
RABBITMQ_MGMT_PORT="${CONCILIARE_RABBITMQ_MGMT_PORT:-15672}"
RABBITMQ_DIST_PORT="${CONCILIARE_RABBITMQ_DIST_PORT:-25672}"   # Erlang distribution (rabbitmqctl)
MONGO_PORT="${CONCILIARE_MONGO_PORT:-27017}"
MINIO_PORT="${CONCILIARE_MINIO_PORT:-9000}"
MINIO_CONSOLE_PORT="${CONCILIARE_MINIO_CONSOLE_PORT:-9001}"
ZIPKIN_PORT="${CONCILIARE_ZIPKIN_PORT:-9411}"
SMTP_PORT="${CONCILIARE_SMTP_PORT:-1025}"

RABBITMQ_NODE="${CONCILIARE_RABBITMQ_NODENAME:-conciliare@localhost}"
# h2: data in an H2 MVStore file that survives restarts (`make run`);
# memory: nothing on disk, every restart starts empty (test runs).
MONGO_BACKEND="${CONCILIARE_MONGO_BACKEND:-h2}"
MONGO_DATA_FILE="$CONCILIARE_STATE/mongo/conciliare.mv"
MINIO_ROOT_USER="${MINIO_ROOT_USER:-conciliare}"
MINIO_ROOT_PASSWORD="${MINIO_ROOT_PASSWORD:-conciliare-secret}"

# --- Output helpers -------------------------------------------------------------
say()  { printf '==> [%s] %s\n' "$1" "$2"; }
warn() { printf '==> [%s] WARNING: %s\n' "$1" "$2" >&2; }
die()  { printf '==> [%s] ERROR: %s\n' "$1" "$2" >&2; exit 1; }

# tail_log FILE: last lines of a log, indented, for error messages.
tail_log() {
    if [[ -s "$1" ]]; then
        printf -- '---- last lines of %s ----\n' "$1" >&2
        tail -n "${2:-25}" "$1" | sed 's/^/    /' >&2
        printf -- '----\n' >&2
    else
        printf '    (log %s is empty or missing)\n' "$1" >&2
    fi
}

# --- Process helpers -------------------------------------------------------------
# pid_alive PID: running and not a zombie. (Our daemons are reparented to PID 1,
# which may be slow to reap them; a zombie still passes `kill -0`.)
pid_alive() {
    local stat
    kill -0 "$1" 2>/dev/null || return 1
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    [[ "${stat:0:1}" != Z ]]
}

# read_pid FILE: print the pid stored in FILE if that process is alive.
read_pid() {
    local pid
    [[ -f "$1" ]] || return 1
    pid="$(tr -dc '0-9' < "$1")"
    [[ -n "$pid" ]] && pid_alive "$pid" && echo "$pid"
}

# NB: these helpers avoid `cmd | grep -q` style pipes: under `set -o pipefail`
# an early-exiting reader can make the whole pipeline fail at random (SIGPIPE).

# port_pid PORT: pid of the process listening on PORT (empty if unknown, e.g. not ours to see).
port_pid() {
    local out
    out="$(ss -ltnpH "sport = :$1" 2>/dev/null)" || true
    if [[ "$out" =~ pid=([0-9]+) ]]; then echo "${BASH_REMATCH[1]}"; fi
}

# port_owner PORT: "pid/command (user ...)" of whatever listens on PORT, for messages.
port_owner() {
    local pid
    pid="$(port_pid "$1")"
    if [[ -z "$pid" ]]; then echo "unknown process"; return; fi
    echo "pid $pid $(ps -o comm= -p "$pid" 2>/dev/null), user $(ps -o user= -p "$pid" 2>/dev/null)"
}

port_open() { python3 "$PROBE" port "$HOST" "$1" 2>/dev/null; }

# --- Health checks (quiet; exit 0 = healthy) ---------------------------------------
health_rabbitmq() {
    python3 "$PROBE" amqp "$HOST" "$AMQP_PORT" 2>/dev/null &&
        curl -fsS -m 3 -o /dev/null -u guest:guest "http://$HOST:$RABBITMQ_MGMT_PORT/api/overview" 2>/dev/null
}
health_mongo()    { python3 "$PROBE" mongo "$HOST" "$MONGO_PORT" 2>/dev/null; }
health_minio()    { curl -fsS -m 3 -o /dev/null "http://$HOST:$MINIO_PORT/minio/health/live" 2>/dev/null; }
health_zipkin()   { curl -fsS -m 3 -o /dev/null "http://$HOST:$ZIPKIN_PORT/health" 2>/dev/null; }
health_smtp()     { python3 "$SMTP_SINK" --check --host "$HOST" --port "$SMTP_PORT" >/dev/null 2>&1; }

# --- RabbitMQ: environment for *our* node ------------------------------------------
# Everything the node writes goes under $CONCILIARE_STATE/rabbitmq, and the CLI
# tools (rabbitmqctl) get the same variables so they talk to our node only.
rabbitmq_env() {
    local d="$CONCILIARE_STATE/rabbitmq"
    export RABBITMQ_NODENAME="$RABBITMQ_NODE"
    export RABBITMQ_NODE_IP_ADDRESS="$HOST"
    export RABBITMQ_NODE_PORT="$AMQP_PORT"
    export RABBITMQ_DIST_PORT
    export RABBITMQ_MNESIA_BASE="$d/mnesia"
    export RABBITMQ_LOG_BASE="$d/log"
    export RABBITMQ_PID_FILE="$d/rabbitmq.pid"
    export RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins"
    export RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf"
    export RABBITMQ_ADVANCED_CONFIG_FILE="$d/advanced.config"
    # Our own (empty) env file, so /etc/rabbitmq/rabbitmq-env.conf can't change our node.
    export RABBITMQ_CONF_ENV_FILE="$d/rabbitmq-env.conf"
    # Any epmd that Erlang starts for us listens on loopback only, and so do the
    # Erlang distribution listeners of the node and of rabbitmqctl (default: all interfaces).
    export ERL_EPMD_ADDRESS="$HOST"
    export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
    export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

# rabbitmqctl_ours ARGS...: rabbitmqctl against our node. Skipped (fails) when our
# node isn't registered with epmd: the CLI would otherwise spawn a stray
# `epmd -daemon` just to find out the node is down, and take ~1 s doing it.
rabbitmqctl_ours() {
    local names
    names="$(epmd -names 2>/dev/null)" || return 1
    [[ "$names" == *$'\n'"name ${RABBITMQ_NODE%@*} at port"* ]] || return 1
    (rabbitmq_env; "$RABBITMQ_LIBBIN/rabbitmqctl" -n "$RABBITMQ_NODE" "$@")
}

# --- mongo-java-server ------------------------------------------------------------
# mongo_server_cmd BACKEND PORT [FILE]: set MONGO_CMD to the command line that runs our
# launcher. JVM options: CONCILIARE_MONGO_JAVA_OPTS, else a heap by backend. With
# memory, the heap holds every document of every test run at once, ~3.6x its BSON
# size; 1 GB ran out with a few vouchers benchmarks and e2e runs side by side. With h2,
# documents live in the file and the heap only holds caches and query results.
# ExitOnOutOfMemoryError: a dead server shows up in status.sh; one limping on after
# an OOM may have half-applied a write.
mongo_server_cmd() {
    local opts default="-Xms64m -Xmx1g"
    if [[ "$1" == memory ]]; then default="-Xms64m -Xmx3g"; fi
    read -r -a opts <<<"${CONCILIARE_MONGO_JAVA_OPTS:-$default}"
    MONGO_CMD=(java "${opts[@]}" -XX:+ExitOnOutOfMemoryError -cp "$MONGO_CLASSES:$MONGO_LIB/*"
        "$MONGO_MAIN_CLASS" "$HOST" "$2" "$1" "${@:3}")
}

# mongo_backend_of PIDFILE: "h2" or "memory", read from the running launcher's
# arguments (the environment may have changed since it started); empty if unknown.
mongo_backend_of() {
    local pid args
    pid="$(read_pid "$1")" || return 0
    args="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" || return 0
    case "$args" in
        *" $MONGO_MAIN_CLASS "*" h2 "*) echo h2 ;;
        *" $MONGO_MAIN_CLASS "*" memory"*) echo memory ;;
    esac
}
