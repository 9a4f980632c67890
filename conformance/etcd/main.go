// etcd, built from the published go.etcd.io/etcd/server/v3 module: the same
// entry point as upstream's own server/main.go (etcdmain.Main), nothing else.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
