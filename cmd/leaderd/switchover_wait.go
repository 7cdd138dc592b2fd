package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/role"
)

// Exit codes of a failed `switchover --wait`, beyond exitError (refused,
// failed, another replica took over, etcd unreachable).
const (
	exitTimedOut        = 3 // the request expired, or --wait ran out, before --to promoted
	exitCancelled       = 4 // the request was deleted or replaced before the hand-off
	exitTargetUnhealthy = 5 // --to is unhealthy, or gone or not campaigning for targetGrace
)

// Pacing of `switchover --wait`.
const (
	// waitRecheck re-reads the election while the watch is quiet: a
	// watch on a lost connection stays silent, and a failed read must be
	// retried.
	waitRecheck = time.Second
	// expiryGrace: a primary may have taken the request just before it
	// expired; its demoting record follows within one put.
	expiryGrace = time.Second
	// readStall: a read unanswered this long when the wait ends means
	// etcd is not answering (reads take milliseconds).
	readStall = time.Second
	// targetGrace: a target without a candidate key or member record for
	// this long is gone (exit 5); a re-grant takes milliseconds.
	targetGrace = 3 * time.Second
)

// codedError is an error with the exit status it calls for.
type codedError struct {
	code int
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

func failWith(code int, format string, args ...any) error {
	return &codedError{code: code, err: fmt.Errorf(format, args...)}
}

// electionWatch signals every change under the election's keys; the
// waiter re-reads what it needs. It never misses a change after the
// revision it started from.
type electionWatch struct {
	changed chan struct{} // buffered 1
	cancel  context.CancelFunc
	done    chan struct{}
}

func (c *controlRun) watchElection(ctx context.Context, rev int64) *electionWatch {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	w := &electionWatch{changed: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		next := rev + 1
		for wctx.Err() == nil {
			opts := []clientv3.OpOption{clientv3.WithPrefix()}
			if next > 0 {
				opts = append(opts, clientv3.WithRev(next))
			}
			one, stop := context.WithCancel(wctx)
			wch := c.store.Client().Watch(one, c.store.Root(), opts...)
			for wr := range wch {
				if wr.Err() != nil {
					next = 0 // compacted, or cut off: go on from the current state
					break
				}
				next = wr.Header.Revision + 1
				w.wake()
			}
			stop()
			for range wch {
				// drain until the watcher closes so nothing is left behind
			}
			w.wake() // re-read: something may have been missed
			select {
			case <-wctx.Done():
			case <-time.After(waitRecheck):
			}
		}
	}()
	return w
}

func (w *electionWatch) wake() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

func (w *electionWatch) stop() {
	w.cancel()
	<-w.done
}

// promoted is a switchover seen through: --to promoted with token.
type promoted struct {
	token   int64
	start   time.Time // the request was due
	at      time.Time // the target's record first showed phase primary with token
	oldGone time.Time // the old primary's key was first seen gone; zero: not seen exactly
}

// handOff says how long the hand-off took, as observed: from the old
// primary's key gone (it resigns right after its demote hook ended) to
// the target's record in phase primary (published as its promote hook
// ended). The history records tenures' starts and ends, not promote ends,
// so it cannot say this.
func (p promoted) handOff() string {
	if p.oldGone.IsZero() {
		return "hand-off not measured (etcd reads failed while it happened)"
	}
	return fmt.Sprintf("hand-off %s (observed: old primary's key gone to new primary's promote end)",
		p.at.Sub(p.oldGone).Round(time.Millisecond))
}

// switchoverWait is the state of one awaitPromoted.
type switchoverWait struct {
	old     election.Candidate
	req     election.Request
	start   time.Time
	lastErr error // of the last read, when it failed
	// readFailed: the last read failed, if only because the wait ended.
	readFailed bool
	blind      bool      // a read failed since the last one that showed old leading
	where      string    // what the last good read showed, for the timed-out line
	targetAway time.Time // since when the target has been seen without a key or record; zero: it has one
	seen       promoted
}

// awaitPromoted waits, from the request's at (or now) for up to --wait,
// until the target has promoted: it leads with a new fencing token and its
// member record shows phase primary with that token. It wakes on every
// change in the election (w), at the request's at and expiry, and every
// waitRecheck. It fails, with the exit code for the reason, as soon as the
// outcome is known.
func (c *controlRun) awaitPromoted(ctx context.Context, w *electionWatch, old election.Candidate, req election.Request) (promoted, error) {
	start := req.At
	if start.IsZero() {
		start = req.Requested
	}
	ctx, cancel := context.WithDeadline(ctx, start.Add(c.opts.Wait))
	defer cancel()
	recheck := time.NewTicker(waitRecheck)
	defer recheck.Stop()
	due := time.NewTimer(time.Until(start))
	defer due.Stop()
	expiry := time.NewTimer(time.Until(req.Expires.Add(expiryGrace)))
	defer expiry.Stop()
	st := &switchoverWait{old: old, req: req, start: start, where: fmt.Sprintf("still %s (token %d)", old.ID, old.FencingToken())}
	for {
		if done, err := c.judge(ctx, st); done || err != nil {
			return st.seen, err
		}
		select {
		case <-ctx.Done():
			if st.lastErr != nil {
				// The outcome is unknown, not timed out: exit 1.
				return promoted{}, fmt.Errorf("could not tell whether %s promoted within --wait %s of %s: %w (last seen: %s)",
					req.To, durationText(c.opts.Wait), start.UTC().Format(time.RFC3339), st.lastErr, st.where)
			}
			return promoted{}, failWith(exitTimedOut, "%s did not promote within --wait %s of %s: %s",
				req.To, durationText(c.opts.Wait), start.UTC().Format(time.RFC3339), st.where)
		case <-w.changed:
		case <-recheck.C:
		case <-due.C:
		case <-expiry.C:
		}
	}
}

// judge reads the election once and says whether the switchover is done
// (st.seen filled in) or has failed. The control keys are read before the
// candidates: the primary clears a request only after giving up its key,
// so a request gone while the old primary still leads was cancelled.
func (c *controlRun) judge(ctx context.Context, st *switchoverWait) (bool, error) {
	now := time.Now()
	defer func() {
		// A read the wait's end cut short after readStall unanswered
		// counts as failed: etcd did not answer, whatever was last seen.
		if ctx.Err() != nil && st.lastErr == nil && st.readFailed && time.Since(now) >= readStall {
			st.lastErr = etcdError(c.endpoints, ctx.Err())
		}
	}()
	ctl, err := c.control(ctx)
	var cands []election.Candidate
	if err == nil {
		cands, err = c.candidates(ctx)
	}
	var members []election.Member
	if err == nil {
		members, err = c.members(ctx)
	}
	if err != nil {
		st.readFailed, st.blind = true, true
		if ctx.Err() == nil {
			st.lastErr = err
		}
		return false, nil
	}
	st.lastErr, st.readFailed = nil, false
	old, req, to := st.old, st.req, st.req.To
	oldLeads := len(cands) > 0 && cands[0].FencingToken() == old.FencingToken()
	if !oldLeads && st.seen.oldGone.IsZero() && !st.blind {
		st.seen.oldGone = now
	}
	if oldLeads {
		st.blind = false
	}
	target := memberOf(members, to)
	switch {
	case len(cands) == 0:
		st.where = fmt.Sprintf("no primary: %s (token %d) stepped down and no replica has taken over yet", old.ID, old.FencingToken())
		return false, nil
	case !oldLeads && cands[0].ID != to:
		next := cands[0]
		if now.Before(req.At) {
			return false, fmt.Errorf("%s (token %d) took over from %s before the switchover was due; the request is stale and ignored",
				next.ID, next.FencingToken(), old.ID)
		}
		return false, fmt.Errorf("%s stepped down but %s (token %d) became the primary, not %s", old.ID, next.ID, next.FencingToken(), to)
	case !oldLeads:
		token := cands[0].FencingToken()
		if target != nil && target.Phase == role.PhasePrimary && target.FencingToken == token {
			st.seen.token, st.seen.start, st.seen.at = token, st.start, now
			return true, nil
		}
		st.where = fmt.Sprintf("%s (token %d) is still promoting", to, token)
		return false, nil
	}
	// The old primary leads.
	if sw := ctl.Switchover; !req.Same(sw) {
		if sw == nil {
			return false, failWith(exitCancelled, "the switchover request was cancelled: its key is gone and %s (token %d) is still the primary",
				old.ID, old.FencingToken())
		}
		return false, failWith(exitCancelled, "the switchover request was replaced by another (%s -> %s); %s (token %d) is still the primary",
			sw.From, sw.To, old.ID, old.FencingToken())
	}
	if m := memberOf(members, old.ID); m != nil && m.Phase == role.PhaseDemoting {
		st.where = fmt.Sprintf("%s (token %d) is demoting", old.ID, old.FencingToken())
		return false, nil // handed over: whatever the clock says now
	}
	if !now.Before(req.Expires.Add(expiryGrace)) {
		return false, failWith(exitTimedOut, "the request expired at %s with %s (token %d) still the primary",
			req.Expires.UTC().Format(time.RFC3339), old.ID, old.FencingToken())
	}
	if !now.Before(st.start) {
		const stays = "; %s (token %d) stays the primary; the request stays until it expires"
		away := ""
		switch {
		case target == nil:
			away = to + " is gone (no member record)"
		case !target.Healthy:
			// Its health check's hysteresis has already debounced this.
			return false, failWith(exitTargetUnhealthy, "%s is unhealthy"+stays, to, old.ID, old.FencingToken())
		case !slices.ContainsFunc(cands, func(c election.Candidate) bool { return c.ID == to }):
			away = fmt.Sprintf("%s stopped campaigning (%s)", to, target.Phase)
		}
		if away != "" {
			// A replica re-granting its lease is without a key, and a member
			// record, for a moment: only a target away for targetGrace is gone.
			if st.targetAway.IsZero() {
				st.targetAway = now
			}
			if now.Sub(st.targetAway) >= targetGrace {
				return false, failWith(exitTargetUnhealthy, "%s"+stays, away, old.ID, old.FencingToken())
			}
			st.where = fmt.Sprintf("still %s (token %d); %s", old.ID, old.FencingToken(), away)
			return false, nil
		}
		st.targetAway = time.Time{}
	}
	st.where = fmt.Sprintf("still %s (token %d)", old.ID, old.FencingToken())
	return false, nil
}

func (c *controlRun) members(ctx context.Context) ([]election.Member, error) {
	var members []election.Member
	err := c.call(ctx, func(ctx context.Context) error {
		var err error
		members, err = c.store.Members(ctx)
		return err
	})
	return members, err
}

func memberOf(members []election.Member, id string) *election.Member {
	for i := range members {
		if members[i].ID == id {
			return &members[i]
		}
	}
	return nil
}
