# Conciliare: `make run` starts everything with demo data, `make test` runs every test.
# Native mode (no Docker): servers are installed once per machine and cached in
# ~/.cache/conciliare; see scripts/infra/. Docker mode: deploy/compose.yaml.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
GATEWAY_URL ?= http://127.0.0.1:8000

.PHONY: help install infra run restart stop status test test-unit lint bench clean

help:
	@echo "make run    - install what is missing, start servers + services + gateway, load demo data"
	@echo "make test   - run every test (unit, integration, end-to-end) against real servers"
	@echo "make stop   - stop everything make run started"
	@echo "make restart - restart services and gateway (after a code change); servers stay up"
	@echo "make lint   - ruff + mypy"
	@echo "make bench  - benchmarks (results in bench/results/)"

$(STAMP): pyproject.toml
	@echo "==> [python] creating $(VENV) and installing the project"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)
	@bash scripts/infra/install.sh

infra: install
	@bash scripts/infra/start.sh

run: infra
	@echo "==> [app] starting services and gateway"
	@$(PY) scripts/stack.py start
	@echo "==> [demo] loading demo data (idempotent)"
	@$(PY) -m gateway.demo_users admin
	@$(PY) -m conciliare.demo.load --gateway $(GATEWAY_URL) --step organisations
	@$(PY) -m gateway.demo_users staff --ids .run/demo_ids.json
	@$(PY) -m conciliare.demo.load --gateway $(GATEWAY_URL) --step services
	@echo
	@echo "Gateway:       $(GATEWAY_URL)"
	@echo "OpenAPI docs:  $(GATEWAY_URL)/docs"
	@echo "Trace viewer:  http://127.0.0.1:9411/zipkin/"
	@echo "Demo token:    .run/demo_token (alliance manager of Castellanza), e.g."
	@echo "  curl -H \"Authorization: Bearer \$$(cat .run/demo_token)\" $(GATEWAY_URL)/v1/alliances"

# Application processes only (servers stay up): picks up code changes.
restart: install
	@$(PY) scripts/stack.py stop
	@$(MAKE) --no-print-directory run

stop:
	@test -x $(PY) && $(PY) scripts/stack.py stop || true
	@bash scripts/infra/stop.sh

status:
	@bash scripts/infra/status.sh || true
	@$(PY) scripts/stack.py status

# Every test against real servers. Servers already running (e.g. from `make run`)
# are reused and left running; servers this target starts are stopped at the end.
test: install
	@bash scripts/test.sh

test-unit: $(STAMP)
	@$(PY) -m pytest tests/unit -q

lint: $(STAMP)
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/mypy
	@$(VENV)/bin/lint-imports

bench: run
	@command -v wrk >/dev/null || apt-get install -y -qq wrk || (apt-get update -qq && apt-get install -y -qq wrk)
	@$(PY) -m bench.run

clean: stop
	rm -rf .run $(VENV)
