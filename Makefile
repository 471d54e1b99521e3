# sdfleet: everything a new machine needs starts here.
#   make plan                  offline preview of the default stack (no cloud, no Pulumi CLI)
#   make plan STACK=aws-dev FORMAT=json
#   make test                  installs test needs (Debian packages too) and runs pytest
#   make bench                 prints one BENCH line per benchmark
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STACK  ?= dev
FORMAT ?= text
PYTEST_ARGS ?=

DEV_REQUIREMENTS := requirements-dev.txt $(shell sed -n 's/^-r //p' requirements-dev.txt)

LAMBDA_VENDOR := functions/submit/vendor

.PHONY: help plan test bench venv debian-packages lambda clean

help:
	@sed -n '2,6p' Makefile | sed 's/^# *//'

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip==25.3

$(VENV)/.core-installed: requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install -q -r requirements.txt
	@touch $@

$(VENV)/.dev-installed: $(DEV_REQUIREMENTS) $(VENV)/.core-installed
	$(PY) -m pip install -q -r requirements-dev.txt
	@touch $@

venv: $(VENV)/.core-installed

debian-packages:
	@tools/ensure_debian_packages.sh tests/debian-packages.txt

plan: $(VENV)/.core-installed
	@$(PY) -m tools.plan --stack $(STACK) --format $(FORMAT)

# configurable-http-proxy (the peer bench_router measures), from npm at the locked version,
# into benchmarks/chp/node_modules; needs the machine's Node.js >= 20 and npm.
CHP_DIR := benchmarks/chp

$(CHP_DIR)/node_modules/.installed: $(CHP_DIR)/package.json $(CHP_DIR)/package-lock.json
	@command -v npm >/dev/null || { echo "make bench needs Node.js >= 20 with npm" >&2; exit 1; }
	npm ci --prefix $(CHP_DIR) --no-audit --no-fund --loglevel=error
	@touch $@

test: $(VENV)/.dev-installed debian-packages $(CHP_DIR)/node_modules/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.dev-installed debian-packages $(CHP_DIR)/node_modules/.installed
	@$(PY) -m benchmarks.run

# The submit Lambda's dependencies, as Linux wheels for its runtime (python3.11, x86_64);
# boto3 comes with the runtime. Run before `pulumi up` of an AWS stack.
lambda: $(VENV)/bin/python
	rm -rf $(LAMBDA_VENDOR)
	$(PY) -m pip install -q --target $(LAMBDA_VENDOR) --implementation cp --python-version 3.11 \
		--platform manylinux2014_x86_64 --only-binary=:all: \
		$$(grep -E '^pydantic==' functions/submit/requirements.txt)
	@echo "vendored into $(LAMBDA_VENDOR)"

clean:
	rm -rf $(VENV) .pytest_cache $(LAMBDA_VENDOR)
