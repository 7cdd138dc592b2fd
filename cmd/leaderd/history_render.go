package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/leaderd/leaderd/role"
)

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
