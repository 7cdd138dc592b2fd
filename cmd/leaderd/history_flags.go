package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/sidecar"
)

// historyOptions is what `leaderd history` parsed.
type historyOptions struct {
	statusOptions     // connection, election and --json, checked as status checks them
	Limit         int // 1..election.HistoryLimit
}

// historyFlags are status's flags plus --limit. The connection flags are
// parsed and validated by statusFlags.parse, so both commands accept and
// refuse exactly the same input.
type historyFlags struct {
	status statusFlags
	limit  *boundFlag
}

func newHistoryFlags(env lookupEnv) *historyFlags {
	s := newFlagSet("history", "--election NAME [--endpoints URLS] [--limit N] [--json] [flags]",
		fmt.Sprintf("Show an election's last tenures, newest first: the primary's id, its fencing\n"+
			"token, when the tenure started and ended, and why it ended. The primaries\n"+
			"record them in etcd under <prefix>/<election>/history/, which keeps the\n"+
			"newest %d. END is \"-\" for the current tenure, and for one whose primary\n"+
			"crashed or was cut off before it could record the end.\n\n"+
			"Exit status: 0 success, 1 etcd unreachable or the read failed, 2 bad input.", election.HistoryLimit), env)
	f := &historyFlags{status: statusFlags{set: s}}
	f.status.conn = bindElection(s, sidecar.DefaultConfig())
	f.limit = s.str("limit", "N", strconv.Itoa(election.HistoryLimit), "",
		fmt.Sprintf("show at most N tenures, 1 to %d", election.HistoryLimit))
	f.status.conn.bindTLSAuth(s)
	f.status.json = s.boolean("json", "print one JSON object instead of the table")
	return f
}

// parse returns errHelp for --help.
func (f *historyFlags) parse(args []string) (historyOptions, error) {
	opts, err := f.status.parse(args)
	if err != nil {
		return historyOptions{}, err
	}
	limit, err := strconv.Atoi(strings.TrimSpace(f.limit.value))
	if err != nil || limit < 1 || limit > election.HistoryLimit {
		return historyOptions{}, fmt.Errorf("%s: want a whole number from 1 to %d, got %q", f.limit.origin(), election.HistoryLimit, f.limit.value)
	}
	return historyOptions{statusOptions: opts, Limit: limit}, nil
}
