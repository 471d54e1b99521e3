# sdfleet: everything a new machine needs starts here.
#   make plan                  offline preview of the default stack (no cloud, no Pulumi CLI)
#   make plan STACK=aws-dev FORMAT=json
#   make test                  installs test needs (Debian packages too) and runs pytest
#   make bench                 prints one BENCH line per benchmark
#   make demo                  the real data plane on this machine, two people in a browser
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STACK  ?= dev
FORMAT ?= text
PYTEST_ARGS ?=

DEV_REQUIREMENTS := requirements-dev.txt $(shell sed -n 's/^-r //p' requirements-dev.txt) \
                    tests/requirements-runner.txt

# The WebUI image's programs are tested on the image's own Python (ARG PYTHON_VERSION in its
# Dockerfile), from pyenv or PATH, with the image's own pins.
WEBUI_PYTHON_VERSION := $(shell sed -n 's/^ARG PYTHON_VERSION=//p' images/webui/Dockerfile | head -1)
WEBUI_PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/$(WEBUI_PYTHON_VERSION).*/bin/python$(WEBUI_PYTHON_VERSION)) \
                  $(shell PATH=$$(echo "$$PATH" | tr ':' '\n' | grep -v /shims | paste -sd:) command -v python$(WEBUI_PYTHON_VERSION)))
WEBUI_VENV := .venvs/webui
# The queue agent's tests (tests/batch: the agent and the submit function, run as processes)
# on the agent image's Python (its Dockerfile's python:<version> base) with the agent's own
# pins, plus the test runner and moto.
AGENT_PYTHON_VERSION := $(shell sed -n 's/^ARG BASE_IMAGE=python:\([0-9]*\.[0-9]*\).*/\1/p' images/queue-agent/Dockerfile | head -1)
AGENT_PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/$(AGENT_PYTHON_VERSION).*/bin/python$(AGENT_PYTHON_VERSION)) \
                  $(shell PATH=$$(echo "$$PATH" | tr ':' '\n' | grep -v /shims | paste -sd:) command -v python$(AGENT_PYTHON_VERSION)))
AGENT_VENV := .venvs/queue-agent

LAMBDA_VENDOR := functions/submit/vendor

.PHONY: help plan preflight test bench demo venv webui-env demo-env debian-packages lambda clean

help:
	@sed -n '2,7p' Makefile | sed 's/^# *//'

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

$(WEBUI_VENV)/.installed: images/webui/requirements.txt tests/requirements-runner.txt
	@test -n "$(WEBUI_PYTHON)" || { echo "make test needs python$(WEBUI_PYTHON_VERSION), the WebUI image's Python (images/webui/Dockerfile ARG PYTHON_VERSION): install it with pyenv (pyenv install $(WEBUI_PYTHON_VERSION)) or put python$(WEBUI_PYTHON_VERSION) on PATH" >&2; exit 1; }
	$(WEBUI_PYTHON) -m venv --clear $(WEBUI_VENV)
	$(WEBUI_VENV)/bin/python -m pip install -q -r images/webui/requirements.txt -r tests/requirements-runner.txt
	@touch $@

webui-env: $(WEBUI_VENV)/.installed

$(AGENT_VENV)/.installed: images/queue-agent/requirements.txt tests/requirements-runner.txt tests/batch/requirements.txt
	@test -n "$(AGENT_PYTHON)" || { echo "make test needs python$(AGENT_PYTHON_VERSION), the queue agent image's Python (images/queue-agent/Dockerfile BASE_IMAGE): install it with pyenv (pyenv install $(AGENT_PYTHON_VERSION)) or put python$(AGENT_PYTHON_VERSION) on PATH" >&2; exit 1; }
	$(AGENT_PYTHON) -m venv --clear $(AGENT_VENV)
	$(AGENT_VENV)/bin/python -m pip install -q -r images/queue-agent/requirements.txt -r tests/requirements-runner.txt -r tests/batch/requirements.txt
	@touch $@

# The demo's stand-in WebUI in its own venv on the image's Python, as a framework has its own.
DEMO_WEBUI_VENV := .venvs/demo-webui

$(DEMO_WEBUI_VENV)/.installed: tools/demo/standin-requirements.txt
	@test -n "$(WEBUI_PYTHON)" || { echo "make demo needs python$(WEBUI_PYTHON_VERSION) (pyenv install $(WEBUI_PYTHON_VERSION))" >&2; exit 1; }
	$(WEBUI_PYTHON) -m venv --clear $(DEMO_WEBUI_VENV)
	$(DEMO_WEBUI_VENV)/bin/python -m pip install -q -r tools/demo/standin-requirements.txt
	@touch $@

demo-env: $(DEMO_WEBUI_VENV)/.installed

debian-packages:
	@tools/ensure_debian_packages.sh tests/debian-packages.txt

plan: $(VENV)/.core-installed
	@$(PY) -m tools.plan --stack $(STACK) --format $(FORMAT)

# Read-only checks of the cloud account with your own credentials (exit 2 on any ✗).
preflight: $(VENV)/.core-installed
	@$(PY) -m tools.preflight --stack $(STACK)

# configurable-http-proxy (the peer bench_router measures), from npm at the locked version,
# into benchmarks/chp/node_modules; needs the machine's Node.js >= 20 and npm.
CHP_DIR := benchmarks/chp

$(CHP_DIR)/node_modules/.installed: $(CHP_DIR)/package.json $(CHP_DIR)/package-lock.json
	@command -v npm >/dev/null || { echo "make bench needs Node.js >= 20 with npm" >&2; exit 1; }
	npm ci --prefix $(CHP_DIR) --no-audit --no-fund --loglevel=error
	@touch $@

# Three runs: everything but the images' programs in the dev venv, then the WebUI image's and
# the queue agent's on their own images' Python and pins; all run, and any failing fails.
test: $(VENV)/.dev-installed $(WEBUI_VENV)/.installed $(AGENT_VENV)/.installed $(DEMO_WEBUI_VENV)/.installed debian-packages $(CHP_DIR)/node_modules/.installed
	@status=0; \
	$(PY) -m pytest --ignore=tests/images --ignore=tests/batch $(PYTEST_ARGS) || status=$$?; \
	echo "== tests/images on the WebUI image's Python ($$($(WEBUI_VENV)/bin/python -V))"; \
	$(WEBUI_VENV)/bin/python -m pytest tests/images $(PYTEST_ARGS) || status=$$?; \
	echo "== tests/batch on the queue agent image's Python ($$($(AGENT_VENV)/bin/python -V))"; \
	$(AGENT_VENV)/bin/python -m pytest tests/batch $(PYTEST_ARGS) || status=$$?; \
	exit $$status

# Everything runs on loopback; Ctrl-C stops it all (README, "See it first").
demo: $(VENV)/.dev-installed $(WEBUI_VENV)/.installed $(DEMO_WEBUI_VENV)/.installed debian-packages
	@$(PY) -m tools.demo --stack $(or $(DEMO_STACK),demo) $(if $(PORT),--port $(PORT))

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
	rm -rf $(VENV) .venvs .pytest_cache $(LAMBDA_VENDOR)
