# GradGuide — every target sets itself up: a fresh clone needs only Python 3.11+ and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: chat test faults lint bench ingest install clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "GradGuide needs Python 3.11 or newer (set PYTHON=python3.11)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## chat: talk to GradGuide in the terminal (builds the index on first use)
chat: $(STAMP)
	$(BIN)/gradguide chat

## test: lint, type-check and run the test suite
test: lint
	$(BIN)/pytest

## faults: Bot API errors, a PostgreSQL restart, a replica killed, Chroma down (a real scale-out, ~5 min)
faults: $(STAMP)
	$(BIN)/pytest tests/faults -p no:randomly -n 0

lint: $(STAMP)
	$(BIN)/ruff check bot tests bench
	$(BIN)/ruff format --check bot tests bench
	$(BIN)/mypy

## ingest: add or update the bundled knowledge base
ingest: $(STAMP)
	$(BIN)/gradguide kb ingest knowledge

## bench: retrieval quality, latency and ingest time
bench: $(STAMP)
	$(BIN)/python bench/retrieval.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
