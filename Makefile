# Two entry points on a fresh machine: `make test` and `make demo`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo docs lint typecheck bench clean system-deps lock

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

# The container image installs from these hash-pinned locks (docs/container.md):
# requirements.lock holds the service's dependencies, requirements-simulator.lock the
# same pins plus scikit-learn. uv keeps the pins already there; LOCK_FLAGS=--upgrade
# moves them all to the newest releases pyproject.toml allows.
LOCK := $(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 \
	--generate-hashes --custom-compile-command 'make lock' --quiet $(LOCK_FLAGS)

lock: $(STAMP)
	$(LOCK) -o requirements.lock
	$(LOCK) --extra simulator --constraint requirements.lock -o requirements-simulator.lock

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
