// Command etcd is etcd's own server entry point, built here because Debian's
// etcd (3.4) is older than Kubernetes supports and no etcd binary can be
// downloaded; it shares this module's versions with the Kubernetes build.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
