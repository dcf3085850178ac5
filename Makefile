# Two entry points: `make build` builds a release from the raw drop, `make test` runs the tests
# (`make lint` adds the format check, `make ui` serves Dagster's UI). Each creates the virtual
# environment on first use; torch is pinned to the CPU build on this project's machines' disk,
# every other package to the tested set in constraints.txt.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DAGSTER_HOME ?= $(CURDIR)/.dagster

.PHONY: build test lint ui

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

build: $(STAMP)
	$(VENV)/bin/nasmr build

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

ui: $(STAMP)
	DAGSTER_HOME=$(DAGSTER_HOME) $(VENV)/bin/nasmr ui
