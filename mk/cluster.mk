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

# A real node (tools/node): containerd, runc, CNI, kubelet, kube-proxy, CoreDNS and a local-path
# provisioner, built from Go modules and Debian packages; tests/node runs pods on it (as root).
#
#   make node-tools           its parts and images (tools/node/build.sh; as root: apt-get, debootstrap)
#   make real-node-up         a control plane with one real node in $(REAL_NODE_DIR), no kwok
#   make real-node-down       stop all of it: processes, containers, mounts, bridge, iptables rules

REAL_NODE_DIR ?= $(CURDIR)/.tools/real-node

.PHONY: node-tools real-node-up real-node-down real-node-status

node-tools: k8s-tools
	bash tools/node/build.sh >/dev/null

real-node-up: node-tools
	bash tools/control-plane.sh up --real-node --state-dir $(REAL_NODE_DIR)

real-node-down:
	bash tools/control-plane.sh down --state-dir $(REAL_NODE_DIR)

real-node-status:
	bash tools/control-plane.sh status --state-dir $(REAL_NODE_DIR)

## As root, `make test` builds the node's parts too (tests/node needs them; nothing when
## current). As another user, or with MODELFACTORY_SKIP_NODE_TESTS=1, tests/node reports
## itself as not run instead.
test: node-tools-if-root
.PHONY: node-tools-if-root
node-tools-if-root:
	@if [ "$$(id -u)" = 0 ] && [ "$${MODELFACTORY_SKIP_NODE_TESTS:-0}" != 1 ]; then \
	  $(MAKE) --no-print-directory node-tools; fi
