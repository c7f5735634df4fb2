# The two commands of the README: `make demo` and `make test`. Both bootstrap .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The simulator's limit is raised from Discogs' 60/min so the ~1,000-item demo pulls in ~1 min.
DEMO_RATE_LIMIT ?= 900
DEMO_LATENCY ?= 0.02

# The catalogue first: the releases the simulator serves, written as a Discogs monthly dump and
# loaded by the real loader into DATA_DIR/catalogue (a few seconds).
DEMO_DUMP_DIR ?= $(or $(TOOLKIT_DATA_DIR),data)/simulator-dump
# The pull takes every release the catalogue holds from it and asks the API only for the rest.
DEMO_PULL_DETAILS ?= --details-from auto

# Marketplace prices cost one request per release (~970 for the demo collection, ~70 s at 900/min):
# each demo pull asks for at most DEMO_MARKET_MAX of them, those fetched longest ago first, so the
# two pulls cover the collection and the second prices a few releases again (a price history).
DEMO_MARKET_MAX ?= 500
DEMO_PULL := $(BIN)/discogs-toolkit pull --simulator --username demo $(DEMO_PULL_DETAILS) \
	--simulator-rate-limit $(DEMO_RATE_LIMIT) --simulator-latency $(DEMO_LATENCY) \
	--value --wants --market --market-max $(DEMO_MARKET_MAX)

# --simulator everywhere: the demo never talks to a server configured in DISCOGS_API_URL / .env.
# The simulator's releases are loaded as the catalogue; then two pulls of a collection that changes
# in between (--simulator-epoch 1: items added and removed, prices moved), then `history`.
# toolkit.notebook prints the paths it used (the database honours TOOLKIT_DATA_DIR) and writes
# reports/index.html (every chart, captioned, and the notebooks); its last line is that page's
# path. Notebook 01 pulls the same changed world again (nothing changes).
demo: $(STAMP)
	rm -f $(DEMO_DUMP_DIR)/discogs_*_*.xml.gz
	$(BIN)/discogs-toolkit catalogue simulate-dump $(DEMO_DUMP_DIR)
	$(BIN)/discogs-toolkit catalogue load $(DEMO_DUMP_DIR)/discogs_*_*.xml.gz
	$(DEMO_PULL)
	$(DEMO_PULL) --simulator-epoch 1
	$(BIN)/discogs-toolkit history --limit 3
	$(BIN)/python -m toolkit.notebook --output reports --simulator \
		--simulator-rate-limit $(DEMO_RATE_LIMIT) --param simulator_epoch=1

lint: $(STAMP)
	$(BIN)/ruff check toolkit tests
	$(BIN)/ruff format --check toolkit tests
	$(BIN)/mypy

# Three pytest-xdist workers on two cores: the suite waits on servers, subprocesses and kernels
# much of the time (measured here: 154 s with 2 workers, 123-137 s with 3).
PYTEST_WORKERS ?= 3

# scripts/redis.sh installs (Debian's redis-server, if missing) and starts the private Redis the
# shared-budget tests use; it is stopped again whatever pytest's result.
test: lint
	@scripts/redis.sh start >/dev/null
	@TEST_REDIS_URL="$$(cat .redis-test/url 2>/dev/null)" $(BIN)/python -m pytest -n $(PYTEST_WORKERS); \
		status=$$?; scripts/redis.sh stop; exit $$status

# The suite without tests marked slow (real servers, subprocesses, notebooks): for quick iteration.
test-fast: lint
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -m "not slow"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
