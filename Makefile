# One entry point for a fresh machine: `make demo` runs the whole loop, `make test` passes the tests.
VENV      ?= .venv
PY        := $(VENV)/bin/python
TWINCARE  := $(VENV)/bin/twincare
DEMO_DIR  ?= demo-data
RESIDENTS ?= 2000
DAYS      ?= 730
SEED      ?= 7
# the simulated history ends yesterday, so the page's dates read as this week
START     ?= $(shell python3 -c 'import datetime as d; print(d.date.today() - d.timedelta(days=$(DAYS)))')
PAST_WEEKS ?= 8

.PHONY: install system-deps contracts test test-fast test-live reliability lint demo serve bench clean

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock -e ".[dev]"
	touch $@

install: $(VENV)/.installed

# PostgreSQL (store tests) and Chromium (web page tests) come from Debian's packages.
system-deps:
	@if ! command -v chromium >/dev/null || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql chromium >/dev/null; \
	  else echo "note: chromium/postgresql missing and not root; their tests will skip"; fi; \
	fi

# The rooms and their allowed imports (pyproject.toml [tool.importlinter]); a second or so, so
# it runs first and a broken room fails the build before the long test run starts.
contracts: install
	$(VENV)/bin/lint-imports --no-cache

# Everything but the long reliability suites (marked `reliability`; `make reliability` runs them)
# and the live-events e2e (marked `live`; `make test-live`).
test: install system-deps contracts
	$(VENV)/bin/pytest -q -p no:cacheprovider -m "not reliability and not live"

# The reliability suites: schemathesis over the served document for every role (all phases) and
# process hygiene (these two only here), fault injection, races and the crash test (these three
# also in `make test`).
reliability: install system-deps contracts
	$(VENV)/bin/pytest -q -p no:cacheprovider -rxX tests/reliability tests/serving/test_races.py tests/e2e/test_crash.py

# a day of the event twin streamed through the real server (`bentoml serve`): a few minutes
test-live: install contracts
	$(VENV)/bin/pytest -q -p no:cacheprovider -m live

test-fast: install contracts
	$(VENV)/bin/pytest -q -m "not e2e and not slow and not live"

lint: install contracts
	$(VENV)/bin/ruff check twin features models training serving tests benchmarks

demo: install
	$(TWINCARE) simulate --residents $(RESIDENTS) --days $(DAYS) --seed $(SEED) --start $(START) --out $(DEMO_DIR)/history
	$(TWINCARE) calibrate $(DEMO_DIR)/history
	$(TWINCARE) features --history $(DEMO_DIR)/history --as-of weekly --out $(DEMO_DIR)/features
	$(TWINCARE) demo-train --history $(DEMO_DIR)/history --workdir $(DEMO_DIR) --features $(DEMO_DIR)/features
	$(TWINCARE) score --all --past-weeks $(PAST_WEEKS) --workdir $(DEMO_DIR)
	$(TWINCARE) serve --workdir $(DEMO_DIR)

bench: install
	$(PY) -m benchmarks.run_all

clean:
	rm -rf $(DEMO_DIR) .pytest_cache .import_linter_cache
