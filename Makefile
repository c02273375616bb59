# pilotfish — two commands for a newcomer: `make demo` and `make test` (both install first).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: install demo test unit integration lint format bench lock clean

install:
	@./scripts/bootstrap.sh

demo: install
	$(PY) -m pilotfish demo

test: install lint
	$(PY) -m pytest $(PYTEST_ARGS)

unit: install
	$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

integration: install
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

bench: install
	$(PY) -m bench

# Re-pin Python dependencies after editing pyproject.toml.
lock:
	uv pip compile -q pyproject.toml --extra dev -o requirements.lock --python-version 3.11

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
