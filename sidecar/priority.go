package sidecar

import (
	"context"
	"errors"
	"time"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/role"
)

// Priority: a winner yields to a healthy campaigner of strictly higher
// priority instead of promoting, and with --failback a primary hands the
// role to one that has campaigned long enough. docs/design.md, 8.1,
// explains the rules.

// higherTarget is the candidate this replica (id, at priority own) should
// give the role to: the highest priority above own that campaigns, whose
// member record is on the same lease and healthy, and that allowed
// accepts; the earliest in campaign order among equals. ok is false when
// there is none.
func higherTarget(p election.Peers, id string, own int, allowed func(election.Candidate) bool) (election.Candidate, bool) {
	var best election.Candidate
	found := false
	for _, c := range p.Candidates {
		if c.ID == "" || c.ID == id || c.Priority <= own || (found && c.Priority <= best.Priority) {
			continue
		}
		// A candidate key alone may be another tool's, or a replica that
		// has not published its record yet: promoting is always safe.
		m := p.Members[c.ID]
		if m == nil || m.LeaseID != c.LeaseID || !m.Healthy || !allowed(c) {
			continue
		}
		best, found = c, true
	}
	return best, found
}

// peersTimeout bounds the fresh read of the candidates at a win: it delays
// the promote, so it stays within one renew interval.
func (s *Sidecar) peersTimeout() time.Duration { return min(cleanupTimeout, s.cfg.RenewInterval()) }

// yieldTarget is the replica to yield to instead of promoting after a
// verified win, read afresh from etcd (the watch's copy may be behind);
// ok false: promote. A failed read promotes: the yield is a preference,
// promoting is always safe.
func (s *Sidecar) yieldTarget(el elector, ten tenure) (election.Candidate, bool) {
	now := time.Now()
	if s.state.namedTarget(now) {
		return election.Candidate{}, false // an operator's switchover asked for this replica
	}
	if noneHigher(ten.Candidates(), s.cfg.ID, s.cfg.Priority) {
		return election.Candidate{}, false
	}
	rctx, cancel := context.WithTimeout(s.abortCtx, s.peersTimeout())
	defer cancel()
	peers, err := el.ReadPeers(rctx)
	if err != nil {
		s.logger.Warn("cannot read the candidates' priorities; promoting", "err", err)
		return election.Candidate{}, false
	}
	return higherTarget(peers, s.cfg.ID, s.cfg.Priority, func(c election.Candidate) bool {
		return s.mayYieldTo(rctx, el, c, now)
	})
}

// noneHigher reports whether the candidates the win's verification read
// (nil: not known) show no other one of a strictly higher priority than
// own. Then the fresh read of the peers is skipped, saving a round trip
// before the promote: higherTarget takes only a strictly higher priority,
// so that read could find a target only in a candidate that campaigned
// (or re-campaigned with another value) in the moment since the
// verification, after the win; one that campaigns a moment after the read
// is missed all the same. A yield is a preference; promoting is always safe.
func noneHigher(cands []election.Candidate, id string, own int) bool {
	if cands == nil {
		return false
	}
	for _, c := range cands {
		if c.ID != id && c.Priority > own {
			return false
		}
	}
	return true
}

// noteNamed remembers a switchover request that names this replica, so
// that its win is not undone by a yield (yieldTarget). Only a live request
// for the tenure that leads, and only from its at (a scheduled one does
// nothing before), for a bounded time: a stale or far-off one must not pin
// this replica as primary over higher priorities. No watch event marks the
// at, so the window is set when the request is seen.
func (s *Sidecar) noteNamed(r *election.Request, now time.Time) {
	if !r.Live(now) || r.To != s.cfg.ID || !s.state.leadsNow(r) {
		return
	}
	from := now
	if r.At.After(now) {
		from = r.At
	}
	until := r.Expires
	if limit := from.Add(s.failbackRequestTTL()); limit.Before(until) {
		until = limit
	}
	s.state.nameTarget(from, until)
}

// mayYieldTo reports whether c, a healthy higher-priority campaigner, may
// be yielded to: it is not in yield back-off, and its lease is renewed (a
// killed replica's keys stay until its lease expires). Unsure: no.
func (s *Sidecar) mayYieldTo(ctx context.Context, el elector, c election.Candidate, now time.Time) bool {
	if !s.state.yieldAllowed(c.ID, now) {
		s.logger.Info("not yielding to a higher-priority replica: it did not serve after the last yield (back-off)", "target", clip(c.ID))
		return false
	}
	renewed, err := el.LeaseRenewed(ctx, c.LeaseID)
	if err != nil || !renewed {
		s.logger.Info("not yielding to a higher-priority replica: its lease is not being renewed", "target", clip(c.ID), "err", err)
		return false
	}
	return true
}

// yield gives up a won leader key without promoting: nothing was promoted,
// so nothing is demoted, and the next primary's promote starts after the
// resign as after any step-down. It reports whether the resign worked (the
// key is gone); if not, the caller revokes the lease.
func (s *Sidecar) yield(ten tenure, target election.Candidate) bool {
	s.state.setPhase(role.PhaseYielding)
	backOff := s.state.yielded(target.ID, yieldAtWin, time.Now())
	s.logger.Info("elected, but a higher-priority replica campaigns: yielding without promoting",
		"target", clip(target.ID), "target_priority", target.Priority, "priority", s.cfg.Priority,
		"fencing_token", ten.FencingToken(), "no_yield_to_it_again_for", backOff)
	cctx, cancel := s.cleanupContext()
	defer cancel()
	if err := ten.Resign(cctx); err != nil {
		s.logger.Warn("resign after yielding failed; revoking the lease instead", "err", err)
		return false
	}
	return true
}

// failbackRequestTTL bounds a failback's switchover request: long enough
// for the bystanders to withdraw and the demote to run, short enough that
// a target that went away does not hold the request for long.
func (s *Sidecar) failbackRequestTTL() time.Duration {
	return max(30*time.Second, 2*s.cfg.TTL+s.cfg.DemoteTimeout)
}

// failback watches, for one tenure, the higher-priority candidates that
// campaign while this replica is primary, and asks for a switchover to the
// best one once it has campaigned continuously for --failback's duration.
// Continuity is one candidate key: a replica that restarts, or withdraws
// while unhealthy, comes back with a new key and starts over. Used by serve
// only, so it needs no lock.
type failback struct {
	s     *Sidecar
	el    elector
	token int64
	after time.Duration
	seen  map[string]time.Time // candidate key -> first seen in this tenure
	timer *time.Timer
	at    time.Time // when timer fires; zero: not armed
	retry time.Duration
}

// failbackRetry is the first look again after a hand-over that could not
// be made (etcd did not answer, the fresh read did not confirm the
// target): nothing else wakes serve while the target merely keeps
// campaigning. It doubles on repeats up to yieldBackOffMax, so a key that
// never qualifies (no member record) costs a read now and then, no more.
const failbackRetry = time.Second

// later arms the next look after a hand-over that could not be made.
func (f *failback) later(now time.Time) {
	f.retry = min(max(2*f.retry, failbackRetry), yieldBackOffMax)
	f.wakeAt(now.Add(f.retry), now)
}

// newFailback is nil when --failback is off.
func (s *Sidecar) newFailback(el elector, token int64) *failback {
	if s.cfg.FailbackAfter <= 0 {
		return nil
	}
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &failback{s: s, el: el, token: token, after: s.cfg.FailbackAfter, seen: map[string]time.Time{}, timer: t}
}

// wake is the channel that fires when the next candidate becomes due; nil
// (never) when off.
func (f *failback) wake() <-chan time.Time {
	if f == nil {
		return nil
	}
	return f.timer.C
}

func (f *failback) stop() {
	if f != nil {
		f.timer.Stop()
	}
}

// wakeAt arms the timer for at, unless it is armed for earlier already.
func (f *failback) wakeAt(at, now time.Time) {
	if f == nil || (f.at.After(now) && !at.Before(f.at)) {
		return
	}
	f.timer.Reset(at.Sub(now))
	f.at = at
}

// check runs on every wake-up of serve while the election is not paused
// and no resign or switchover request for this tenure is pending.
func (f *failback) check(ctx context.Context, now time.Time) {
	if f == nil {
		return
	}
	s := f.s
	cands := s.state.campaignersSnapshot()
	present := make(map[string]bool, len(cands))
	due := election.Peers{Members: map[string]*election.Member{}}
	var next time.Time
	for _, c := range cands {
		if c.ID == "" || c.ID == s.cfg.ID || c.Priority <= s.cfg.Priority {
			continue
		}
		present[c.Key] = true
		first, ok := f.seen[c.Key]
		if !ok {
			first = now
			f.seen[c.Key] = now
		}
		if at := first.Add(f.after); now.Before(at) {
			if next.IsZero() || at.Before(next) {
				next = at
			}
			continue
		}
		if !s.state.yieldAllowed(c.ID, now) {
			// In back-off: look again later rather than at the next change.
			if at := now.Add(yieldBackOffMin); next.IsZero() || at.Before(next) {
				next = at
			}
			continue
		}
		due.Candidates = append(due.Candidates, c)
	}
	for k := range f.seen {
		if !present[k] {
			delete(f.seen, k)
		}
	}
	f.timer.Stop()
	f.at = time.Time{}
	if !next.IsZero() {
		f.wakeAt(next, now)
	}
	if len(due.Candidates) > 0 {
		f.handOver(ctx, due, now)
	}
}

// handOver confirms a due candidate in a fresh read (it still campaigns
// on the same key, and is healthy) and stores the switchover request; the
// switchover machinery does the rest (serve steps down once the target is
// next in line, the bystanders yield meanwhile).
func (f *failback) handOver(ctx context.Context, due election.Peers, now time.Time) {
	s := f.s
	rctx, cancel := context.WithTimeout(ctx, s.peersTimeout())
	defer cancel()
	peers, err := f.el.ReadPeers(rctx)
	if err != nil {
		s.logger.Warn("failback: cannot read the candidates; trying again later", "err", err)
		f.later(now)
		return
	}
	keys := map[string]bool{}
	for _, c := range due.Candidates {
		keys[c.Key] = true
	}
	var still []election.Candidate
	for _, c := range peers.Candidates {
		if keys[c.Key] {
			still = append(still, c)
		}
	}
	peers.Candidates = still
	target, ok := higherTarget(peers, s.cfg.ID, s.cfg.Priority, func(c election.Candidate) bool {
		return s.mayYieldTo(rctx, f.el, c, now)
	})
	if !ok {
		f.later(now) // unconfirmed (unhealthy record, lease not renewed, etcd error): look again
		return
	}
	req := election.Request{From: s.cfg.ID, FencingToken: f.token, To: target.ID,
		Requested: now.UTC(), Expires: now.Add(s.failbackRequestTTL()).UTC()}
	switch err := f.el.PutRequest(rctx, req); {
	case errors.Is(err, election.ErrRequestPending):
		s.logger.Info("failback: another request is pending; respecting it", "target", clip(target.ID))
	case err != nil:
		s.logger.Warn("failback: storing the switchover request failed; trying again later", "err", err)
		f.later(now)
	default:
		f.retry = 0
		backOff := s.state.yielded(target.ID, yieldFailback, now)
		s.logger.Info("failback: handing the role to a higher-priority replica",
			"target", clip(target.ID), "target_priority", target.Priority, "priority", s.cfg.Priority,
			"campaigned_for", f.after, "expires", req.Expires, "no_failback_to_it_again_for", backOff)
	}
}
