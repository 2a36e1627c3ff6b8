#!/usr/bin/env bash
# One line per server: up/down (by health check, not just an open port), port(s),
# and pid. "pid=-" with "up" means something answers that start.sh didn't start.
# Exit status: 0 if all servers are up, 3 otherwise (handy for `make` / CI).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

all_up=1
line() {  # line NAME HEALTHFN PIDFILE PORTS
    local name="$1" health="$2" pidfile="$3" ports="$4" state pid
    if "$health"; then state=up; else state=down; all_up=0; fi
    pid="$(read_pid "$pidfile" || echo -)"
    printf '%-9s %-5s %-36s pid=%s\n' "$name" "$state" "$ports" "$pid"
}

line rabbitmq health_rabbitmq "$CONCILIARE_STATE/rabbitmq/rabbitmq.pid" \
    "amqp=$AMQP_PORT management=$RABBITMQ_MGMT_PORT"
mongo_backend="$(mongo_backend_of "$CONCILIARE_STATE/mongo/mongo.pid")"
line mongo health_mongo "$CONCILIARE_STATE/mongo/mongo.pid" "mongodb=$MONGO_PORT${mongo_backend:+ backend=$mongo_backend}"
line minio health_minio "$CONCILIARE_STATE/minio/minio.pid" "s3=$MINIO_PORT console=$MINIO_CONSOLE_PORT"
line zipkin health_zipkin "$CONCILIARE_STATE/zipkin/zipkin.pid" "http=$ZIPKIN_PORT"
line smtp health_smtp "$CONCILIARE_STATE/smtp/smtp.pid" "smtp=$SMTP_PORT"

((all_up)) || exit 3
