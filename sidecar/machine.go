package sidecar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/hooks"
	"github.com/leaderd/leaderd/role"
)

// The state machine, top to bottom: loop grants leases; term campaigns on
// one lease; tenure serves one win; stepDown ends it. Hooks run only from
// here (and the follower's leader-change hook, which yields to them), one
// at a time. docs/design.md, "The state machine", draws it.

// loop runs terms until ctx ends.
func (s *Sidecar) loop(ctx context.Context, el elector) error {
	// Bring an app left primary by a crash back to a known state first.
	if !s.runDemote(ctx, hookRun{event: hooks.Demote, from: role.Standby, to: role.Standby, reason: role.ReasonStartup}) {
		return errors.New("start-up demote hook did not succeed before shutdown")
	}
	// Two back-offs: one paces lease grants while etcd is unreachable, the
	// other campaigns after a failure (a failed promote, a campaign etcd
	// refused). The second is reset only by a tenure that reached primary or
	// a campaign that lasted, so that an always-failing promote slows down
	// instead of cycling through leases, hooks and history records.
	grantBackOff := s.newBackOff()
	retryBackOff := s.newBackOff()
	for {
		if ctx.Err() != nil {
			return nil
		}
		cand, err := el.Grant(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			err = s.explain(err)
			s.state.setPhase(role.PhaseConnecting)
			s.state.setEtcd(err)
			wait := grantBackOff.NextBackOff()
			s.logger.Warn("cannot get a lease; retrying", "err", err, "retry_in", wait)
			if !sleepCtx(ctx, wait) {
				return nil
			}
			continue
		}
		s.state.setEtcd(nil)
		grantBackOff.Reset()
		out, err := s.term(ctx, el, cand)
		if err != nil {
			return err
		}
		if out.settled {
			retryBackOff.Reset()
		}
		if out.backOff {
			wait := retryBackOff.NextBackOff()
			s.logger.Info("waiting before campaigning again", "retry_in", wait)
			if !sleepCtx(ctx, wait) {
				return nil
			}
		}
	}
}

// termOutcome is how one term ended, for the retry policy.
type termOutcome struct {
	// backOff: wait before the next campaign (something failed).
	backOff bool
	// settled: the term reached primary or campaigned steadily, so earlier
	// failures are forgiven.
	settled bool
}

// steadyCampaign is how long a campaign must last to count as settled: one
// TTL shows the lease and the election work.
func (s *Sidecar) steadyCampaign() time.Duration { return s.cfg.TTL }

// term campaigns on one lease and, on a win, serves one tenure. The lease
// is revoked at the end (by stepDown after a tenure).
func (s *Sidecar) term(ctx context.Context, el elector, cand candidacy) (out termOutcome, err error) {
	s.state.setCandidacy(cand)
	granted := time.Now()
	defer func() {
		// A lease lost within a TTL of its grant (something revokes leases,
		// etcd flaps) must not cycle grants as fast as etcd answers. Our
		// own revoke (ErrLeaseClosed) is no loss; a loss before it stays
		// the lease's error.
		if err := cand.Err(); err != nil && !errors.Is(err, election.ErrLeaseClosed) && time.Since(granted) < s.cfg.TTL {
			out.backOff = true
		}
		// Without a lease until the next grant.
		s.state.setPhase(role.PhaseConnecting)
		s.state.endTerm()
	}()

	var ten tenure
	for {
		var won termOutcome
		ten, won = s.campaign(ctx, cand)
		out.settled = out.settled || won.settled
		out.backOff = won.backOff
		if ten == nil {
			s.revoke(ctx, cand)
			return out, nil
		}
		if why := s.notReady(); why != "" {
			// Won just as the replica stopped being ready (unhealthy, paused,
			// yielding): give way without promoting.
			s.logger.Info("elected, but not ready: resigning without promoting", "why", why, "fencing_token", ten.FencingToken())
			s.resign(ten)
			s.revoke(ctx, cand)
			return out, nil
		}
		// The win is verified and nothing is promoted yet: the one place a
		// winner may yield to a higher priority (docs/design.md, 8.1).
		target, ok := s.yieldTarget(el, ten)
		if !ok {
			break
		}
		if !s.yield(ten, target) {
			s.revoke(ctx, cand)
			return out, nil
		}
		// Campaign again at once, on the same lease, behind the target: the
		// election is never left without this replica.
	}
	tenureOut, err := s.tenure(ctx, el, cand, ten)
	tenureOut.settled = tenureOut.settled || out.settled
	return tenureOut, err
}

// campaign holds the lease while the replica may not campaign, then
// campaigns until it wins (a tenure), the lease is lost, ctx ends or the
// replica stops being ready (nil tenure).
func (s *Sidecar) campaign(ctx context.Context, cand candidacy) (tenure, termOutcome) {
	lease := election.LeaseHex(cand.LeaseID())
	// The lease is held (the member record published) while not ready.
	if !s.waitReady(ctx, cand) {
		return nil, termOutcome{}
	}
	s.state.setPhase(role.PhaseCampaigning)
	s.logger.Info("campaigning", "lease", lease)
	value, _ := json.Marshal(election.CandidateValue{ID: s.cfg.ID, Addr: s.cfg.Advertise, Since: time.Now().UTC(), Priority: s.cfg.Priority})
	cctx, withdraw := context.WithCancel(ctx)
	stopWatch := s.onNotReady(withdraw)
	start := time.Now()
	ten, err := cand.Campaign(cctx, string(value))
	stopWatch()
	withdraw()
	steady := time.Since(start) >= s.steadyCampaign()
	switch {
	case err == nil:
		return ten, termOutcome{settled: steady}
	case ctx.Err() != nil:
		return nil, termOutcome{}
	}
	if why := s.notReady(); why != "" {
		level := slog.LevelWarn
		if routineWait(why) {
			level = slog.LevelInfo
		}
		s.logger.Log(context.Background(), level, "withdrew from the election", "why", why, "lease", lease)
		return nil, termOutcome{settled: steady}
	}
	s.logger.Warn("campaign ended without a win", "lease", lease, "err", err)
	// A lost lease is replaced at once; anything else is retried later.
	return nil, termOutcome{backOff: cand.Err() == nil, settled: steady}
}

// heldTenure is a tenure this replica won: what stepDown needs to end it.
type heldTenure struct {
	ten  tenure
	cand candidacy
	// ctx ends with the tenure; its cause says why (see tenure).
	ctx     context.Context
	promote *runningHook
	// record writes the tenure's end to the history.
	record func(role.Reason)
	// answered is the resign or switchover request serve acted on, to be
	// cleared once handled; nil: none.
	answered *election.Request
}

// tenure promotes, serves until the tenure ends, and steps down. The
// tenure is a context: it ends when etcd takes the tenure away (its cause
// is the loss), when ctx ends (a stop), or when the sidecar gives way (a
// failed promote, a reason found while serving); its cause is the reason
// the step-down reports. The first cause wins.
func (s *Sidecar) tenure(ctx context.Context, el elector, cand candidacy, ten tenure) (out termOutcome, err error) {
	token := ten.FencingToken()
	tctx, end := context.WithCancelCause(ten.Context())
	defer end(nil)
	stopOnShutdown := context.AfterFunc(ctx, func() { end(stepDownFor(role.ReasonShutdown)) })
	defer stopOnShutdown()

	s.logger.Info("elected", "fencing_token", token)
	h := &heldTenure{ten: ten, cand: cand, ctx: tctx, record: s.recordTenure(ctx, el, token, time.Now())}
	s.state.beginTenure(ten)
	s.state.setPhase(role.PhasePromoting)
	s.state.transition(role.Primary, role.ReasonElected)
	h.promote = s.startHook(tctx, hookRun{event: hooks.Promote, from: role.Standby, to: role.Primary,
		reason: role.ReasonElected, token: token, lease: cand.LeaseID()})

	select {
	case <-tctx.Done(): // lost, or a stop, while promoting
	case <-h.promote.done:
		switch res := h.promote.res; {
		case tctx.Err() != nil: // killed: the tenure ended first
		case ctx.Err() != nil: // a stop as the promote ended: never serve
			end(stepDownFor(role.ReasonShutdown))
		case !res.OK():
			s.logger.Error("promote hook failed; giving way", "err", res.Err)
			out.backOff = true
			end(stepDownFor(role.ReasonPromoteFailed))
		default:
			out.settled = true
			s.state.setPhase(role.PhasePrimary)
			s.logger.Info("primary", "fencing_token", token)
			if cause := s.serve(tctx, el, token); cause != nil {
				h.answered = cause.request
				end(cause)
			}
		}
	}
	return out, s.stepDown(ctx, el, h)
}

// stepDown ends a tenure whose context has ended, in the one order that
// never leaves two primaries: the next primary's promote may start only
// once the leader key is gone, and the key goes only after this replica's
// demote has ended. It returns an error only when the demote never
// succeeded, which ends the sidecar (the lease is left to expire).
func (s *Sidecar) stepDown(ctx context.Context, el elector, h *heldTenure) error {
	token, lease := h.ten.FencingToken(), h.cand.LeaseID()
	// /primary stops answering 200 before anything else happens.
	s.state.setPhase(role.PhaseDemoting)

	// 1. Kill a promote that is still running: it runs under the tenure's
	// context, which has ended; wait until its process group is gone.
	h.promote.wait()
	reason := s.stepDownReason(h)
	s.logger.Info("stepping down", "reason", reason, "fencing_token", token)

	// 2. Demote, retrying until it succeeds. While it is retried the key
	// stays ours, so nobody else promotes over a half-demoted app; if it
	// never succeeds, the lease is left to expire on the server.
	if !s.runDemote(ctx, hookRun{event: hooks.Demote, from: role.Primary, to: role.Standby, reason: reason, token: token, lease: lease}) {
		h.record(reason)
		h.cand.Abandon()
		s.logger.Warn("leaving the lease to expire: the demote did not succeed", "lease", election.LeaseHex(lease))
		return fmt.Errorf("demote hook did not succeed (reason %s); leaving the lease to expire", reason)
	}

	// 3. Resign: delete the leader key, so the next candidate wins at once.
	if lost := context.Cause(h.ten.Context()); lost != nil {
		s.logger.Info("not resigning: the tenure is already lost", "err", lost)
	} else {
		s.resign(h.ten)
	}

	// 4. Record the tenure's end in the history (beside the state machine).
	h.record(reason)

	// 5. Clear the resign or switchover request serve acted on, whatever
	// ended the tenure first: it names this tenure, so it is spent.
	if h.answered != nil {
		cctx, cancel := s.cleanupContext()
		if err := el.ClearRequest(cctx, h.answered); err != nil {
			s.logger.Warn("clearing the handled request failed; it expires by itself", "err", err)
		}
		cancel()
	}

	// 6. Revoke the lease (retried beside the state machine if etcd does
	// not answer), so no key of this replica is left to block the election.
	s.revoke(ctx, h.cand)
	return nil
}

// stepDownReason is the reason the tenure's cause names, read once the
// promote is gone. A stop that ended a promote yields to a loss that came
// while the promote was being killed: the hooks are told the key is gone.
func (s *Sidecar) stepDownReason(h *heldTenure) role.Reason {
	cause := context.Cause(h.ctx)
	var own *stepDownCause
	if errors.As(cause, &own) && own.reason == role.ReasonShutdown && h.promote.res.Canceled {
		if lost := context.Cause(h.ten.Context()); lost != nil {
			cause = lost
		}
	}
	return reasonOf(cause)
}

// reasonOf is the reason a tenure ended with cause: each cause names its
// own (see election's loss errors and stepDownCause). Anything else is
// taken for a lost lease.
func reasonOf(cause error) role.Reason {
	var r interface{ StepDownReason() role.Reason }
	if errors.As(cause, &r) {
		return r.StepDownReason()
	}
	return role.ReasonLeaseLost
}

// runDemote runs the demote hook until it succeeds, backing off between
// attempts and reporting the replica degraded meanwhile. It gives up only
// on Abort, or on shutdown when there is nothing to step down from (the
// start-up demote); it reports whether a demote succeeded.
func (s *Sidecar) runDemote(ctx context.Context, run hookRun) bool {
	startup := run.reason == role.ReasonStartup
	if startup {
		s.state.setPhase(role.PhaseStarting)
	} else {
		s.state.setPhase(role.PhaseDemoting)
	}
	bo := s.newBackOff()
	for attempt := 1; ; attempt++ {
		res := s.runHook(context.Background(), run)
		if res.OK() {
			s.state.setDemoteFailed(false)
			if run.from == role.Primary {
				s.state.transition(role.Standby, run.reason)
			}
			return true
		}
		s.state.setDemoteFailed(true)
		wait := bo.NextBackOff()
		s.logger.Error("demote hook failed; retrying, not campaigning until it succeeds",
			"reason", run.reason, "attempt", attempt, "err", res.Err, "retry_in", wait)
		// At start-up there is no tenure to protect, so shutdown ends the
		// retries; after a tenure only Abort does.
		var shutdown <-chan struct{}
		if startup {
			shutdown = ctx.Done()
		}
		retry := time.NewTimer(wait)
		select {
		case <-s.abortCtx.Done():
			retry.Stop()
			return false
		case <-shutdown:
			retry.Stop()
			return false
		case <-retry.C:
		}
	}
}

// resign deletes the leader key if it is still ours; bounded, and a
// failure only delays the next primary until the revoke.
func (s *Sidecar) resign(ten tenure) {
	cctx, cancel := s.cleanupContext()
	defer cancel()
	if err := ten.Resign(cctx); err != nil {
		s.logger.Warn("resign failed; revoking the lease instead", "err", err)
	}
}

// revoke revokes the lease. If etcd does not answer, the revoke is retried
// beside the state machine, which moves on to a new lease. The replica is
// without a lease from here until the next grant.
func (s *Sidecar) revoke(ctx context.Context, cand candidacy) {
	s.state.setPhase(role.PhaseConnecting)
	cctx, cancel := s.cleanupContext()
	defer cancel()
	if err := cand.Close(cctx); err != nil {
		s.logger.Warn("revoking the lease failed; retrying beside the state machine", "err", err)
		s.actors.spawn("revoke-retry", func() { s.retryRevoke(ctx, cand) })
	}
}

// revokeRetry paces the retries of a failed revoke.
const revokeRetry = 500 * time.Millisecond

// retryRevoke keeps trying to revoke a lease whose revoke failed (etcd
// unreachable, quorum lost), until it works, the lease could no longer be
// alive (2 x TTL: a new etcd leader extends every lease by its TTL), or ctx
// ends. Without it, the lease's keys block the next election for a whole
// TTL after etcd comes back.
func (s *Sidecar) retryRevoke(ctx context.Context, cand candidacy) {
	give := time.NewTimer(2 * cand.TTL())
	defer give.Stop()
	tick := time.NewTicker(revokeRetry)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.abortCtx.Done():
			return
		case <-give.C:
			return
		case <-tick.C:
		}
		rctx, cancel := s.cleanupContext()
		err := cand.Revoke(rctx)
		cancel()
		if err == nil {
			s.logger.Info("revoked the old lease", "lease", election.LeaseHex(cand.LeaseID()))
			return
		}
	}
}

// cleanupContext bounds one etcd clean-up call; Abort cuts it short.
// Never derived from the run context, which is already cancelled on stop.
func (s *Sidecar) cleanupContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.abortCtx, cleanupTimeout)
}

// sleepCtx waits d or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
