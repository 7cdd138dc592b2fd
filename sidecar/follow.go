package sidecar

import (
	"context"
	"time"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/hooks"
	"github.com/leaderd/leaderd/role"
)

// followRecheck is how often the follower looks again without a wake-up.
const followRecheck = time.Second

// followLeader runs the leader-change hook on a standby for each new
// primary (and once for the primary a starting standby finds), so the app
// can follow it: once that primary's member record shows its promote has
// ended (phase primary, with the leader key's fencing token), so that a
// hook that checks "is the leader serving" succeeds. Wake-ups come from
// the leader watch; the leader is read afresh, so a burst of changes runs
// the hook once, for the latest leader.
func (s *Sidecar) followLeader(ctx context.Context, el elector, changed <-chan struct{}) {
	if s.follow == nil {
		return
	}
	var followed LeaderStatus // the leader the hook last ran for (and did not cancel)
	// The tick catches a leader first seen while this replica could not
	// follow yet (during its start-up demote, say).
	tick := time.NewTicker(followRecheck)
	defer tick.Stop()
	again := false // look again at once: a wake-up may have been consumed
	for {
		if !again {
			select {
			case <-ctx.Done():
				return
			case <-changed:
			case <-tick.C:
			}
		}
		again = s.followOnce(ctx, el, changed, &followed)
	}
}

// leaderToFollow is the leader this replica should follow now, if any: a
// new one, while this replica is a settled standby.
func (s *Sidecar) leaderToFollow(followed LeaderStatus) (LeaderStatus, bool) {
	leader, r, phase := s.state.followInfo()
	// A primary, or a replica on its way there, follows nobody.
	standby := r == role.Standby && phase != role.PhasePromoting && phase != role.PhaseDemoting && phase != role.PhaseStarting
	if leader == nil || leader.ID == s.cfg.ID || !standby || *leader == followed {
		return LeaderStatus{}, false
	}
	return *leader, true
}

// followOnce runs the hook for the current leader if it is one to follow.
// It reports whether to look again at once.
func (s *Sidecar) followOnce(ctx context.Context, el elector, changed <-chan struct{}, followed *LeaderStatus) bool {
	leader, ok := s.leaderToFollow(*followed)
	if !ok {
		return false
	}
	switch s.awaitPromoted(ctx, el, leader, *followed, changed) {
	case leaderServing:
	case leaderMoved:
		return true
	default: // stopping
		return false
	}

	hctx, cancel, done, ok := s.followGate.begin(ctx)
	if !ok {
		return false // this replica promotes or demotes: it follows nobody now
	}
	defer done()
	s.hookMu.Lock()
	// The wait for the lock may have let a promote begin or the leader
	// move on.
	if now, ok := s.leaderToFollow(*followed); !ok || now != leader {
		s.hookMu.Unlock()
		return true
	}
	stopWatch := s.cancelWhenLeaderMoves(hctx, cancel, changed, leader)
	res := s.follow.Run(hctx, hooks.Env{
		Event:        hooks.LeaderChange,
		Role:         role.Standby,
		PreviousRole: role.Standby,
		Reason:       role.ReasonElected,
		ID:           s.cfg.ID,
		Election:     s.cfg.Election,
		Leader:       leader.ID,
		LeaderAddr:   leader.Addr,
		FencingToken: leader.FencingToken,
	})
	s.hookMu.Unlock()
	stopWatch()
	s.state.recordHook(res)
	switch {
	case res.OK():
		*followed = leader
	case res.Canceled:
		// Expected: this replica won, or the leader moved on; the next
		// leader is followed.
		if ctx.Err() == nil {
			s.logger.Info("leader-change hook canceled", "leader", leader.ID, "why", context.Cause(hctx))
		}
	default:
		s.logger.Error("leader-change hook failed; it runs again on the next leader change", "leader", leader.ID, "err", res.Err)
		*followed = leader // no retry loop: a failing hook must not spin
	}
	return true
}

// What awaitPromoted saw.
type promoteWait int

const (
	leaderStopping promoteWait = iota // ctx ended
	leaderServing                     // its record shows the promote ended
	leaderMoved                       // another leader, or this replica no longer follows
)

// followWait is how long a new leader's promote may take to show in its
// member record before the wait is reported: its promote timeout (the same
// flag on every replica), plus the time to publish the record.
func (s *Sidecar) followWait() time.Duration {
	return s.cfg.PromoteTimeout + memberRefresh + cleanupTimeout
}

// awaitPromoted watches leader's member record until it shows the tenure's
// promote has ended (role and phase primary, the leader key's fencing
// token) or the leader moves on. A failed promote is never reported as
// ended: that primary gives way, and the next is awaited instead. A wait
// longer than any promote (etcd unreadable here, a primary that cannot
// publish its record) is logged once and goes on: following late beats
// never following, and only a record that says so starts the hook.
func (s *Sidecar) awaitPromoted(ctx context.Context, el elector, leader, followed LeaderStatus, changed <-chan struct{}) promoteWait {
	wctx, cancel := context.WithCancel(ctx)
	records := make(chan *election.Member, 1) // the latest record
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		el.WatchMember(wctx, leader.ID, func(m *election.Member, err error) {
			if err != nil {
				return // read again by WatchMember; the bound still holds
			}
			select {
			case <-records: // only this goroutine sends: room after this
			default:
			}
			records <- m
		})
	}()
	defer func() { cancel(); <-watched }()

	bound := time.NewTimer(s.followWait())
	defer bound.Stop()
	// Past the bound, a primary record without a fencing token counts too:
	// a leaderd from before the token was published (a rolling upgrade)
	// never reports one, and its standbys must still follow it.
	var last *election.Member
	pastBound := false
	serving := func(m *election.Member) bool {
		if m == nil || m.Role != role.Primary || m.Phase != role.PhasePrimary {
			return false
		}
		return m.FencingToken == leader.FencingToken || (pastBound && m.FencingToken == 0)
	}
	for {
		select {
		case <-ctx.Done():
			return leaderStopping
		case m := <-records:
			last = m
			if serving(m) {
				return leaderServing
			}
		case <-changed:
			if now, ok := s.leaderToFollow(followed); !ok || now != leader {
				return leaderMoved
			}
		case <-bound.C:
			pastBound = true
			if serving(last) {
				s.logger.Warn("the new leader's member record has no fencing token (an older leaderd?); following it without knowing its promote ended",
					"leader", leader.ID, "fencing_token", leader.FencingToken)
				return leaderServing
			}
			s.logger.Warn("the new leader has not reported the end of its promote; still waiting to follow it",
				"leader", leader.ID, "fencing_token", leader.FencingToken, "waited", s.followWait())
		}
	}
}

// cancelWhenLeaderMoves cancels a running leader-change hook once the
// leader it follows is gone or replaced: following it is moot. stop ends
// the watch.
func (s *Sidecar) cancelWhenLeaderMoves(hctx context.Context, cancel context.CancelCauseFunc, changed <-chan struct{}, leader LeaderStatus) (stop func()) {
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			case <-hctx.Done():
				return
			case <-changed:
				now, _, _ := s.state.followInfo()
				if now == nil || now.ID != leader.ID || now.FencingToken != leader.FencingToken {
					cancel(errLeaderMoved)
					return
				}
			}
		}
	}()
	return func() { close(quit); <-done }
}
