package chaos

import (
	"fmt"
	"strings"
	"time"

	"github.com/leaderd/leaderd/hooks"
	"github.com/leaderd/leaderd/internal/timeline"
)

// Rules of a run with -priorities (see Record.Priorities).
const (
	// RuleEndPriority: with failback on, the one primary at the end is not
	// the highest-priority running replica, after every fault healed and
	// failback had its delay, a hand-off and a back-off to act.
	RuleEndPriority = "end-priority"
	// RuleEndChurn: a promote started in the quiet window at the end (no
	// fault, every replica healthy, the primary settled): yields or
	// failbacks that do not settle.
	RuleEndChurn = "end-churn"
)

// checkPriority judges the end state of a run with -priorities; a run
// without it (or a record from before it) has nothing to judge here.
func checkPriority(r *Record) []Violation {
	if r.Priorities == nil {
		return nil
	}
	var out []Violation
	at := r.Ended
	if r.Failback > 0 && len(r.End.Primaries) == 1 && r.End.Highest != "" && r.End.Primaries[0] != r.End.Highest {
		p := r.End.Primaries[0]
		out = append(out, Violation{Rule: RuleEndPriority, At: at, Replicas: []string{p, r.End.Highest},
			Detail: fmt.Sprintf("%s (priority %d) is the primary at the end, not %s (priority %d), with failback after %s",
				p, r.Priorities[p], r.End.Highest, r.Priorities[r.End.Highest], r.Failback)})
	}
	if q := r.End.Quiet; q != nil {
		var promotes []string
		for _, e := range sortedTimeline(r) {
			if e.Is(hooks.Promote, timeline.PhaseStart) && !e.At.Before(q.Start) && !e.At.After(q.End) {
				promotes = append(promotes, fmt.Sprintf("%s at %s", e.ID, clock(e.At)))
			}
		}
		if len(promotes) > 0 {
			out = append(out, Violation{Rule: RuleEndChurn, At: q.Start,
				Detail: fmt.Sprintf("%d promotes in the quiet window %s..%s, want none: %s",
					len(promotes), clock(q.Start), clock(q.End), strings.Join(promotes, ", "))})
		}
	}
	return out
}

// priorityNote is the report's line on priorities ("" without them).
func priorityNote(r *Record) string {
	if r.Priorities == nil {
		return ""
	}
	var ps []string
	for _, id := range sortedIDs(r.Priorities) {
		ps = append(ps, fmt.Sprintf("%s=%d", id, r.Priorities[id]))
	}
	fb := "off"
	if r.Failback > 0 {
		fb = "after " + r.Failback.String()
	}
	s := fmt.Sprintf("priorities %s; failback %s; %d yields at a win and %d failback requests logged; highest running at the end: %s",
		strings.Join(ps, ", "), fb, r.Yields, r.Failbacks, orUnknown(r.End.Highest))
	if q := r.End.Quiet; q != nil {
		s += fmt.Sprintf("; quiet window at the end %s", q.End.Sub(q.Start).Round(100*time.Millisecond))
	}
	return s
}
