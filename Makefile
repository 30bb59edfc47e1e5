# The README's two commands are `make demo` and `make test`; both run `make setup`
# first, which is idempotent and quick when nothing is left to do.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
SANDBOX ?= swarmop

.PHONY: setup setup-machine setup-venv demo test lint typecheck unit cluster clean-sandboxes

setup: setup-machine setup-venv

setup-machine:
	@bash scripts/setup-machine.sh

setup-venv:
	@bash scripts/setup-venv.sh

demo: setup
	@SANDBOX=$(SANDBOX) bash scripts/demo.sh

lint:
	$(BIN)/ruff check swarmop handlers tui templates tests bench examples
	$(BIN)/ruff format --check swarmop handlers tui templates tests bench examples

typecheck:
	@bash scripts/typecheck.sh

# The whole suite: lint, types, unit tests, then the cluster tests against a
# real sandbox swarm that the test session brings up and tears down itself.
test: setup lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean-sandboxes:
	$(BIN)/swarmop sandbox down --all
