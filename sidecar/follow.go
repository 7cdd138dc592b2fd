package sidecar

import (
	"context"
	"time"

	"github.com/leaderd/leaderd/hooks"
)

// followRecheck is how often the follower looks again without a wake-up.
const followRecheck = time.Second

// runHook runs one hook while holding hookMu: no two hooks of a replica
// ever run at once.
func (s *Sidecar) runHook(ctx context.Context, r hookRunner, env hooks.Env) hooks.Result {
	s.hookMu.Lock()
	defer s.hookMu.Unlock()
	return r.Run(ctx, env)
}

// followLeader runs the leader-change hook on a standby whenever a new
// primary is elected (and once for the primary a starting standby finds),
// so the app can follow it. Wake-ups come from the leader watch; the
// leader is read afresh, so a burst of changes runs the hook once, for the
// latest leader.
func (s *Sidecar) followLeader(ctx context.Context, changed <-chan struct{}) {
	if s.follow == nil {
		return
	}
	var followed LeaderStatus // the leader the hook last ran for
	// The tick catches a leader first seen while this replica could not
	// follow yet (during its start-up demote, say).
	tick := time.NewTicker(followRecheck)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-tick.C:
		}
		s.hookMu.Lock()
		leader, role, phase := s.state.followInfo()
		// A primary, or a replica on its way there, follows nobody.
		standby := role == RoleStandby && phase != PhasePromoting && phase != PhaseDemoting && phase != PhaseStarting
		if leader == nil || leader.ID == s.cfg.ID || !standby || *leader == followed {
			s.hookMu.Unlock()
			continue
		}
		res := s.follow.Run(ctx, hooks.Env{
			Event:        "leader-change",
			Role:         RoleStandby,
			PreviousRole: RoleStandby,
			Reason:       ReasonElected,
			ID:           s.cfg.ID,
			Election:     s.cfg.Election,
			Leader:       leader.ID,
			LeaderAddr:   leader.Addr,
			FencingToken: leader.FencingToken,
		})
		s.hookMu.Unlock()
		s.state.recordHook(res)
		if res.OK() {
			followed = *leader
		} else if ctx.Err() == nil {
			s.logger.Error("leader-change hook failed; it runs again on the next leader change", "leader", leader.ID, "err", res.Err)
			followed = *leader // no retry loop: a failing hook must not spin
		}
	}
}
