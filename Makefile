# modelfactory: `make demo` runs the whole lifecycle locally, `make test` runs the tests.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
export PATH := $(CURDIR)/.tools/bin:$(PATH)

.PHONY: demo test install install-dev tools up pipelines lint clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip uv

$(VENV)/.installed: $(VENV)/bin/python pyproject.toml
	$(BIN)/uv pip install --python $(BIN)/python -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/uv pip install --python $(BIN)/python -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## Tools the tests need that do not come from pip (helm); installed under .tools/
tools:
	bash tools/install-tools.sh

## The whole lifecycle on one machine: data, pipeline, registry, serving, predictions.
demo: install
	$(BIN)/modelfactory demo

## Every test: unit, integration against real servers, chart checks, the chart on a local
## control plane (k8s-tools: mk/cluster.mk).
test: install-dev tools k8s-tools
	$(BIN)/python -m pytest

## Keep MLflow and the champion's service running until Ctrl-C.
up: install
	$(BIN)/modelfactory up

## Recompile the pipelines' YAML (what a user uploads to the KFP UI).
pipelines: install
	$(BIN)/python -m pipelines.compile

lint: install-dev
	$(BIN)/ruff check modelfactory components pipelines serving tests benchmarks

clean:
	rm -rf $(VENV) .tools .pytest_cache local_outputs

# Further targets by part (images, kind cluster, ...) live beside this file.
-include mk/*.mk
