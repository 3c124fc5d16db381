// Command coredns is CoreDNS with only the plugins a cluster's Corefile uses (kubeadm's
// Corefile: errors, health, ready, kubernetes, prometheus, forward, cache, loop, reload,
// loadbalance; and log) instead of the ~50 of upstream's build, which is smaller and builds
// faster (docs/adr/0010-real-node.md). The plugins run in the order upstream's
// core/dnsserver/zdirectives.go gives them, whichever are compiled in.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

func main() {
	coremain.Run()
}
