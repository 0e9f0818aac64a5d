# tidbok: the two commands are `make run` and `make test`; everything else is set up by them.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
BENCH_INSTALLED := $(VENV)/.installed-bench

.PHONY: run test test-dates lint bench chaos clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(INSTALLED)

## run: create the venv, start PostgreSQL (embedded unless DATABASE_URL is set), migrate, load the demo data, serve
run: $(INSTALLED)
	$(PY) -m producer run

## test: lint, then the whole suite against a real PostgreSQL and a real server on loopback
test: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

## test-dates: the suite with the clock at other days (libfaketime; long, not part of make test)
## DATE="2027-10-27 10:00" for one date (Stockholm time; several: comma-separated); without it, every date in tests/dates.py
test-dates: $(INSTALLED)
	$(PY) -m tests.dates $(if $(DATE),"$(DATE)")

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# the bench extra (spyne, for the peer tidbok is measured against) on top of .[dev]
$(BENCH_INSTALLED): $(INSTALLED) pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_INSTALLED)

## bench: speed and memory figures, and the same two interactions on spyne beside them (not part of make test)
bench: $(BENCH_INSTALLED)
	$(PY) -m tests.bench.run

## chaos: residents book, rebook and cancel at 50/s while the publisher is killed, EI is down and slow and
## PostgreSQL restarts; then EI must match the calendar exactly (not part of make test; 300 s of load,
## TIDBOK_CHAOS_SECONDS=60 for a shorter try)
chaos: $(INSTALLED)
	$(PY) -m tests.chaos.run

clean:
	rm -rf $(VENV) .pgdata .pytest_cache .ruff_cache .hypothesis
