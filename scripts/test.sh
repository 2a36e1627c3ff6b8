#!/usr/bin/env bash
# `make test`: start the servers if needed, run every test, stop what we started.
set -euo pipefail
cd "$(dirname "$0")/.."

started_here=0
if bash scripts/infra/status.sh >/dev/null 2>&1; then
    echo "==> [test] servers already running: reusing them (left running afterwards)"
else
    echo "==> [test] starting servers for the test run (MongoDB in memory)"
    # Test data is thrown away anyway: the memory backend writes nothing to disk and
    # cannot touch `make run`'s H2 file. Same server code as h2, so same semantics.
    CONCILIARE_MONGO_BACKEND=memory bash scripts/infra/start.sh
    started_here=1
fi

stop_servers() {
    if ((started_here)); then
        echo "==> [test] stopping the servers this run started"
        bash scripts/infra/stop.sh
    fi
}
trap stop_servers EXIT

.venv/bin/python -m pytest tests "$@"
