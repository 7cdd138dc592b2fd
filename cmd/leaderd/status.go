package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"time"
)

// `leaderd status` shows an election as etcd holds it now, or, with
// --watch, redraws it on every change. Its flags are in status_flags.go,
// its etcd reads in status_etcd.go and its output in status_render.go.

// statusCommand is `leaderd status`.
func statusCommand(args []string, env lookupEnv, stdout, stderr io.Writer) int {
	f := newStatusFlags(env)
	opts, err := f.parse(args)
	if errors.Is(err, errHelp) {
		f.set.usage(stdout)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "leaderd status: %s\n", oneLine(err.Error()))
		return exitBadInput
	}
	if opts.Watch {
		return watchCommand(opts, stdout, stderr)
	}
	report, err := fetchStatus(opts.Config)
	if err != nil {
		fmt.Fprintf(stderr, "leaderd status: %s\n", oneLine(err.Error()))
		return exitError
	}
	if opts.JSON {
		if err := printJSON(stdout, report); err != nil {
			fmt.Fprintf(stderr, "leaderd status: %s\n", oneLine(err.Error()))
			return exitError
		}
		return exitOK
	}
	printStatus(stdout, report, time.Now())
	return exitOK
}

// watchCommand is `leaderd status --watch`: SIGINT or SIGTERM ends it
// with exit 0; etcd unreachable at the start is exit 1, as without --watch.
func watchCommand(opts statusOptions, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), terminationSignals...)
	defer stop()
	endpoints := strings.Join(opts.Config.Endpoints, ",")
	store, err := openStore(opts.Config)
	if err != nil {
		fmt.Fprintf(stderr, "leaderd status: %s\n", oneLine(etcdError(endpoints, err).Error()))
		return exitError
	}
	defer store.Client().Close()
	w := &statusWatch{store: store, json: opts.JSON, out: stdout, errOut: stderr, endpoints: endpoints}
	if err := w.run(ctx); err != nil {
		fmt.Fprintf(stderr, "leaderd status: %s\n", oneLine(err.Error()))
		return exitError
	}
	return exitOK
}
