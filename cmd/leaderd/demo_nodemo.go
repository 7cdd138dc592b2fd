//go:build nodemo

package main

import (
	"fmt"
	"io"
)

// demoCommand in a build with -tags nodemo: the deployable sidecar leaves
// out the embedded etcd server, which would add about 7 MiB of resident
// memory and 13 MB of binary to every replica.
func demoCommand(_ []string, _ lookupEnv, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "leaderd demo: this binary was built with -tags nodemo (no embedded etcd); run `go run ./cmd/leaderd demo` from the source tree")
	return exitError
}
