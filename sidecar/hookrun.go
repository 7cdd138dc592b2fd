package sidecar

import (
	"context"
	"errors"
	"sync"

	"github.com/leaderd/leaderd/hooks"
	"github.com/leaderd/leaderd/role"
)

// hookRun is one run of the promote or demote hook: what it is told.
type hookRun struct {
	event    hooks.Event // hooks.Promote or hooks.Demote
	from, to role.Role   // the role before and after the hook
	reason   role.Reason
	token    int64 // the tenure's fencing token; 0: none
	lease    int64 // the lease it ran under; 0: none
}

// env is what the hook is told, as LEADERD_* variables.
func (s *Sidecar) env(run hookRun) hooks.Env {
	leader := s.state.leaderID()
	if run.event == hooks.Promote {
		leader = s.cfg.ID
	}
	return hooks.Env{
		Event:        run.event,
		Role:         run.to,
		PreviousRole: run.from,
		Reason:       run.reason,
		ID:           s.cfg.ID,
		Election:     s.cfg.Election,
		Leader:       leader,
		FencingToken: run.token,
		LeaseID:      run.lease,
	}
}

// runHook runs a promote or demote hook while holding hookMu: no two hooks
// of a replica ever run at once. A leader-change hook holding hookMu is
// killed first, so this replica's own promote or demote never waits behind
// it. The result is recorded for /status and the metrics.
func (s *Sidecar) runHook(ctx context.Context, run hookRun) hooks.Result {
	runner := s.demote
	if run.event == hooks.Promote {
		runner = s.promote
	}
	release := s.followGate.claim()
	defer release()
	s.hookMu.Lock()
	defer s.hookMu.Unlock()
	res := runner.Run(ctx, s.env(run))
	s.state.recordHook(res)
	return res
}

// runningHook is a hook started by startHook.
type runningHook struct {
	done chan struct{} // closed when the hook has ended
	res  hooks.Result  // set before done is closed
}

// startHook runs a hook beside the caller, which can watch for other
// events meanwhile; ending ctx kills the hook.
func (s *Sidecar) startHook(ctx context.Context, run hookRun) *runningHook {
	h := &runningHook{done: make(chan struct{})}
	go func() {
		defer close(h.done)
		h.res = s.runHook(ctx, run)
	}()
	return h
}

// wait waits for the hook to end (its context ended: it is being killed)
// and returns its result.
func (h *runningHook) wait() hooks.Result {
	<-h.done
	return h.res
}

// Why a leader-change hook was cut short: expected, not failures.
var (
	errHookLockWanted = errors.New("a promote or demote of this replica needs the hook lock")
	errLeaderMoved    = errors.New("the leader it follows is no longer the leader")
)

// followGate lets runHook cut a running leader-change hook short instead
// of waiting behind it for hookMu.
type followGate struct {
	mu     sync.Mutex
	wanted int                     // promote and demote runs waiting for or holding hookMu
	cancel context.CancelCauseFunc // the leader-change hook's; nil when none runs
}

// claim marks a promote or demote as wanting hookMu and kills a running
// leader-change hook. release undoes the mark once the hook has run.
func (g *followGate) claim() (release func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.wanted++
	if g.cancel != nil {
		g.cancel(errHookLockWanted)
	}
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.wanted--
	}
}

// begin gives a leader-change hook its context, unless a promote or demote
// wants hookMu (ok false). done must be called after the hook.
func (g *followGate) begin(parent context.Context) (ctx context.Context, cancel context.CancelCauseFunc, done func(), ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.wanted > 0 {
		return nil, nil, nil, false
	}
	ctx, cancel = context.WithCancelCause(parent)
	g.cancel = cancel
	return ctx, cancel, func() {
		g.mu.Lock()
		g.cancel = nil
		g.mu.Unlock()
		cancel(nil)
	}, true
}
