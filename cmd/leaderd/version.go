package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

// versionString is the version set at build time, else the main module's
// version when built with go install module@version, else "dev".
func versionString() string {
	if version != "dev" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		if v := info.Main.Version; v != "" && v != "(devel)" {
			return v
		}
	}
	return version
}

func versionCommand(args []string, _ lookupEnv, stdout, stderr io.Writer) int {
	if len(args) == 1 && isHelp(args[0]) {
		fmt.Fprintln(stdout, "Usage: leaderd version\n\nPrint leaderd's version and the Go version it was built with.")
		return exitOK
	}
	if len(args) > 0 {
		fmt.Fprintf(stderr, "leaderd version: unexpected argument %q\n", args[0])
		return exitBadInput
	}
	fmt.Fprintf(stdout, "leaderd %s (%s)\n", versionString(), runtime.Version())
	return exitOK
}

func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help"
}
