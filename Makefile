# modelfactory: `make demo` runs the whole lifecycle locally, `make test` runs the tests.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
# Every install (make, CI, the images) takes the versions pinned here; `make lock` refreshes them.
LOCK   := requirements/constraints.txt
UV_VERSION := 0.13.9
UV_INSTALL := $(BIN)/uv pip install --python $(BIN)/python -q -c $(LOCK) --build-constraints $(LOCK)
LOCK_COMPILE = $(BIN)/uv pip compile pyproject.toml requirements/build.in --extra dev --extra postgres \
  --python-version 3.11 --python-platform x86_64-manylinux_2_28 -q --custom-compile-command "make lock" \
  -o $(LOCK)
export PATH := $(CURDIR)/.tools/bin:$(PATH)

.PHONY: demo test install install-dev tools up pipelines lint lock lock-upgrade clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.installed: $(VENV)/bin/python pyproject.toml setup.py $(LOCK)
	$(UV_INSTALL) -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(UV_INSTALL) -e '.[dev]'
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
## control plane (k8s-tools: mk/cluster.mk), the gRPC port's HTTP/2 conformance (h2spec:
## mk/h2spec.mk).
test: install-dev tools k8s-tools h2spec
	$(BIN)/python -m pytest

## Keep MLflow and the champion's service running until Ctrl-C.
up: install
	$(BIN)/modelfactory up

## Recompile the pipelines' YAML (what a user uploads to the KFP UI and `modelfactory run` runs).
pipelines: install
	$(BIN)/python -m modelfactory_pipelines.compile

## Lint, format and type checks (CI runs this beside `make test`).
lint: install-dev
	$(BIN)/ruff check modelfactory components pipelines serving tests benchmarks
	$(BIN)/ruff format --check modelfactory components pipelines serving tests benchmarks
	$(BIN)/mypy modelfactory
	$(BIN)/lint-imports

## Pin what pyproject.toml added or changed, keeping every other pin; commit the result.
lock: $(VENV)/bin/python
	$(LOCK_COMPILE)

## Refresh every pin to the newest version pyproject.toml allows; run the tests, commit.
lock-upgrade: $(VENV)/bin/python
	$(LOCK_COMPILE) --upgrade

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache local_outputs

# Further targets by part (images, kind cluster, ...) live beside this file.
-include mk/*.mk
