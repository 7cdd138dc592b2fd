package main

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// `leaderd history` shows an election's last tenures. Its flags are in
// history_flags.go, its etcd reads in history_etcd.go and its output in
// history_render.go.

// historyCommand is `leaderd history`.
func historyCommand(args []string, env lookupEnv, stdout, stderr io.Writer) int {
	f := newHistoryFlags(env)
	opts, err := f.parse(args)
	if errors.Is(err, errHelp) {
		f.status.set.usage(stdout)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "leaderd history: %s\n", oneLine(err.Error()))
		return exitBadInput
	}
	report, err := fetchHistory(opts.Config, opts.Limit)
	if err != nil {
		fmt.Fprintf(stderr, "leaderd history: %s\n", oneLine(err.Error()))
		return exitError
	}
	if opts.JSON {
		if err := printJSON(stdout, report); err != nil {
			fmt.Fprintf(stderr, "leaderd history: %s\n", oneLine(err.Error()))
			return exitError
		}
		return exitOK
	}
	printHistory(stdout, report, time.Now())
	return exitOK
}
