# The local Kubernetes control plane the cluster tests run against (included by the
# top-level Makefile; `make test` depends on k8s-tools).
#
#   make k8s-tools            etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
#                             and kwok built from Go modules (tools/k8s/build.sh; ~7 min on 2 cores
#                             with empty Go caches, seconds after a change, nothing when current)
#   make control-plane-up     start one (tools/control-plane.sh; state, logs and kubeconfig in
#                             $(CONTROL_PLANE_DIR)); `export KUBECONFIG=$(CONTROL_PLANE_DIR)/kubeconfig`
#   make control-plane-status / control-plane-down

CONTROL_PLANE_DIR ?= $(CURDIR)/.tools/control-plane

.PHONY: k8s-tools control-plane-up control-plane-down control-plane-status

## The control plane's binaries, under .tools/k8s/<version>-<inputs hash>/bin.
k8s-tools:
	bash tools/k8s/build.sh >/dev/null

## A control plane with two kwok nodes; prints its kubeconfig.
control-plane-up: k8s-tools
	bash tools/control-plane.sh up --state-dir $(CONTROL_PLANE_DIR)

control-plane-down:
	bash tools/control-plane.sh down --state-dir $(CONTROL_PLANE_DIR)

control-plane-status:
	bash tools/control-plane.sh status --state-dir $(CONTROL_PLANE_DIR)
