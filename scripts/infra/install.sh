#!/usr/bin/env bash
# Install/build the four infrastructure servers natively, once per machine.
#
#   RabbitMQ  Debian package rabbitmq-server (+ bundled management plugin)
#   mongo     mongo-java-server (MongoDB wire protocol, H2 MVStore or memory) from
#             Maven Central, run by our launcher (mongo-server/), compiled here
#   MinIO     `go install github.com/minio/minio@<pinned pseudo-version>`
#   Zipkin    zipkin-server exec jar from Maven Central
#
# Binaries are cached outside the repo in $CONCILIARE_CACHE (default
# ~/.cache/conciliare), one directory per server+version. A directory is only
# considered cached once it contains a ".verified" marker, written after the
# binary was built AND smoke-tested, so an interrupted build is simply redone.
# Re-running is cheap: every cached server is reported and skipped.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export DEBIAN_FRONTEND=noninteractive
mkdir -p "$CONCILIARE_CACHE"

# run_step SERVER STEP LOG CMD...: run CMD with output appended to LOG; on
# failure say which step failed, show the log tail and exit non-zero.
run_step() {
    local server="$1" step="$2" log="$3"; shift 3
    printf -- '--- %s: %s\n' "$step" "$*" >>"$log"
    local rc=0
    "$@" >>"$log" 2>&1 || rc=$?
    if ((rc != 0)); then
        printf '==> [%s] FAILED at step "%s" (exit %s). Full log: %s\n' "$server" "$step" "$rc" "$log" >&2
        tail_log "$log" 30
        exit 1
    fi
}

# elapsed START: "Xm YYs" since $SECONDS was START.
elapsed() { local t=$((SECONDS - $1)); printf '%dm%02ds' $((t / 60)) $((t % 60)); }

need_cmd() { command -v "$1" >/dev/null 2>&1; }

# free_port: an unused loopback TCP port for smoke tests.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_healthy SECONDS PID CMD...: poll CMD until it succeeds; fail if PID dies.
wait_healthy() {
    local deadline=$((SECONDS + $1)) pid="$2"; shift 2
    until "$@" >/dev/null 2>&1; do
        pid_alive "$pid" || { echo "process $pid exited before becoming healthy"; return 1; }
        ((SECONDS < deadline)) || { echo "not healthy after timeout"; return 1; }
        sleep 0.5
    done
}

stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

apt_install() {
    # Waits up to 10 min for another apt/dpkg run to release its lock instead of failing.
    apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "$@"
}

# ---------------------------------------------------------------------------
# Tools needed to build (Go, Java 17 JDK, Maven) and by the other scripts.
# ---------------------------------------------------------------------------
check_tools() {
    local missing=()
    need_cmd python3 || missing+=(python3)
    need_cmd curl || missing+=(curl)
    need_cmd ss || missing+=(iproute2)
    # The JDK, not just the JRE: install_mongo compiles our launcher with javac.
    if ! need_cmd java || ! need_cmd javac; then missing+=(openjdk-17-jdk-headless); fi
    need_cmd mvn || missing+=(maven)
    if ((${#missing[@]})); then
        [[ $(id -u) -eq 0 ]] || die tools "missing ${missing[*]} and not root; install them with apt-get"
        local log="$CONCILIARE_CACHE/apt-tools.log"
        say tools "installing ${missing[*]} with apt-get"
        run_step tools "apt-get update" "$log" apt-get -o DPkg::Lock::Timeout=600 update
        run_step tools "apt-get install ${missing[*]}" "$log" apt_install "${missing[@]}"
    fi
    # Debian's golang package is too old for MinIO; we expect a recent Go on PATH.
    need_cmd go || die tools "Go not found on PATH (need Go >= 1.24, e.g. /usr/local/go/bin)"
    local gov
    gov="$(go env GOVERSION)"
    # sort -C: true if already in order, i.e. go1.24 <= $gov.
    printf '%s\n' go1.24 "$gov" | sort -V -C ||
        die tools "Go $gov is too old (MinIO needs >= go1.24)"
    # Zipkin 3.x and our mongo launcher (javac --release 17) need Java 17+.
    local jv
    jv="$(java -XshowSettings:properties -version 2>&1 | awk -F' = ' '/java.specification.version/ {print $2}')"
    [[ "${jv%%.*}" -ge 17 ]] 2>/dev/null || die tools "Java $jv found; Zipkin 3 and the mongo launcher need Java 17+"
}

# ---------------------------------------------------------------------------
# RabbitMQ (Debian package). Not started here: start.sh runs our own node.
# ---------------------------------------------------------------------------
install_rabbitmq() {
    local log="$CONCILIARE_CACHE/rabbitmq-apt.log"
    local status
    status="$(dpkg-query -W -f='${Status}' rabbitmq-server 2>/dev/null)" || true
    if [[ "$status" == "install ok installed" ]]; then
        say rabbitmq "cached: Debian package $(dpkg-query -W -f='${Version}' rabbitmq-server) already installed"
    else
        [[ $(id -u) -eq 0 ]] || die rabbitmq "package rabbitmq-server not installed and not root (run: sudo apt-get install rabbitmq-server)"
        say rabbitmq "installing Debian package rabbitmq-server (first time, ~1 min)"
        : >"$log"
        run_step rabbitmq "apt-get update" "$log" apt-get -o DPkg::Lock::Timeout=600 update
        run_step rabbitmq "apt-get install rabbitmq-server" "$log" apt_install rabbitmq-server
        say rabbitmq "installed $(dpkg-query -W -f='${Version}' rabbitmq-server)"
    fi
    [[ -x "$RABBITMQ_LIBBIN/rabbitmq-server" ]] || die rabbitmq "$RABBITMQ_LIBBIN/rabbitmq-server missing; package layout unexpected"
    # The management plugin ships inside the Debian package (start.sh enables it).
    compgen -G "/usr/lib/rabbitmq/lib/rabbitmq_server-*/plugins/rabbitmq_management-*" >/dev/null ||
        die rabbitmq "rabbitmq_management plugin not found in the Debian package"
}

# ---------------------------------------------------------------------------
# mongo-java-server: its jars from Maven Central (through a generated pom), our
# launcher compiled against them, then a start/ping/SIGTERM smoke test on H2.
# ---------------------------------------------------------------------------
install_mongo() {
    local log="$MONGO_DIR/build.log"
    if [[ -f "$MONGO_CLASSES/.verified" && -f "$MONGO_LIB/.complete" ]]; then
        say mongo "cached: mongo-java-server $MONGO_SERVER_VERSION, launcher $MONGO_LAUNCHER_HASH in $MONGO_DIR"
        return
    fi
    [[ -f "$MONGO_LAUNCHER_SRC" ]] || die mongo "launcher source $MONGO_LAUNCHER_SRC missing"
    need_cmd javac || die mongo "javac not found (install openjdk-17-jdk-headless)"
    local t0=$SECONDS
    mkdir -p "$MONGO_DIR"
    : >"$log"

    if [[ ! -f "$MONGO_LIB/.complete" ]]; then
        say mongo "downloading mongo-java-server $MONGO_SERVER_VERSION from Maven Central (first time, ~15 s)"
        rm -rf "$MONGO_LIB" "$MONGO_DIR/m2"
        # The umbrella artifact brings core + memory backend; the H2 backend is
        # separate. slf4j-simple sends the server's own log lines to stdout.
        cat >"$MONGO_DIR/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/infra/install.sh, only to fetch the jars into lib/. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.conciliare</groupId>
  <artifactId>mongo-server-deps</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>de.bwaldvogel</groupId><artifactId>mongo-java-server</artifactId><version>$MONGO_SERVER_VERSION</version></dependency>
    <dependency><groupId>de.bwaldvogel</groupId><artifactId>mongo-java-server-h2-backend</artifactId><version>$MONGO_SERVER_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-simple</artifactId><version>$SLF4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
        # A throwaway local repository, as for Zipkin: lib/ is all we keep.
        run_step mongo "mvn dependency:copy-dependencies" "$log" \
            mvn -B -q -Dstyle.color=never -f "$MONGO_DIR/pom.xml" -Dmaven.repo.local="$MONGO_DIR/m2" \
            dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$MONGO_LIB"
        rm -rf "$MONGO_DIR/m2"
        [[ -f "$MONGO_LIB/mongo-java-server-h2-backend-$MONGO_SERVER_VERSION.jar" ]] ||
            die mongo "mongo-java-server-h2-backend-$MONGO_SERVER_VERSION.jar not in $MONGO_LIB after the download (see $log)"
        touch "$MONGO_LIB/.complete"
    fi

    say mongo "compiling launcher $MONGO_LAUNCHER_HASH (${MONGO_LAUNCHER_SRC#"$INFRA_DIR"/})"
    rm -rf "$MONGO_CLASSES"
    mkdir -p "$MONGO_CLASSES"
    run_step mongo "javac ${MONGO_LAUNCHER_SRC##*/}" "$log" \
        javac --release 17 -Xlint:all -Werror -d "$MONGO_CLASSES" -cp "$MONGO_LIB/*" "$MONGO_LAUNCHER_SRC"

    # Smoke test on the h2 backend (memory is the same code without the file): it
    # answers a ping and, on SIGTERM, exits cleanly after writing its store.
    local tmp port pid rc=0
    tmp="$(mktemp -d)"; port="$(free_port)"
    mongo_server_cmd h2 "$port" "$tmp/smoke.mv"
    printf -- '--- smoke test: %s\n' "${MONGO_CMD[*]}" >>"$log"
    "${MONGO_CMD[@]}" >"$tmp/mongo.log" 2>&1 &
    pid=$!
    if ! wait_healthy 60 "$pid" python3 "$PROBE" mongo 127.0.0.1 "$port" >>"$log"; then
        stop_pid "$pid"
        cat "$tmp/mongo.log" >>"$log"; rm -rf "$tmp"
        die mongo "smoke test failed: no MongoDB ping answer (see $log)"
    fi
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" || rc=$?
    cat "$tmp/mongo.log" >>"$log"
    # 143 = 128 + SIGTERM: how a JVM exits after running its shutdown hooks.
    if ((rc != 143 && rc != 0)) || [[ ! -s "$tmp/smoke.mv" ]]; then
        rm -rf "$tmp"
        die mongo "smoke test failed: exit status $rc after SIGTERM, or no H2 store written (see $log)"
    fi
    rm -rf "$tmp"

    touch "$MONGO_CLASSES/.verified"
    say mongo "installed and verified in $(elapsed "$t0"): $MONGO_DIR"
}

# ---------------------------------------------------------------------------
# MinIO: MinIO's documented community install, `go install`, with GOBIN in the cache.
# ---------------------------------------------------------------------------
install_minio() {
    local dir="${MINIO_BIN%/*}" log
    if [[ -x "$MINIO_BIN" && -f "$dir/.verified" ]]; then
        say minio "cached: $MINIO_BIN"
        return
    fi
    say minio "building $MINIO_VERSION with go install (first time, ~3-5 min on 2 cores)"
    local t0=$SECONDS
    rm -rf "$dir" && mkdir -p "$dir"
    log="$dir/build.log"
    : >"$log"
    run_step minio "go install github.com/minio/minio@$MINIO_VERSION" "$log" \
        env GOBIN="$dir" go install -trimpath "github.com/minio/minio@$MINIO_VERSION"
    run_step minio "minio --version" "$log" "$MINIO_BIN" --version

    # Smoke test: serve a scratch dir and answer the liveness probe.
    local tmp port cport pid
    tmp="$(mktemp -d)"; port="$(free_port)"; cport="$(free_port)"
    MINIO_ROOT_USER=smoketest MINIO_ROOT_PASSWORD=smoketest-secret \
        "$MINIO_BIN" server --address "127.0.0.1:$port" --console-address "127.0.0.1:$cport" \
        --certs-dir "$tmp/certs" "$tmp/data" >"$tmp/minio.log" 2>&1 &
    pid=$!
    if ! wait_healthy 60 "$pid" curl -fsS -o /dev/null "http://127.0.0.1:$port/minio/health/live" >>"$log"; then
        stop_pid "$pid"
        cat "$tmp/minio.log" >>"$log"; rm -rf "$tmp"
        die minio "smoke test failed: /minio/health/live never answered (see $log)"
    fi
    stop_pid "$pid"; rm -rf "$tmp"

    touch "$dir/.verified"
    say minio "built and verified in $(elapsed "$t0"): $MINIO_BIN"
}

# ---------------------------------------------------------------------------
# Zipkin: the self-contained exec jar from Maven Central.
# ---------------------------------------------------------------------------
install_zipkin() {
    local dir="${ZIPKIN_JAR%/*}" log
    if [[ -s "$ZIPKIN_JAR" && -f "$dir/.verified" ]]; then
        say zipkin "cached: $ZIPKIN_JAR"
        return
    fi
    say zipkin "downloading zipkin-server $ZIPKIN_VERSION exec jar from Maven Central (first time, ~1 min)"
    local t0=$SECONDS
    rm -rf "$dir" && mkdir -p "$dir"
    log="$dir/build.log"
    : >"$log"
    # A throwaway local repository, so the 130 MB jar isn't also kept in ~/.m2.
    run_step zipkin "mvn dependency:copy io.zipkin:zipkin-server:$ZIPKIN_VERSION:jar:exec" "$log" \
        mvn -B -q -Dstyle.color=never -Dmaven.repo.local="$dir/m2" dependency:copy \
        -Dartifact="io.zipkin:zipkin-server:$ZIPKIN_VERSION:jar:exec" -DoutputDirectory="$dir"
    rm -rf "$dir/m2"
    mv "$dir/zipkin-server-$ZIPKIN_VERSION-exec.jar" "$ZIPKIN_JAR"

    # Smoke test: starts on this Java and reports /health UP (~10 s).
    local tmp port pid
    tmp="$(mktemp -d)"; port="$(free_port)"
    java -jar "$ZIPKIN_JAR" "--armeria.ports[0].port=$port" "--armeria.ports[0].ip=127.0.0.1" \
        "--armeria.ports[0].protocols[0]=http" >"$tmp/zipkin.log" 2>&1 &
    pid=$!
    if ! wait_healthy 120 "$pid" curl -fsS -o /dev/null "http://127.0.0.1:$port/health" >>"$log"; then
        stop_pid "$pid"
        cat "$tmp/zipkin.log" >>"$log"; rm -rf "$tmp"
        die zipkin "smoke test failed: /health never answered (see $log)"
    fi
    stop_pid "$pid"; rm -rf "$tmp"

    touch "$dir/.verified"
    say zipkin "downloaded and verified in $(elapsed "$t0"): $ZIPKIN_JAR"
}

check_tools
install_rabbitmq
install_mongo
install_minio
install_zipkin
say all "installed; cache: $CONCILIARE_CACHE"
