package sidecar

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/role"
)

// notReady says why this replica must not campaign now ("" when it may):
// the phase to show while it waits.
func (s *Sidecar) notReady() role.Phase {
	c, known := s.state.controlRead()
	switch {
	case s.cfg.NoFailover:
		return role.PhaseObserving
	case !known:
		// A replica restarted during a pause must not campaign before it
		// knows of the pause.
		return role.PhaseConnecting
	case !s.state.appHealthy():
		return role.PhaseUnhealthy
	case c.Paused:
		return role.PhasePaused
	case c.Switchover.Due(time.Now()) && s.state.leadsNow(c.Switchover) && c.Switchover.To != s.cfg.ID &&
		c.Switchover.From != s.cfg.ID && s.state.isCandidate(c.Switchover.To):
		// Only once due (a scheduled one does nothing before its at), and
		// only for the tenure that leads now: a request left from an
		// earlier one, or for a tenure that never was, would otherwise
		// stall the election until it expired (a year 9999 one, for ever)
		// once its target is a campaigner that never takes over. And only
		// while the target campaigns: if it dies or withdraws, the
		// bystanders must not leave the election empty until the request
		// expires.
		return role.PhaseYielding
	}
	return ""
}

// logStale logs each live resign or switchover request that names
// another tenure than the one leading now (it is ignored), once per
// request and caller (waitReady, and the campaign's watcher):
// logged holds the revisions logged so far (switchover, resign). Nothing
// is judged before the leader is known.
func (s *Sidecar) logStale(logged *[2]int64) {
	leader := s.state.leaderID()
	if leader == "" {
		return
	}
	c := s.controlState()
	now := time.Now()
	for i, r := range []*election.Request{c.Switchover, c.Resign} {
		if !r.Live(now) || s.state.leadsNow(r) || r.Revision == logged[i] {
			continue
		}
		logged[i] = r.Revision
		s.logger.Warn("ignoring a stale control request: it names no tenure that leads now",
			"from", clip(r.From), "fencing_token", r.FencingToken, "to", clip(r.To), "expires", r.Expires, "leader", clip(leader))
	}
}

// clip quotes s, cut to 64 bytes: request fields may be anything.
func clip(s string) string {
	if len(s) <= 64 {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:64]) + "..."
}

// routineWait reports whether not campaigning for this reason is an
// operator's choice (INFO), not a fault to look into (WARN).
func routineWait(why role.Phase) bool {
	switch why {
	case role.PhasePaused, role.PhaseYielding, role.PhaseObserving, role.PhaseConnecting:
		return true
	}
	return false
}

// untilExpiry is a channel that fires when the switchover a yielding
// replica yields to expires (nil when not yielding), so that it comes back
// by itself. It fires at once if the request expired since notReady read
// it; it is armed only while yielding, so an expired request left in etcd
// never spins a paused or unhealthy replica.
func (s *Sidecar) untilExpiry(why role.Phase) (<-chan time.Time, func()) {
	sw := s.controlState().Switchover
	if why != role.PhaseYielding || sw == nil {
		return nil, func() {}
	}
	t := time.NewTimer(time.Until(sw.Expires))
	return t.C, func() { t.Stop() }
}

// waitReady holds the lease while the replica may not campaign (unhealthy
// app, paused election, --no-failover, a switchover to another replica).
// It reports false when ctx ended or the lease was lost first.
func (s *Sidecar) waitReady(ctx context.Context, cand candidacy) bool {
	var logged role.Phase
	var staleLogged [2]int64
	for {
		s.logStale(&staleLogged)
		why := s.notReady()
		if why == "" {
			if logged != "" {
				s.logger.Info("ready to campaign again", "was", logged)
			}
			return ctx.Err() == nil
		}
		s.state.setPhase(why)
		if why != logged {
			level := slog.LevelWarn
			if routineWait(why) {
				level = slog.LevelInfo
			}
			s.logger.Log(context.Background(), level, "not campaigning", "why", why)
			logged = why
		}
		expiry, stop := s.untilExpiry(why)
		due, stopDue := s.untilDue(s.dueForLeader)
		select {
		case <-ctx.Done():
			stop()
			stopDue()
			return false
		case <-cand.Lost():
			stop()
			stopDue()
			return false
		case <-s.state.health.Changes():
		case <-s.controlChanged:
		case <-s.candidatesChanged:
		case <-expiry:
		case <-due:
		}
		stop()
		stopDue()
	}
}

// onNotReady calls withdraw as soon as the replica may no longer campaign,
// until the returned stop is called; stop waits for the watcher to end, so
// the state machine stays the only reader of the wake-up channels. It logs
// the stale requests it ignores meanwhile.
func (s *Sidecar) onNotReady(withdraw func()) (stop func()) {
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		var staleLogged [2]int64
		for {
			s.logStale(&staleLogged)
			if s.notReady() != "" {
				withdraw()
				return
			}
			due, stopDue := s.untilDue(s.dueForLeader) // a scheduled switchover's at
			select {
			case <-done:
				stopDue()
				return
			case <-s.state.health.Changes():
			case <-s.controlChanged:
			case <-s.candidatesChanged:
			case <-due:
			}
			stopDue()
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}

// controlState is the control state as last read.
func (s *Sidecar) controlState() election.Control {
	c, _ := s.state.controlRead()
	return c
}
