// Package demo is the engine of `leaderd demo`: three `leaderd run`
// replicas with the example hooks elect a primary through an etcd embedded
// in this process; the demo stops the primary gracefully, crashes the next
// one, and prints what happened. No etcd, docker or network is needed.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/leaderd/leaderd/hooks"
	"github.com/leaderd/leaderd/internal/etcdtest"
	"github.com/leaderd/leaderd/internal/replicas"
	"github.com/leaderd/leaderd/internal/timeline"
	"github.com/leaderd/leaderd/sidecar"
)

// Defaults and bounds. Every wait of the demo is bounded, and so is its
// teardown.
const (
	// DefaultTTL is short so that the crash failover is quick to watch.
	DefaultTTL = 3 * time.Second
	// DefaultDemoteTimeout with DefaultTTL satisfies the lease guard:
	// 3s - 1s - 500ms margin >= 2 x 750ms renew interval.
	DefaultDemoteTimeout = 1 * time.Second

	electionName = "demo"

	// firstPrimaryTimeout bounds start-up: etcd is local, so a primary is
	// normally elected within a second; the rest is for a loaded machine.
	firstPrimaryTimeout = 20 * time.Second
	// handOffTimeout bounds a graceful hand-off: a demote (at most the
	// demote timeout), a resign and a promote start, all local.
	handOffTimeout = 20 * time.Second
	// failoverSlack is added to the TTL to bound a crash failover: the
	// lease expires first, then a standby campaigns and promotes.
	failoverSlack = 20 * time.Second
	// settlePause is the pause between steps, several role polls long.
	settlePause = 1 * time.Second
	// exitTimeout bounds the wait for a signalled replica's process to end.
	exitTimeout = 10 * time.Second
	// stopSlack is added to the demote timeout for the grace a replica gets
	// between SIGTERM and SIGKILL at teardown: resign and revoke (2s each at
	// most in the sidecar) and the API's shutdown, with a little to spare.
	stopSlack = 5 * time.Second
)

// Options configures Run. The zero value is valid.
type Options struct {
	// Binary is the leaderd executable the replicas run. Default "": this
	// process's own executable (os.Executable).
	Binary string
	// TTL is the replicas' lease TTL (--ttl), whole seconds. Default 3s.
	TTL time.Duration
	// DemoteTimeout bounds the replicas' demote hook (--demote-timeout).
	// Default 1s. TTL and DemoteTimeout must satisfy the lease guard.
	DemoteTimeout time.Duration
	// Verbose also streams the replicas' own logs, prefixed by their id.
	Verbose bool

	// onTempDir, if set, is told the demo's working directory as soon as it
	// exists, so tests can check that it is removed.
	onTempDir func(dir string)
}

// withDefaults fills in the defaults and validates the replicas' timing
// with the sidecar's own rules, so a bad pair fails here and not as three
// replicas refusing to start.
func (o Options) withDefaults() (Options, error) {
	if o.TTL == 0 {
		o.TTL = DefaultTTL
	}
	if o.DemoteTimeout == 0 {
		o.DemoteTimeout = DefaultDemoteTimeout
	}
	if o.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return o, fmt.Errorf("demo: finding the leaderd executable: %w", err)
		}
		o.Binary = exe
	}
	cfg := sidecar.DefaultConfig()
	cfg.Election, cfg.ID, cfg.Listen = electionName, replicaIDs[0], "off"
	cfg.TTL, cfg.DemoteTimeout = o.TTL, o.DemoteTimeout
	if err := cfg.Validate(); err != nil {
		return o, fmt.Errorf("demo: %w", err)
	}
	return o, nil
}

var replicaIDs = []string{"app-1", "app-2", "app-3"}

// demo is one run: what it started, so that teardown can stop it.
type demo struct {
	opts  Options
	p     *printer
	dir   string
	etcd  *etcdtest.Server
	set   *replicas.Set
	byID  map[string]*replicas.Replica
	alive map[string]*replicas.Replica // replicas expected to keep running
	watch *roleWatch

	// What happened, for the timeline and the summary.
	actions  []action
	handOff  measure
	failover measure
	crashed  timeline.Event // the crashed primary's promote end
}

// measure is one measured interval between two replicas.
type measure struct {
	from, to string
	took     time.Duration
}

// Run runs the demo, writing its story to out. It returns nil when every
// check passed, ctx.Err() when ctx ended first (after a bounded teardown),
// or an error saying what went wrong. Nothing is left behind: replicas,
// etcd and the temporary directory are gone when Run returns.
func Run(ctx context.Context, out io.Writer, opts Options) (err error) {
	opts, err = opts.withDefaults()
	if err != nil {
		return err
	}
	d := &demo{
		opts:  opts,
		p:     newPrinter(out),
		byID:  map[string]*replicas.Replica{},
		alive: map[string]*replicas.Replica{},
	}
	defer func() {
		if ctx.Err() != nil {
			d.p.say("\nInterrupted: stopping the replicas and etcd.")
		}
		if cerr := d.close(err != nil && ctx.Err() == nil); err == nil {
			err = cerr
		}
		if ctx.Err() != nil {
			err = ctx.Err()
		}
	}()
	return d.run(ctx)
}

func (d *demo) run(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "leaderd-demo-*")
	if err != nil {
		return fmt.Errorf("demo: temporary directory: %w", err)
	}
	d.dir = dir
	if d.opts.onTempDir != nil {
		d.opts.onTempDir(dir)
	}
	if err := d.start(ctx); err != nil {
		return err
	}
	if err := d.gracefulStop(ctx); err != nil {
		return err
	}
	if err := d.crash(ctx); err != nil {
		return err
	}

	d.p.say("\n3. Stopping the last replica gracefully (SIGTERM).")
	d.stopAll()
	d.watch.stop()
	evs, err := d.set.Timeline()
	if err != nil {
		return fmt.Errorf("demo: reading the timeline: %w", err)
	}
	d.printTimeline(evs)
	return d.summary(evs)
}

// start starts etcd, the replicas and the role watch, and waits for the
// first primary to finish promoting.
func (d *demo) start(ctx context.Context) error {
	d.p.say("leaderd demo: three replicas (%s) elect one primary through an", joinIDs(replicaIDs))
	d.p.say("etcd embedded in this process. Each runs the example hooks: promote.sh when")
	d.p.say("it becomes primary, demote.sh when it stops being primary (and once at start).")
	d.p.say("Lease TTL %s, demote timeout %s. Working directory %s", d.opts.TTL, d.opts.DemoteTimeout, d.dir)
	d.p.say("(removed at the end). Role changes are shown live, from each replica's /status.\n")

	var err error
	d.etcd, err = etcdtest.StartServer(ctx, etcdtest.Options{Dir: filepath.Join(d.dir, "etcd")})
	if err != nil {
		return fmt.Errorf("demo: starting etcd: %w", err)
	}
	d.p.event("etcd", "serving on %s", d.etcd.Endpoint())

	d.set, err = replicas.NewSet(d.opts.Binary, d.dir, electionName, d.opts.TTL, d.opts.DemoteTimeout)
	if err != nil {
		return fmt.Errorf("demo: writing the hooks: %w", err)
	}
	if d.opts.Verbose {
		d.set.Log = d.p
	}
	rs := make([]*replicas.Replica, 0, len(replicaIDs))
	for _, id := range replicaIDs {
		r, err := d.set.Start(id, d.etcd.Endpoint())
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		d.byID[id], d.alive[id] = r, r
		rs = append(rs, r)
		d.p.event(id, "process started (pid %d, API http://%s/status)", r.Pid(), r.APIAddr)
	}
	d.watch = watchRoles(ctx, d.p, rs)

	first, err := d.waitFor(ctx, "a first primary", firstPrimaryTimeout,
		timeline.First(0, timeline.Event{Hook: "promote", Phase: "end"}))
	if err != nil {
		return err
	}
	if err := settle(ctx); err != nil {
		return err
	}
	d.p.say("\nFirst primary: %s (fencing token %d).", first.ID, first.Token)
	return nil
}

// gracefulStop sends SIGTERM to the primary and measures the hand-off: its
// demote end to the next promote start.
func (d *demo) gracefulStop(ctx context.Context) error {
	primary, n, err := d.currentPrimary()
	if err != nil {
		return err
	}
	d.p.say("\n1. Graceful stop: SIGTERM to the primary %s. It runs its demote hook, then", primary.ID)
	d.p.say("   resigns, so a standby may take over at once.\n")
	d.signal(primary, syscall.SIGTERM, "graceful stop")

	demoted, err := d.waitFor(ctx, primary.ID+"'s demote", handOffTimeout,
		timeline.First(n, timeline.Event{Hook: "demote", Phase: "end", ID: primary.ID}))
	if err != nil {
		return err
	}
	next, err := d.waitFor(ctx, "the next primary", handOffTimeout,
		timeline.First(n, timeline.Event{Hook: "promote", Phase: "start"}))
	if err != nil {
		return err
	}
	d.handOff = measure{from: primary.ID, to: next.ID, took: next.At.Sub(demoted.At)}
	if _, err := d.waitFor(ctx, next.ID+"'s promote", handOffTimeout,
		timeline.First(n, timeline.Event{Hook: "promote", Phase: "end", ID: next.ID, Token: next.Token})); err != nil {
		return err
	}
	if err := d.waitExit(ctx, primary); err != nil {
		return err
	}
	if err := settle(ctx); err != nil {
		return err
	}
	d.p.say("\n   Hand-off: %s from %s's demote end to %s's promote start.",
		round(d.handOff.took), primary.ID, next.ID)
	return nil
}

// crash waits for the new primary to finish promoting, kills it with
// SIGKILL and measures the failover: the kill to the next promote start.
func (d *demo) crash(ctx context.Context) error {
	primary, n, err := d.currentPrimary()
	if err != nil {
		return err
	}
	d.crashed = d.lastPromoteEnd(primary.ID)
	d.p.say("\n2. Crash: SIGKILL to the new primary %s (fencing token %d). It cannot demote",
		primary.ID, d.crashed.Token)
	d.p.say("   or resign; the others must wait for its lease (TTL %s) to expire.\n", d.opts.TTL)
	killAt := d.signal(primary, syscall.SIGKILL, "crash: no demote, no resign")

	next, err := d.waitFor(ctx, "a primary after the crash", d.opts.TTL+failoverSlack,
		timeline.First(n, timeline.Event{Hook: "promote", Phase: "start"}))
	if err != nil {
		return err
	}
	d.failover = measure{from: primary.ID, to: next.ID, took: next.At.Sub(killAt)}
	if _, err := d.waitFor(ctx, next.ID+"'s promote", handOffTimeout,
		timeline.First(n, timeline.Event{Hook: "promote", Phase: "end", ID: next.ID, Token: next.Token})); err != nil {
		return err
	}
	if err := d.waitExit(ctx, primary); err != nil {
		return err
	}
	if err := settle(ctx); err != nil {
		return err
	}
	d.p.say("\n   Failover: %s from the kill to %s's promote start, bounded by the lease",
		round(d.failover.took), next.ID)
	d.p.say("   TTL %s (counted from %s's last renewal, at most a renew interval before the", d.opts.TTL, primary.ID)
	d.p.say("   kill; etcd looks for expired leases every 500ms) + campaign and hook start.")
	return nil
}

// settle pauses between steps so that the live role lines catch up with
// the steady state: the demo is read by a person, and a local hand-off
// takes a few milliseconds.
func settle(ctx context.Context) error {
	t := time.NewTimer(settlePause)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// currentPrimary is the replica of the last promote end on the timeline,
// and the timeline's length, from which to look for what follows.
func (d *demo) currentPrimary() (*replicas.Replica, int, error) {
	evs, err := d.set.Timeline()
	if err != nil {
		return nil, 0, fmt.Errorf("demo: reading the timeline: %w", err)
	}
	for i := len(evs) - 1; i >= 0; i-- {
		if e := evs[i]; e.Is(hooks.Promote, timeline.PhaseEnd) {
			r, ok := d.alive[e.ID]
			if !ok {
				return nil, 0, fmt.Errorf("demo: the primary %s is not running", e.ID)
			}
			return r, len(evs), nil
		}
	}
	return nil, 0, errors.New("demo: no primary on the timeline")
}

func (d *demo) lastPromoteEnd(id string) timeline.Event {
	evs, _ := d.set.Timeline()
	for i := len(evs) - 1; i >= 0; i-- {
		if e := evs[i]; e.Is(hooks.Promote, timeline.PhaseEnd) && e.ID == id {
			return e
		}
	}
	return timeline.Event{ID: id}
}

// signal sends sig to r, records it for the timeline and returns when.
func (d *demo) signal(r *replicas.Replica, sig syscall.Signal, why string) time.Time {
	delete(d.alive, r.ID) // its exit is expected from now on
	name := map[syscall.Signal]string{syscall.SIGTERM: "SIGTERM", syscall.SIGKILL: "SIGKILL"}[sig]
	d.p.event(r.ID, "<- %s (%s)", name, why)
	at := time.Now()
	_ = r.Signal(sig) // an already exited replica shows up in the waits
	d.actions = append(d.actions, action{at: at, id: r.ID, what: name + " (" + why + ")"})
	return at
}

// waitFor waits up to timeout for find to match the timeline. It gives up
// early when ctx ends or when a replica that should be running exits.
func (d *demo) waitFor(ctx context.Context, what string, timeout time.Duration, find func([]timeline.Event) int) (timeline.Event, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	exited := make(chan string, len(d.alive))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, r := range d.alive {
		wg.Go(func() {
			select {
			case <-r.Done():
				exited <- r.ID
				cancel()
			case <-stop:
			}
		})
	}
	ev, err := d.set.WaitFor(wctx, find)
	close(stop)
	wg.Wait()
	switch {
	case err == nil:
		return ev, nil
	case ctx.Err() != nil:
		return ev, ctx.Err()
	}
	select {
	case id := <-exited:
		return ev, fmt.Errorf("demo: %s exited unexpectedly while waiting for %s", id, what)
	default:
		return ev, fmt.Errorf("demo: no sign of %s within %s: %w", what, timeout, err)
	}
}

// waitExit waits for a signalled replica's process to end.
func (d *demo) waitExit(ctx context.Context, r *replicas.Replica) error {
	t := time.NewTimer(exitTimeout)
	defer t.Stop()
	select {
	case <-r.Done():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("demo: %s still running %s after it was signalled", r.ID, exitTimeout)
	}
}

// stopAll stops every running replica: SIGTERM, then SIGKILL after a grace
// that covers a demote, a resign and a revoke. Bounded; idempotent.
func (d *demo) stopAll() {
	if d.set == nil {
		return
	}
	for id, r := range d.alive {
		delete(d.alive, id)
		d.actions = append(d.actions, action{at: time.Now(), id: r.ID, what: "SIGTERM (end of the demo)"})
	}
	d.set.Close(d.opts.DemoteTimeout + stopSlack)
}

// close tears everything down in order: replicas first (they still need
// etcd to resign and revoke), then the role watch, etcd and the directory.
// After a failure it prints the replicas' last log lines first.
func (d *demo) close(failed bool) error {
	d.stopAll()
	if d.watch != nil {
		d.watch.stop()
	}
	if failed && d.set != nil && !d.opts.Verbose {
		d.printLogTails()
	}
	if d.etcd != nil {
		d.etcd.Close()
	}
	if d.dir == "" {
		return nil
	}
	if err := os.RemoveAll(d.dir); err != nil {
		return fmt.Errorf("demo: removing %s: %w", d.dir, err)
	}
	return nil
}
