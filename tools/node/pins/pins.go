//go:build tools

// Package pins is never built: it keeps the modules of tools/k8s (kubernetes, etcd, kwok) in this
// module's graph, so that the dependencies the node's parts share with tools/k8s resolve
// to the versions tools/k8s builds with (gen-go-mod.sh says why).
package pins

import (
	_ "go.etcd.io/etcd/server/v3/etcdmain"
	_ "k8s.io/kubernetes/cmd/kube-proxy/app"
	_ "k8s.io/kubernetes/cmd/kubelet/app"
	_ "sigs.k8s.io/kwok/pkg/kwok/cmd"
)
