package sidecar

import (
	"time"

	"github.com/leaderd/leaderd/election"
)

// untilDue is a channel that fires when the first live, not yet due
// resign or switchover request that matters to the caller becomes due (nil
// when there is none), so that a scheduled request (`switchover --at`)
// takes effect at its At without polling. A due or expired request arms
// nothing, so a request left in etcd never spins a loop; one due in 9999
// arms a timer that never fires, and until then the request does nothing.
func (s *Sidecar) untilDue(matters func(*election.Request) bool) (<-chan time.Time, func()) {
	c := s.controlState()
	now := time.Now()
	var wait time.Duration
	for _, r := range []*election.Request{c.Resign, c.Switchover} {
		if d := r.UntilDue(now); d > 0 && matters(r) && (wait == 0 || d < wait) {
			wait = d
		}
	}
	if wait == 0 {
		return nil, func() {}
	}
	t := time.NewTimer(wait)
	return t.C, func() { t.Stop() }
}

// dueForLeader matters to a standby: a request for the tenure that leads
// now (a stale one is ignored however it is scheduled).
func (s *Sidecar) dueForLeader(r *election.Request) bool { return s.state.leadsNow(r) }
