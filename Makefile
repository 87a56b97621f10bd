# voxmon developer entry points. Every target creates .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test lint bench demo docs clean

# The client is its own distribution (client/): installed first, so voxmon's `demo` and
# `test` extras find it here instead of asking an index for it.
$(STAMP): pyproject.toml client/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e './client[aiohttp]'
	$(BIN)/python -m pip install -q -e '.[demo]'
	touch $@

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[test,lint]'
	touch $@

run: $(STAMP)
	$(BIN)/voxmon serve

test: $(TEST_STAMP)
	$(BIN)/python -m pytest

lint: $(TEST_STAMP)
	$(BIN)/ruff check exporter rollup tests benchmarks client monitoring
	$(BIN)/ruff format --check exporter rollup tests benchmarks client monitoring
	$(BIN)/mypy
	$(BIN)/mypy --strict monitoring/runbooks.py
	$(BIN)/mypy --explicit-package-bases benchmarks/*.py

# Every benchmark; benchmarks/goals.py last runs ingest, rollup, queries and inflight (SQLite,
# and PostgreSQL on BENCH_DATABASE_URL) and ends with the table of issue 15's goals, met or not,
# then with the ingest commit alone, whole and less each of voxmon's parts (commit.py).
BENCH_DATABASE_URL ?= postgresql://root@127.0.0.1:5432/postgres
bench: $(STAMP)
	$(BIN)/python benchmarks/client.py
	$(BIN)/python benchmarks/startup.py
	$(BIN)/python benchmarks/orgs.py
	$(BIN)/python benchmarks/hostile.py
	$(BIN)/python benchmarks/concurrency.py
	$(BIN)/python benchmarks/wal_pages.py
	$(BIN)/python benchmarks/goals.py --database-url '$(BENCH_DATABASE_URL)'

# voxmon and the demo traffic generator together (voxmon demo --serve). A daemon already on
# this database or port stops it before anything starts; if its daemon exits, the demo stops
# with the daemon's error; Ctrl-C (or the end of a --duration run) finishes the notes in
# flight, then stops both and exits 0.
# Extra generator flags: make demo DEMO_ARGS="--rate 20 --orgs 50".
demo: $(STAMP)
	@$(BIN)/voxmon demo --serve $(DEMO_ARGS)

# The generated configuration reference (tests/test_reference.py fails when it is stale).
docs: $(STAMP)
	$(BIN)/python -m exporter.reference > docs/configuration.md

clean:
	rm -rf $(VENV) build *.egg-info client/build client/*.egg-info
