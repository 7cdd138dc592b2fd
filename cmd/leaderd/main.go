// Command leaderd is a leader-election sidecar on etcd: it campaigns beside
// each replica of an application and runs the operator's promote and demote
// hooks when the replica's role changes. See docs/design.md.
//
// main stays thin: flags and environment become a sidecar.Config, signals
// become a cancelled context, errors become exit codes.
package main

import (
	"fmt"
	"io"
	"os"
)

// Exit codes.
const (
	exitOK       = 0 // done, or a graceful stop
	exitError    = 1 // a runtime error (etcd unreachable for status, Run failed)
	exitBadInput = 2 // unknown command or flag, invalid value: fix the command line
)

func main() {
	os.Exit(run(os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr))
}

// command is one subcommand. Each gets its arguments after the command
// name and returns the exit code.
type command struct {
	name, summary string
	run           func(args []string, env lookupEnv, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"run", "campaign for an election beside this replica and run its hooks", runCommand},
		{"check", "validate run's configuration and print its timing budget (no etcd)", checkCommand},
		{"status", "show an election's leader, fencing token and candidates", statusCommand},
		{"history", "show an election's last tenures: id, fencing token, start, end, reason", historyCommand},
		{"resign", "ask the primary to step down; another replica takes over", resignCommand},
		{"switchover", "hand the primary role to a named healthy standby", switchoverCommand},
		{"pause", "pause automatic role changes (standbys do not campaign)", pauseCommand},
		{"resume", "resume automatic role changes after pause", resumeCommand},
		{"demo", "run three replicas on an embedded etcd and show failover (no setup)", demoCommand},
		{"version", "print the version", versionCommand},
		{"help", "show this help, or a command's: leaderd help run", nil},
	}
}

// run dispatches to a subcommand and returns the process exit code.
func run(args []string, env lookupEnv, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitBadInput
	}
	name, rest := args[0], args[1:]
	switch name {
	case "-h", "-help", "--help", "help":
		if name == "help" && len(rest) > 0 && rest[0] != "help" {
			// leaderd help run == leaderd run --help
			return run([]string{rest[0], "--help"}, env, stdout, stderr)
		}
		usage(stdout)
		return exitOK
	case "-version", "--version":
		name = "version"
	}
	for _, c := range commands() {
		if c.name == name && c.run != nil {
			return c.run(rest, env, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "leaderd: unknown command %q (see leaderd --help)\n", name)
	return exitBadInput
}

func usage(w io.Writer) {
	fmt.Fprint(w, `leaderd: leader-election sidecar on etcd. One leaderd runs beside each replica;
exactly one replica is primary, and promote/demote hooks run on role changes.

Usage:
  leaderd <command> [flags]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s  %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run 'leaderd <command> --help' for a command's flags. Every flag (but output
switches such as --json) can also come from the environment as LEADERD_ + the
flag name in upper snake case (--on-promote: LEADERD_ON_PROMOTE); a flag wins.

Exit status: 0 success, 1 runtime error, 2 bad command line or configuration.
`)
}
