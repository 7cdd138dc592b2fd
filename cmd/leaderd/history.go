package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/role"
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

// States of a tenure in the history output.
const (
	tenureEnded      = "ended"      // the primary recorded the end
	tenureCurrent    = "current"    // open, and its primary still leads
	tenureUnrecorded = "unrecorded" // open, but another tenure followed: crash or cut-off
)

// unrecordedReason is the REASON shown for a tenure whose end was never
// recorded.
const unrecordedReason = "ended without a record (crash or cut-off)"

// historyReport is the JSON output of `leaderd history --json`.
type historyReport struct {
	Election string          `json:"election"`
	Tenures  []historyTenure `json:"tenures"` // newest first; [] when none
}

type historyTenure struct {
	ID           string      `json:"id"`
	FencingToken int64       `json:"fencing_token"`
	Start        time.Time   `json:"start"`
	End          *time.Time  `json:"end"`        // null unless the end was recorded
	EndReason    role.Reason `json:"end_reason"` // empty unless the end was recorded
	State        string      `json:"state"`      // ended, current or unrecorded
}

// buildHistory labels each record. leaderToken is the current leader's
// fencing token, 0 when no one leads. The leader was read before the
// records, so an open record at or above its token is a tenure that is
// still running (or began since), never a crash.
func buildHistory(electionName string, recs []election.TenureRecord, leaderToken int64) historyReport {
	r := historyReport{Election: electionName, Tenures: make([]historyTenure, 0, len(recs))}
	for _, rec := range recs {
		t := historyTenure{ID: rec.ID, FencingToken: rec.FencingToken, Start: rec.Start, EndReason: rec.EndReason}
		switch {
		case !rec.Open():
			end := rec.End
			t.End, t.State = &end, tenureEnded
		case leaderToken > 0 && rec.FencingToken >= leaderToken:
			t.State = tenureCurrent
		default:
			t.State = tenureUnrecorded
		}
		r.Tenures = append(r.Tenures, t)
	}
	return r
}

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

// fetchHistory reads the current leader, then the history, each call with
// status's deadlines.
func fetchHistory(cfg sidecar.Config, limit int) (historyReport, error) {
	endpoints := strings.Join(cfg.Endpoints, ",")
	store, err := openStore(cfg)
	if err != nil {
		return historyReport{}, etcdError(endpoints, err)
	}
	defer store.Client().Close()

	ctx, cancel := context.WithTimeout(context.Background(), statusCallTimeout)
	cands, _, err := store.Candidates(ctx)
	cancel()
	if err != nil {
		return historyReport{}, etcdError(endpoints, err)
	}
	var leaderToken int64
	if len(cands) > 0 {
		leaderToken = cands[0].FencingToken()
	}

	ctx, cancel = context.WithTimeout(context.Background(), statusCallTimeout)
	recs, err := store.History(ctx, limit)
	cancel()
	if err != nil {
		return historyReport{}, etcdError(endpoints, err)
	}
	return buildHistory(cfg.Election, recs, leaderToken), nil
}

// printHistory writes the report as an aligned table, newest first.
func printHistory(w io.Writer, r historyReport, now time.Time) {
	if len(r.Tenures) == 0 {
		fmt.Fprintf(w, "no tenures recorded for election %s\n", r.Election)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOKEN\tID\tSTART\tEND\tDURATION\tREASON")
	for _, t := range r.Tenures {
		end, duration, reason := "-", "-", orDash(string(t.EndReason))
		switch t.State {
		case tenureEnded:
			end, duration = timeText(*t.End), durationRounded(t.End.Sub(t.Start))
		case tenureCurrent:
			duration, reason = durationRounded(now.Sub(t.Start))+" so far", "current tenure"
		case tenureUnrecorded:
			reason = unrecordedReason
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", t.FencingToken, orDash(t.ID), timeText(t.Start), end, duration, reason)
	}
	_ = tw.Flush()
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.RFC3339)
}

// durationRounded keeps tenths of a second for short tenures (tests, a
// failing promote) and whole seconds for the rest.
func durationRounded(d time.Duration) string {
	switch {
	case d < 0:
		return "-" // the start was recorded by a host whose clock is ahead
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}
