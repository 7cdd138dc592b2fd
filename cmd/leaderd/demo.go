package main

import (
	"fmt"
	"io"
)

// demoCommand is `leaderd demo`. Placeholder until package internal/demo
// exists.
func demoCommand(_ []string, _ lookupEnv, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "leaderd demo: not built yet")
	return exitError
}
