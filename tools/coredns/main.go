// Command coredns is a CoreDNS build with only the plugins mamori's local cluster needs: it
// answers <service>.<namespace>.svc.cluster.local for pods on the test node (helm test's pod
// calls the webhook by its Service name). Linking a handful of plugins instead of CoreDNS's full
// list (core/plugin) keeps the module graph and the cold build small.
package main

import (
	"fmt"
	"os"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	// Each import registers one directive; directives below must match these imports.
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

// directives is the execution order of the linked plugins: the same relative order as
// CoreDNS's own plugin.cfg (a plugin sees only the ones after it), so a Corefile behaves here
// as it would in a stock CoreDNS build.
var directives = []string{
	"bind",
	"ready",
	"health",
	"errors",
	"log",
	"cache",
	"kubernetes",
}

func main() {
	if err := dnsserver.SetDirectives(directives); err != nil {
		fmt.Fprintf(os.Stderr, "coredns: %v\n", err)
		os.Exit(2)
	}
	coremain.Run()
}
