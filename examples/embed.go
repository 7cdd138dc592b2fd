// Package examples holds the example hooks, embedded so that `leaderd
// demo` and the process-level tests run the very scripts users copy.
package examples

import "embed"

// Hooks holds hooks/promote.sh and hooks/demote.sh.
//
//go:embed hooks/promote.sh hooks/demote.sh
var Hooks embed.FS
