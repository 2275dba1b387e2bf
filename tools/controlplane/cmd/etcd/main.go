// Command etcd runs the etcd server from go.etcd.io/etcd/server/v3, so the control plane used by
// mamori's tests and demo can be built from Go modules alone.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
