# Two entry points on a fresh machine: `make test` and `make demo`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo docs lint typecheck bench clean system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

# The tests start their own redis-server and drive the dashboard in headless
# Chromium; a fresh machine may have neither.
system-deps:
	@command -v redis-server >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; }
	@command -v chromium >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck system-deps
	$(BIN)/pytest

demo: $(STAMP)
	$(BIN)/bandit-router demo

# docs/configuration.md is generated from the config models (tests/test_docs.py checks it).
docs: $(STAMP)
	$(BIN)/python -m common.config_reference --write docs/configuration.md

bench: $(STAMP)
	$(BIN)/python bench/decide.py
	$(BIN)/python bench/regret.py
	$(BIN)/python bench/loop.py
	$(BIN)/python bench/replay.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
