// Package timeline is the hook timeline: the start and end of every hook
// run, the tenures (promote to demote) paired from it, and the check that
// tenures never overlap and fencing tokens only rise. The process tests,
// the sidecar's tests, the demo, the benchmark, the fault campaign and the
// end-to-end tests all judge safety through it.
package timeline

import (
	"fmt"
	"strings"
	"time"

	"github.com/leaderd/leaderd/hooks"
	"github.com/leaderd/leaderd/role"
)

// Phase is whether an event is a hook's start or its end.
type Phase string

// Phases.
const (
	PhaseStart Phase = "start"
	PhaseEnd   Phase = "end"
)

// Event is one hook start or end on one replica.
type Event struct {
	At     time.Time
	Hook   hooks.Event
	Phase  Phase
	ID     string // the replica
	Token  int64  // 0 when the hook had none (the start-up demote)
	Reason role.Reason
	// OK is set on the end of a hook that succeeded. A timeline file holds
	// only such ends (the example hooks write their end line last, under
	// set -e), so Parse sets it on every end.
	OK bool
}

func (e Event) String() string {
	return fmt.Sprintf("%s %s-%s %s token=%d reason=%s", e.At.Format("15:04:05.000"), e.Hook, e.Phase, e.ID, e.Token, e.Reason)
}

// Is says whether e is the given hook's given phase.
func (e Event) Is(hook hooks.Event, phase Phase) bool { return e.Hook == hook && e.Phase == phase }

// First returns a finder for the first event at or after index from that
// matches every non-empty field of want (and want.Token when non-zero);
// -1 when there is none yet.
func First(from int, want Event) func([]Event) int {
	return func(evs []Event) int {
		for i := max(from, 0); i < len(evs); i++ {
			e := evs[i]
			if (want.Hook == "" || e.Hook == want.Hook) && (want.Phase == "" || e.Phase == want.Phase) &&
				(want.ID == "" || e.ID == want.ID) && (want.Reason == "" || e.Reason == want.Reason) &&
				(want.Token == 0 || e.Token == want.Token) {
				return i
			}
		}
		return -1
	}
}

// Format renders events one per line, indented, for failure messages.
func Format(evs []Event) string {
	var b strings.Builder
	for _, e := range evs {
		b.WriteString("  " + e.String() + "\n")
	}
	return b.String()
}
