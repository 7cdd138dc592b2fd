package sidecar

import (
	"context"
	"time"

	"github.com/leaderd/leaderd/election"
)

// wake does a non-blocking send on a buffered(1) wake-up channel.
func wake(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// notReady says why this replica must not campaign now ("" when it may):
// the phase to show while it waits.
func (s *Sidecar) notReady() string {
	c := s.controlState()
	switch {
	case s.cfg.NoFailover:
		return PhaseObserving
	case !s.health.Healthy():
		return PhaseUnhealthy
	case c.Paused:
		return PhasePaused
	case c.Switchover.Live(time.Now()) && c.Switchover.To != s.cfg.ID && c.Switchover.From != s.cfg.ID:
		return PhaseYielding
	}
	return ""
}

func (s *Sidecar) controlState() election.Control {
	s.state.mu.Lock()
	defer s.state.mu.Unlock()
	return s.state.control
}

// untilExpiry is a channel that fires when a live switchover expires (nil
// without one), so that yielding replicas come back by themselves.
func (s *Sidecar) untilExpiry() (<-chan time.Time, func()) {
	sw := s.controlState().Switchover
	if !sw.Live(time.Now()) {
		return nil, func() {}
	}
	t := time.NewTimer(time.Until(sw.Expires))
	return t.C, func() { t.Stop() }
}

// waitReady holds the lease while the replica may not campaign (unhealthy
// app, paused election, --no-failover, a switchover to another replica).
// It reports false when ctx ended or the lease was lost first.
func (s *Sidecar) waitReady(ctx context.Context, cand candidacy) bool {
	logged := ""
	for {
		why := s.notReady()
		if why == "" {
			if logged != "" {
				s.logger.Info("ready to campaign again", "was", logged)
			}
			return ctx.Err() == nil
		}
		s.state.setPhase(why)
		if why != logged {
			s.logger.Warn("not campaigning", "why", why)
			logged = why
		}
		expiry, stop := s.untilExpiry()
		select {
		case <-ctx.Done():
			stop()
			return false
		case <-cand.Lost():
			stop()
			return false
		case <-s.health.Changes():
		case <-s.controlChanged:
		case <-expiry:
		}
		stop()
	}
}

// onNotReady calls withdraw as soon as the replica may no longer campaign,
// until the returned stop is called; stop waits for the watcher to end, so
// the state machine stays the only reader of the wake-up channels.
func (s *Sidecar) onNotReady(withdraw func()) (stop func()) {
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		for {
			if s.notReady() != "" {
				withdraw()
				return
			}
			select {
			case <-done:
				return
			case <-s.health.Changes():
			case <-s.controlChanged:
			}
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}

// serve holds the tenure until it ends and says why, with the request it
// answers (resign, switchover) if any.
func (s *Sidecar) serve(ctx context.Context, ten tenure) (string, *election.Request) {
	token := ten.FencingToken()
	for {
		c := s.controlState()
		now := time.Now()
		// A paused election changes no role automatically.
		if !c.Paused && !s.health.Healthy() {
			return ReasonUnhealthy, nil
		}
		if r := c.Resign; r.Live(now) && r.From == s.cfg.ID && r.FencingToken == token {
			return ReasonResigned, r
		}
		// A switchover waits until the target is next in line: the other
		// standbys yield, so the target and nobody else takes over.
		if r := c.Switchover; r.Live(now) && r.From == s.cfg.ID && r.FencingToken == token && s.nextCandidate() == r.To {
			return ReasonSwitchover, r
		}
		select {
		case <-ten.Lost():
			return lostReason(ten.Err()), nil
		case <-ctx.Done():
			return ReasonShutdown, nil
		case <-s.resignRequests:
			return ReasonResigned, nil
		case <-s.health.Changes():
		case <-s.controlChanged:
		case <-s.candidatesChanged:
		}
	}
}

// nextCandidate is the id second in campaign order: who wins if the
// leader resigns.
func (s *Sidecar) nextCandidate() string {
	s.state.mu.Lock()
	defer s.state.mu.Unlock()
	if len(s.state.candidates) < 2 {
		return ""
	}
	return s.state.candidates[1]
}
