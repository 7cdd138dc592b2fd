package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/leaderd/leaderd/election"
)

// `leaderd resign`, `switchover`, `pause` and `resume` steer an election
// through its control keys (<prefix>/<election>/control/), so they work
// from any host with etcd access. The running replicas act on them; see
// sidecar/control.go.

// Defaults and pacing of the control commands.
const (
	defaultControlWait    = 30 * time.Second // --wait
	defaultControlTimeout = 30 * time.Second // --timeout: how long the request stays live
	// controlPoll is how often a waiting resign or switchover reads the
	// leader.
	controlPoll = 200 * time.Millisecond
)

const controlExit = "Exit status: 0 success, 1 refused, failed, not done within --wait, or etcd\n" +
	"unreachable, 2 bad input."

// switchoverExit adds the codes of a failed switchover --wait.
const switchoverExit = "Exit status: 0 success (--wait: --to has promoted), 1 refused, failed, another\n" +
	"replica took over, or etcd unreachable, 2 bad input; with --wait: 3 timed out\n" +
	"(the request expired, or --wait ran out), 4 cancelled (the request was\n" +
	"deleted or replaced), 5 --to is unhealthy, or gone or not campaigning for 3s."

func resignCommand(args []string, env lookupEnv, stdout, stderr io.Writer) int {
	f := newControlFlags("resign", "--election NAME [--wait DURATION] [--timeout DURATION] [flags]",
		"Ask the election's primary to step down: it runs its demote hook (reason\n"+
			"resigned), gives up the leader key, and another replica takes over. The\n"+
			"request names the current tenure (id and fencing token), so it never\n"+
			"affects a later primary, and expires after --timeout. Waits up to --wait\n"+
			"for the next tenure and prints it. Refused while the election is paused\n"+
			"(no replica would take over).\n\n"+controlExit, env)
	return runControl("resign", f, args, stdout, stderr, resign)
}

func switchoverCommand(args []string, env lookupEnv, stdout, stderr io.Writer) int {
	f := newControlFlags("switchover", "--election NAME --to ID [--at TIME] [--wait DURATION] [--timeout DURATION] [flags]\n"+
		"       leaderd switchover --election NAME --cancel [flags]",
		"Hand the primary role to the standby --to and to nobody else: the other\n"+
			"standbys stop campaigning until --to is next in line, then the primary\n"+
			"steps down (demote hook, reason switchover) and --to is elected. Refused\n"+
			"before anything is written when --to is unknown, unhealthy, not\n"+
			"campaigning or already the primary, or the election is paused, or\n"+
			"another request is pending (a scheduled one too: --cancel it first).\n"+
			"With --at the request is stored now and acted on at TIME, not before; it\n"+
			"names the current primary's tenure, so if the primary changes before\n"+
			"TIME it is stale and ignored. The request expires --timeout after TIME\n"+
			"(or now). --wait waits, from TIME, until --to has promoted (its promote\n"+
			"hook ended) and prints its fencing token and the hand-off measured; 0:\n"+
			"return once stored. --cancel deletes the pending request, whatever its\n"+
			"state, unless it changed since read; with none it says so and exits 0.\n\n"+switchoverExit, env)
	return runControl("switchover", f, args, stdout, stderr, switchover)
}

func pauseCommand(args []string, env lookupEnv, stdout, stderr io.Writer) int {
	f := newControlFlags("pause", "--election NAME [flags]",
		"Pause automatic role changes: standbys do not campaign, and an unhealthy\n"+
			"primary is not demoted (a primary whose lease is lost or whose leaderd\n"+
			"stops still steps down: that is not a choice). Stays until leaderd resume.\n"+
			"Idempotent.\n\n"+controlExit, env)
	return runControl("pause", f, args, stdout, stderr, func(ctx context.Context, c *controlRun) error {
		return c.setPaused(ctx, true)
	})
}

func resumeCommand(args []string, env lookupEnv, stdout, stderr io.Writer) int {
	f := newControlFlags("resume", "--election NAME [flags]",
		"Resume automatic role changes after leaderd pause. Idempotent.\n\n"+controlExit, env)
	return runControl("resume", f, args, stdout, stderr, func(ctx context.Context, c *controlRun) error {
		return c.setPaused(ctx, false)
	})
}

// controlRun is one control command at work.
type controlRun struct {
	opts      controlOptions
	store     *election.Store
	endpoints string
	out       io.Writer
}

// runControl parses the flags, connects, and runs do; every error is one
// line on stderr.
func runControl(name string, f *controlFlags, args []string, stdout, stderr io.Writer,
	do func(context.Context, *controlRun) error) int {
	opts, err := f.parse(args)
	if errors.Is(err, errHelp) {
		f.status.set.usage(stdout)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "leaderd %s: %s\n", name, oneLine(err.Error()))
		return exitBadInput
	}
	c := &controlRun{opts: opts, endpoints: strings.Join(opts.Config.Endpoints, ","), out: stdout}
	c.store, err = openStore(opts.Config)
	if err != nil {
		fmt.Fprintf(stderr, "leaderd %s: %s\n", name, oneLine(etcdError(c.endpoints, err).Error()))
		return exitError
	}
	defer c.store.Client().Close()
	if err := do(context.Background(), c); err != nil {
		fmt.Fprintf(stderr, "leaderd %s: %s\n", name, oneLine(err.Error()))
		var coded *codedError
		if errors.As(err, &coded) {
			return coded.code
		}
		return exitError
	}
	return exitOK
}

// call runs one etcd call with its own deadline and turns a failure into
// the etcd error line.
func (c *controlRun) call(ctx context.Context, fn func(context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, statusCallTimeout)
	defer cancel()
	if err := fn(cctx); err != nil {
		return etcdError(c.endpoints, err)
	}
	return nil
}

func (c *controlRun) setPaused(ctx context.Context, paused bool) error {
	if err := c.call(ctx, func(ctx context.Context) error {
		return c.store.SetPaused(ctx, paused)
	}); err != nil {
		return err
	}
	if paused {
		fmt.Fprintln(c.out, "paused: standbys will not campaign; an unhealthy primary stays")
	} else {
		fmt.Fprintln(c.out, "resumed")
	}
	return nil
}

// candidates reads the candidates in campaign order: the first one leads.
func (c *controlRun) candidates(ctx context.Context) ([]election.Candidate, error) {
	var cands []election.Candidate
	err := c.call(ctx, func(ctx context.Context) error {
		var err error
		cands, _, err = c.store.Candidates(ctx)
		return err
	})
	return cands, err
}

func (c *controlRun) control(ctx context.Context) (election.Control, error) {
	var ctl election.Control
	err := c.call(ctx, func(ctx context.Context) error {
		var err error
		ctl, _, err = c.store.ReadControl(ctx)
		return err
	})
	return ctl, err
}

// errPaused refuses a resign or switchover while paused: no standby would
// campaign, so the election would be left without a primary.
var errPaused = errors.New("the election is paused; leaderd resume first")

// putRequest stores the request; a live one already there is refused. A
// scheduled switchover blocks until it is cancelled: it may be hours off.
func (c *controlRun) putRequest(ctx context.Context, r election.Request) error {
	err := c.call(ctx, func(ctx context.Context) error {
		return c.store.PutRequest(ctx, r)
	})
	if !errors.Is(err, election.ErrRequestPending) {
		return err
	}
	if ctl, cerr := c.control(ctx); cerr == nil {
		if sw := ctl.Switchover; sw.Live(time.Now()) && !sw.Due(time.Now()) {
			return fmt.Errorf("a switchover %s -> %s scheduled at %s is pending; leaderd switchover --cancel first",
				sw.From, sw.To, sw.At.UTC().Format(time.RFC3339))
		}
	}
	return fmt.Errorf("%w; retry after it expires", election.ErrRequestPending)
}

func resign(ctx context.Context, c *controlRun) error {
	cands, err := c.candidates(ctx)
	if err != nil {
		return err
	}
	if len(cands) == 0 {
		return errors.New("no primary to resign")
	}
	ctl, err := c.control(ctx)
	if err != nil {
		return err
	}
	if ctl.Paused {
		return errPaused
	}
	old := cands[0]
	now := time.Now()
	if err := c.putRequest(ctx, election.Request{
		From: old.ID, FencingToken: old.FencingToken(),
		Requested: now.UTC(), Expires: now.Add(c.opts.Timeout).UTC(),
	}); err != nil {
		return err
	}
	if c.opts.Wait == 0 {
		fmt.Fprintf(c.out, "resign requested: %s (token %d); the request expires in %s\n",
			old.ID, old.FencingToken(), durationText(c.opts.Timeout))
		return nil
	}
	next, err := c.awaitNextTenure(ctx, old, now)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.out, "resigned: %s (token %d) -> %s (token %d) in %s\n",
		old.ID, old.FencingToken(), next.ID, next.FencingToken(), durationRounded(time.Since(now)))
	return nil
}

func switchover(ctx context.Context, c *controlRun) error {
	if c.opts.Cancel {
		return cancelSwitchover(ctx, c)
	}
	to := c.opts.To
	var cands []election.Candidate
	var rev int64 // of the candidates read: --wait watches from there
	if err := c.call(ctx, func(ctx context.Context) error {
		var err error
		cands, rev, err = c.store.Candidates(ctx)
		return err
	}); err != nil {
		return err
	}
	if len(cands) == 0 {
		return errors.New("no primary to switch over from")
	}
	old := cands[0]
	ctl, err := c.control(ctx)
	if err != nil {
		return err
	}
	if ctl.Paused {
		return errPaused
	}
	if old.ID == to {
		return fmt.Errorf("%s is already the primary (token %d)", to, old.FencingToken())
	}
	var members []election.Member
	if err := c.call(ctx, func(ctx context.Context) error {
		var err error
		members, err = c.store.Members(ctx)
		return err
	}); err != nil {
		return err
	}
	if err := checkTarget(to, members, cands); err != nil {
		return err
	}
	now := time.Now()
	req := election.Request{
		From: old.ID, FencingToken: old.FencingToken(), To: to,
		Requested: now.UTC(), Expires: now.Add(c.opts.Timeout).UTC(),
	}
	if !c.opts.At.IsZero() {
		req.At, req.Expires = c.opts.At.UTC(), c.opts.At.Add(c.opts.Timeout).UTC()
	}
	// Watch before the put, so that no step of a quick hand-off is missed.
	var w *electionWatch
	if c.opts.Wait > 0 {
		w = c.watchElection(ctx, rev)
		defer w.stop()
	}
	if err := c.putRequest(ctx, req); err != nil {
		return err
	}
	switch {
	case c.opts.Wait > 0:
	case req.At.IsZero():
		fmt.Fprintf(c.out, "switchover requested: %s (token %d) -> %s; the request expires in %s\n",
			old.ID, old.FencingToken(), to, durationText(c.opts.Timeout))
		return nil
	default:
		fmt.Fprintf(c.out, "switchover scheduled: %s (token %d) -> %s at %s (in %s); the request expires at %s\n",
			old.ID, old.FencingToken(), to, req.At.Format(time.RFC3339), durationRounded(time.Until(req.At)),
			req.Expires.Format(time.RFC3339))
		return nil
	}
	done, err := c.awaitPromoted(ctx, w, old, req)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.out, "switched over: %s -> %s (token %d) in %s; %s\n",
		old.ID, to, done.token, durationRounded(done.at.Sub(done.start)), done.handOff())
	return nil
}

// checkTarget says why the switchover target cannot take over, or nil: it
// must be a registered member, healthy, and campaigning (hold a candidate
// key).
func checkTarget(to string, members []election.Member, cands []election.Candidate) error {
	var m *election.Member
	ids := make([]string, 0, len(members))
	for i := range members {
		ids = append(ids, members[i].ID)
		if members[i].ID == to {
			m = &members[i]
		}
	}
	if m == nil {
		known := "none registered"
		if len(ids) > 0 {
			known = strings.Join(ids, ", ")
		}
		return fmt.Errorf("unknown member %s (members: %s)", to, known)
	}
	if !m.Healthy {
		return fmt.Errorf("%s is unhealthy", to)
	}
	for _, c := range cands {
		if c.ID == to {
			return nil
		}
	}
	return fmt.Errorf("%s is not campaigning (paused, --no-failover, or unhealthy)", to)
}

// awaitNextTenure polls the leader until it is another tenure than old,
// bounded by --wait. Read errors while waiting are retried: etcd may be
// busy with the hand-off; the last one is reported if the wait runs out.
func (c *controlRun) awaitNextTenure(ctx context.Context, old election.Candidate, start time.Time) (election.Candidate, error) {
	ctx, cancel := context.WithDeadline(ctx, start.Add(c.opts.Wait))
	defer cancel()
	tick := time.NewTicker(controlPoll)
	defer tick.Stop()
	var lastErr error // of the last read, when it failed inside the wait
	stillOld := true  // the last good read showed old leading
	for {
		cands, err := c.candidates(ctx)
		switch {
		case err == nil && len(cands) > 0 && cands[0].FencingToken() != old.FencingToken():
			return cands[0], nil
		case err == nil:
			lastErr, stillOld = nil, len(cands) > 0
		case ctx.Err() == nil:
			lastErr = err
		}
		select {
		case <-ctx.Done():
			waited := durationRounded(time.Since(start))
			switch {
			case lastErr != nil:
				return election.Candidate{}, fmt.Errorf("no new primary seen after %s: %v", waited, lastErr)
			case stillOld:
				return election.Candidate{}, fmt.Errorf("still %s (token %d) after %s; the request stays until it expires", old.ID, old.FencingToken(), waited)
			}
			return election.Candidate{}, fmt.Errorf("no primary after %s: %s (token %d) stepped down and no replica has taken over yet", waited, old.ID, old.FencingToken())
		case <-tick.C:
		}
	}
}
