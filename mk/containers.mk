# Images, the container tests and the kind cluster (included by the top-level Makefile,
# which defines BIN and install-dev).
#
#   make container-tests     engine + images when missing or stale (.ci/containers.sh), then tests/containers
#   make images              both images FROM $(BASE_IMAGE) (python:3.11-slim; pulls it)
#   make base-image          a python base from Debian packages, for machines with no registry:
#                            then `make images BASE_IMAGE=modelfactory/python:3.11-bookworm WHEELHOUSE=1`
#   make kind-up / kind-e2e / kind-down    a kind cluster with KFP and the chart, its test suite, its removal

BASE_IMAGE ?= python:3.11-slim
LOCAL_BASE_IMAGE ?= modelfactory/python:3.11-bookworm
WHEELHOUSE ?= 0

.PHONY: base-image images container-images container-tests kind-up kind-e2e kind-down

## A Python 3.11 base image made with debootstrap (needs root and a running Docker engine).
base-image:
	bash tools/build-base-image.sh $(LOCAL_BASE_IMAGE)

## modelfactory-components and modelfactory-serving FROM $(BASE_IMAGE); WHEELHOUSE=1 when builds have no index.
images:
	BASE_IMAGE=$(BASE_IMAGE) WHEELHOUSE=$(WHEELHOUSE) bash tools/build-images.sh

## Everything the container tests need, reused when current: docker.io, dockerd, the base and both images.
container-images:
	bash .ci/containers.sh

## The images run for real: the pipeline under kfp's DockerRunner, the serving image, image hygiene.
container-tests: install-dev container-images
	$(BIN)/python -m pytest tests/containers

## A kind cluster with the images loaded, Kubeflow Pipelines and the chart (tools/kind-up.sh).
kind-up:
	BASE_IMAGE=$(BASE_IMAGE) bash tools/kind-up.sh

## The cluster suite against the current kubeconfig's cluster (kind from kind-up): the chart
## tests plus the pipeline run and the served model. MODELFACTORY_KUBECONFIG names it.
kind-e2e: install-dev
	MODELFACTORY_KUBECONFIG="$${MODELFACTORY_KUBECONFIG:-$${KUBECONFIG:-$$HOME/.kube/config}}" \
	  $(BIN)/python -m pytest tests/cluster -m cluster

kind-down:
	bash tools/kind-down.sh
