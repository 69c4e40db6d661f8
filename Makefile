# Teeka — the two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PG_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432
export TEEKA_DATABASE_URL ?= sqlite+aiosqlite:///var/teeka.sqlite3

.PHONY: run test lint venv clean bench bench-quick lock

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/activate
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	touch $@

venv: $(VENV)/.installed

## Serve the portal on http://127.0.0.1:8000 from an embedded SQLite database with demo data.
# Development mode: OTPs on the local outbox page, cookies over plain HTTP (never on a server).
run: export TEEKA_ENVIRONMENT = development
run: venv
	$(BIN)/teeka db upgrade
	$(BIN)/teeka demo
	@echo "Portal: http://127.0.0.1:8000   SMS and OTPs: http://127.0.0.1:8000/dev/outbox"
	$(BIN)/teeka serve --host 127.0.0.1 --port 8000

## The whole suite on SQLite, then again on PostgreSQL when it is reachable (always in CI).
test: venv
	TEEKA_TEST_DATABASE_URL= $(BIN)/pytest
	@if $(BIN)/python -m teeka.kit.pgcheck "$(PG_URL)/postgres"; then \
		db=teeka_test_$$$$; echo "== PostgreSQL ($$db) =="; \
		TEEKA_TEST_DATABASE_URL="$(PG_URL)/$$db" $(BIN)/pytest; \
	elif [ -n "$$TEEKA_REQUIRE_POSTGRES" ]; then \
		echo "PostgreSQL is required (TEEKA_REQUIRE_POSTGRES) but not reachable"; exit 1; \
	else echo "PostgreSQL not reachable: ran SQLite only"; fi

lint: venv
	$(BIN)/ruff check src tests migrations ops bench
	$(BIN)/mypy

## Resolve pyproject.toml afresh into constraints.txt (the versions CI installs); then make test.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install -q --upgrade pip && .lock-venv/bin/pip install -q -e '.[test]'
	{ sed -n '1,/^# make lock/p' constraints.txt; .lock-venv/bin/pip freeze --exclude-editable; } \
		> constraints.txt.new && mv constraints.txt.new constraints.txt && rm -rf .lock-venv
	rm -f $(VENV)/.installed

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

## The benchmark (docs/BENCHMARKS.md): full (minutes) or quick (< 60 s of load).
bench: venv
	@command -v wrk >/dev/null || (apt-get update -q && apt-get install -y -q wrk)
	$(BIN)/python bench/run.py

bench-quick: venv
	@command -v wrk >/dev/null || (apt-get update -q && apt-get install -y -q wrk)
	$(BIN)/python bench/run.py --quick

## Failover drill (root): three PostgreSQL nodes under Patroni (4.1 from PyPI, in its own
## virtualenv $(DRILL_VENV), quorum commit) with etcd and pgBackRest from Debian, two Teeka
## servers, booking load, node kills and a point-in-time restore. Ends with
## `drill: PASS lost_acks=0 …`. See docs/operations.md.
## Patroni runs as the postgres user, so its venv is built on Debian's /usr/bin/python3 (a
## Python under /root, e.g. pyenv's, is not readable by that user) and lives outside the
## checkout (a clone may sit in a folder the postgres user cannot enter, such as mktemp -d's).
DRILL_VENV ?= /opt/teeka-drill/venv
DRILL_PYTHON ?= /usr/bin/python3
PATRONI_VERSION := 4.1.5

$(DRILL_VENV)/.patroni-$(PATRONI_VERSION):
	@$(DRILL_PYTHON) -c 'import ensurepip, venv' 2>/dev/null || (apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null)
	rm -rf $(DRILL_VENV)
	install -d -m 0755 $(dir $(DRILL_VENV))
	$(DRILL_PYTHON) -m venv $(DRILL_VENV)
	$(DRILL_VENV)/bin/pip install -q 'patroni[etcd3,psycopg2-binary]==$(PATRONI_VERSION)'
	touch $@

.PHONY: drill
drill: venv $(DRILL_VENV)/.patroni-$(PATRONI_VERSION)
	@command -v etcd >/dev/null && command -v pgbackrest >/dev/null \
		|| (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			etcd-server pgbackrest >/dev/null)
	$(BIN)/python -m ops.drill --patroni $(DRILL_VENV)/bin/patroni
