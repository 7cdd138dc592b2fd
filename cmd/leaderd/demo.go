//go:build !nodemo

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/leaderd/leaderd/internal/demo"
)

// demoCommand is `leaderd demo`: three replicas on an embedded etcd.
func demoCommand(args []string, env lookupEnv, stdout, stderr io.Writer) int {
	s := newFlagSet("demo", "[--verbose]",
		"Start an embedded etcd and three `leaderd run` processes (this binary) with\n"+
			"the example hooks; show the roles live, stop the primary gracefully, crash\n"+
			"the next one with SIGKILL, and print the hook timeline with the measured\n"+
			"hand-off and failover times. Needs no etcd, docker or network. Ctrl-C at\n"+
			"any point stops everything and removes the temporary directory.\n\n"+
			"Exit status: 0 when every check passed, 1 otherwise, 130 on Ctrl-C.", env)
	verbose := s.boolean("verbose", "also show the replicas' logs")
	if err := s.parse(args); err != nil {
		if errors.Is(err, errHelp) {
			s.usage(stdout)
			return exitOK
		}
		fmt.Fprintf(stderr, "leaderd demo: %v\n", err)
		return exitBadInput
	}

	ctx, stop := signal.NotifyContext(context.Background(), terminationSignals...)
	defer stop()
	// A closed stdout (leaderd demo | head) must end the demo with its
	// clean-up, not kill it: ignore SIGPIPE and stop on the write error.
	signal.Ignore(syscall.SIGPIPE)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := &cancelOnError{w: stdout, cancel: cancel}

	err := demo.Run(ctx, out, demo.Options{Verbose: verbose.value})
	switch {
	case err == nil:
		return exitOK
	case ctx.Err() != nil && out.err == nil:
		fmt.Fprintln(stderr, "leaderd demo: interrupted; everything was stopped and removed")
		return 130
	default:
		fmt.Fprintf(stderr, "leaderd demo: %v\n", err)
		return exitError
	}
}

// cancelOnError cancels the demo on the first failed write.
type cancelOnError struct {
	w      io.Writer
	cancel context.CancelFunc
	err    error
}

func (c *cancelOnError) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	if err != nil {
		c.err = err
		c.cancel()
	}
	return n, err
}
