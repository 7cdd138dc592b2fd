// Command etcd is the etcd server, built from the go.etcd.io/etcd/server/v3
// module leaderd already depends on, for the docker compose demo's images.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
