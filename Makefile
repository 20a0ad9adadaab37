# Open Pay node. `make dev` runs it on embedded servers; `make test` runs the whole suite.
# Every target installs what it needs and is safe to re-run.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: dev test lint install install-python install-npm install-browser clean help

help:
	@echo "make dev    run the node on embedded PostgreSQL, Redis, NATS and anvil"
	@echo "make test   install what is needed, lint, and run the whole suite"
	@echo "make lint   ruff and mypy"

install: install-python install-npm

# Debian's Chromium for the browser tests (Playwright drives it; it never downloads a browser)
install-browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

install-python: $(VENV)/.installed
install-npm: contracts/node_modules/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

contracts/node_modules/.installed: contracts/package.json contracts/package-lock.json
	cd contracts && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

dev: install
	$(BIN)/openpay dev

lint: install-python
	$(BIN)/ruff check .
	$(BIN)/mypy

# the suite runs even when lint fails (both results are shown); either failing fails `make test`
test: install install-browser
	@status=0; $(BIN)/pytest $(PYTEST_ARGS) || status=$$?; $(MAKE) --no-print-directory lint || status=1; exit $$status

clean:
	rm -rf .openpay .build .pytest_cache .mypy_cache .ruff_cache
