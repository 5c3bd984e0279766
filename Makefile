# loopml — the two commands of the quickstart are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: demo test lint services venv clean bench

# (Re)create the virtualenv when it is missing or pyproject.toml changed.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,torch,onnx,ray]'
	@touch $(STAMP)

venv: $(STAMP)

# System services the tests use (PostgreSQL binaries; the tests start their own private server).
services:
	@bash scripts/ensure-services.sh

lint: venv
	$(BIN)/ruff check src tests $(wildcard bench)
	$(BIN)/mypy

test: venv services lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: venv
	$(BIN)/loopml demo --path demo-workspace
	cd demo-workspace && ../$(BIN)/loopml data show customers

bench: venv
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) demo-workspace .pytest_cache .mypy_cache .ruff_cache
