package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leaderd/leaderd/internal/etcdtest"
)

// Options configure a campaign. The same options and seed draw the same
// faults in the same order; timing still varies from run to run.
type Options struct {
	Seed           int64
	Faults         int     // how many faults to inject
	Replicas       int     // 3 to 5
	Overlap        float64 // chance that a second fault starts while one is held
	TTL            time.Duration
	DemoteTimeout  time.Duration
	PromoteTimeout time.Duration
	// Priorities starts the replicas with distinct --priority values drawn
	// from the seed (Priorities); Failback > 0 adds --failback after=it.
	Priorities bool
	Failback   time.Duration
	Binary     string // the leaderd executable
	Dir        string // working directory (etcd data, hooks, logs, timeline)
	Log        *slog.Logger
}

// Validate checks the options a campaign cannot run with.
func (o Options) Validate() error {
	switch {
	case o.Faults < 1:
		return errors.New("-faults must be at least 1")
	case o.Replicas < 3 || o.Replicas > 5:
		return errors.New("-replicas must be 3 to 5")
	case o.Overlap < 0 || o.Overlap > 1:
		return errors.New("-overlap must be between 0 and 1")
	case o.TTL < 2*time.Second || o.TTL%time.Second != 0:
		return errors.New("-ttl must be whole seconds, at least 2s")
	case o.DemoteTimeout <= 0 || o.PromoteTimeout <= 0:
		return errors.New("-demote-timeout and -promote-timeout must be positive")
	case o.Failback < 0:
		return errors.New("-failback must be positive")
	case o.Failback > 0 && !o.Priorities:
		return errors.New("-failback needs -priorities: with equal priorities there is nothing to fail back to")
	}
	return nil
}

// Named bounds of the campaign itself.
const (
	startTimeout = 60 * time.Second // the first steady state
	// recoveryCap is added to the bound when waiting for recovery, so a
	// slow case is measured rather than cut off.
	recoveryCap = 20 * time.Second
)

// campaign is one run's mutable state.
type campaign struct {
	ctx    context.Context
	o      Options
	w      *World
	obs    *observer
	rand   *rand.Rand
	log    *slog.Logger
	faults []*Fault
	bound  time.Duration

	stopObs       context.CancelFunc
	loops, probes sync.WaitGroup // the observer's loops and its probes
}

// Run builds the world, injects o.Faults faults and returns the record.
// An error means the campaign itself could not run (etcd did not start),
// not that leaderd misbehaved: that is for Check to say.
func Run(ctx context.Context, o Options) (*Record, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	c, rec, err := setup(ctx, o)
	if err != nil {
		return nil, err
	}
	defer c.teardown()
	c.log.Info("campaign started", "seed", o.Seed, "faults", o.Faults, "replicas", o.Replicas, "bound", c.bound)

	for step := 0; c.injected() < o.Faults && ctx.Err() == nil; step++ {
		c.step(step)
	}

	c.conclude(rec)
	return rec, ctx.Err()
}

// setup builds the world, starts the observer and the replicas and waits
// for the first steady state. On success the caller owes c.teardown().
// The soak runs in the same world, so this is shared.
func setup(ctx context.Context, o Options) (c *campaign, rec *Record, err error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w, err := newWorld(ctx, o, o.Dir, o.Binary, log)
	if err != nil {
		return nil, nil, err
	}
	c = &campaign{
		ctx:  ctx,
		o:    o,
		w:    w,
		obs:  newObserver(w),
		rand: rand.New(rand.NewPCG(uint64(o.Seed), 0x6c656164657264)), // "leaderd"
		log:  log,
	}
	c.bound = o.TTL + w.etcd.ElectionTimeout() + 500*time.Millisecond + o.DemoteTimeout + o.PromoteTimeout
	rec = &Record{Seed: o.Seed, Started: time.Now(), Replicas: w.ids(), Bound: c.bound,
		Priorities: o.priorityMap(w.ids()), Failback: o.Failback}

	obsCtx, stopObs := context.WithCancel(context.Background())
	c.stopObs = stopObs
	c.loops.Add(3)
	go func() { defer c.loops.Done(); c.obs.run(obsCtx, &c.probes) }()
	go func() { defer c.loops.Done(); c.obs.write(obsCtx) }()
	go func() { defer c.loops.Done(); c.obs.watchStalls(obsCtx, w.frozenGrace()) }()
	defer func() {
		if err != nil {
			c.teardown()
		}
	}()

	for _, n := range w.nodes {
		if err := w.start(n); err != nil {
			return nil, nil, err
		}
	}
	if c.obs.waitSteady(ctx, time.Now(), startTimeout).IsZero() {
		return nil, nil, fmt.Errorf("no single primary within %s of the start", startTimeout)
	}
	return c, rec, nil
}

// stopObserving stops the probes and the writer and waits for them.
func (c *campaign) stopObserving() {
	c.stopObs()
	c.loops.Wait()
	c.probes.Wait()
}

// teardown stops the observer, then the world.
func (c *campaign) teardown() {
	c.stopObserving()
	c.w.close()
}

// conclude records the end state (finish), stops the observer and fills
// rec with what was observed and the faults with their figures.
func (c *campaign) conclude(rec *Record) {
	c.finish(rec)
	c.stopObserving()
	rec.Samples = c.obs.sortedSamples()
	rec.Acked = c.obs.acked()
	rec.Writes = c.w.store.Writes()
	rec.Frozen = append(rec.Frozen, c.obs.hostStalls()...)
	for _, f := range c.faults {
		c.primaryFigures(f, rec.Samples)
		rec.Faults = append(rec.Faults, *f)
	}
}

// injected counts the faults that took effect (an inject that failed,
// e.g. a resign refused while another request was pending, does not).
func (c *campaign) injected() int {
	n := 0
	for _, f := range c.faults {
		if f.InjectErr == "" {
			n++
		}
	}
	return n
}

// stepRand is step's own random source, and faultRand a fault's: each
// makes the same draws whatever the world did, so a seed replays the same
// kinds, holds and overlaps even when an earlier fault went differently.
func (c *campaign) stepRand(step int) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(c.o.Seed), 1<<32|uint64(step)))
}

func (c *campaign) faultRand(step, which int) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(c.o.Seed), uint64(step)<<1|uint64(which)))
}

// step injects one fault, sometimes a second one during it, holds them,
// heals them and waits for one primary again.
func (c *campaign) step(step int) {
	p := c.plan(step)
	c.rand = c.faultRand(step, 0)
	first := c.begin(p.first, nil)
	group := []*active{first}
	holdEnd := time.Now().Add(first.hold)
	if p.second != nil && c.injected() < c.o.Faults {
		c.sleep(time.Duration(p.delay * float64(first.hold)))
		c.rand = c.faultRand(step, 1)
		second := c.begin(p.second, first)
		group = append(group, second)
		if end := time.Now().Add(second.hold); end.After(holdEnd) {
			holdEnd = end
		}
	}
	c.sleep(time.Until(holdEnd))
	c.settle(group)
	c.sleep(p.settle)
}

// stepPlan is what a step will do, drawn before it touches the world.
type stepPlan struct {
	first, second *kind   // second is nil unless the step overlaps two faults
	delay         float64 // when the second starts, as a fraction of the first's hold
	settle        time.Duration
}

// plan draws step's plan from its own source: the same seed and step give
// the same plan, whatever happened before.
func (c *campaign) plan(step int) stepPlan {
	r := c.stepRand(step)
	p := stepPlan{first: draw(r, func(*kind) bool { return true })}
	overlap := r.Float64() < c.o.Overlap
	p.delay = r.Float64()
	second := draw(r, func(k *kind) bool {
		// One etcd fault at a time: two could fight over one member.
		return !(k.scope == onEtcd && p.first.scope == onEtcd)
	})
	if overlap {
		p.second = second
	}
	p.settle = time.Duration(200+r.IntN(800)) * time.Millisecond
	return p
}

// settle heals a group of faults, in order, and waits for one primary
// again, timing the recovery from the last heal (or, for a fault whose
// effect is the primary moving, from the move).
func (c *campaign) settle(group []*active) {
	// etcd first: an operator's resume needs a quorum, and a replica's
	// restart is judged against a working cluster.
	slices.SortStableFunc(group, func(a, b *active) int { return int(a.kind.scope.healOrder()) - int(b.kind.scope.healOrder()) })
	lastHeal := time.Now()
	for _, a := range group {
		if a.kind.heal == nil {
			continue
		}
		if err := a.kind.heal(c, a); err != nil {
			a.fault.Note = joinNote(a.fault.Note, "heal: "+err.Error())
			c.log.Warn("heal failed", "fault", a.fault.Seq, "kind", a.kind.name, "err", err)
		}
		a.fault.Healed = time.Now()
		lastHeal = a.fault.Healed
	}
	since := lastHeal
	for _, a := range group {
		if a.kind.moves && !a.cancelled && a.primary != "" && a.fault.InjectErr == "" {
			// A request the primary never acted on leaves it serving: then
			// the recovery is timed from the heal, not from the wait.
			if moved := c.obs.waitNotServing(c.ctx, a.primary, c.bound); moved.After(since) {
				since = moved
			}
		}
	}
	var recovered time.Time
	if p, ok := c.obs.steady(since); ok && since == lastHeal && c.obs.servedSince(p, since) {
		recovered = since // nothing to recover: the same primary served throughout
	} else {
		recovered = c.obs.waitSteady(c.ctx, since, c.bound+recoveryCap)
	}
	for _, a := range group {
		a.fault.Recovered = recovered
	}
	if recovered.IsZero() {
		c.log.Warn("no single primary after the fault healed", "faults", len(c.faults), "waited", c.bound+recoveryCap)
	}
}

// begin picks the fault's target and injects it.
func (c *campaign) begin(k *kind, other *active) *active {
	primary, _ := c.obs.primary()
	hold := k.hold(c.rand, c.o.TTL)
	var target *node
	if k.scope == onReplica {
		target = c.pickReplica(primary, other)
	}
	// The fault's own draws come after these, from its own source.
	return c.inject(k, hold, primary, target, other)
}

// inject records fault k on target (nil: none, or not a replica fault),
// overlapping other (or nil), and injects it.
func (c *campaign) inject(k *kind, hold time.Duration, primary string, target *node, other *active) *active {
	f := &Fault{Seq: len(c.faults) + 1, Kind: k.name, Injected: time.Now()}
	a := &active{kind: k, fault: f, hold: hold, primary: primary}
	if k.scope == onReplica {
		a.node = target
		if a.node == nil {
			f.Note = "no replica to target"
			c.faults = append(c.faults, f)
			return a
		}
		f.Target = a.node.id
		f.Primary = a.node.id == primary
	}
	if other != nil {
		f.Overlaps = []int{other.fault.Seq}
		other.fault.Overlaps = append(other.fault.Overlaps, f.Seq)
	}
	c.faults = append(c.faults, f)
	f.Injected = time.Now()
	if err := k.inject(c, a); err != nil {
		f.InjectErr = err.Error()
		c.log.Warn("inject failed", "fault", f.Seq, "kind", k.name, "err", err)
	}
	c.log.Info("fault", "seq", f.Seq, "kind", k.name, "target", f.Target, "primary", f.Primary, "hold", a.hold.Round(time.Millisecond), "note", f.Note)
	return a
}

// pickReplica is the primary half of the time, else a running replica,
// never the other active fault's target.
func (c *campaign) pickReplica(primary string, other *active) *node {
	var candidates []*node
	for _, n := range c.w.nodes {
		if n.replica() != nil && !n.frozen() && (other == nil || other.node != n) {
			candidates = append(candidates, n)
		}
	}
	// Both draws always happen, so the fault's later draws do not depend
	// on what the world looked like.
	toPrimary, pick := c.rand.IntN(2) == 0, c.rand.Uint64()
	if len(candidates) == 0 {
		return nil
	}
	if primary != "" && toPrimary {
		for _, n := range candidates {
			if n.id == primary {
				return n
			}
		}
	}
	return candidates[pick%uint64(len(candidates))]
}

func (c *campaign) sleep(d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.ctx.Done():
	case <-t.C:
	}
}

// primaryFigures fills when the primary at injection stopped serving and
// when some replica served again, from the samples.
func (c *campaign) primaryFigures(f *Fault, samples []Sample) {
	// The primary at injection is the replica with the last 200 before it.
	primary := ""
	for _, s := range samples {
		if s.Sent.After(f.Injected) {
			break
		}
		if s.Code == http.StatusOK {
			primary = s.Replica
		}
	}
	if primary == "" {
		return
	}
	end := f.Recovered
	if end.IsZero() {
		end = f.Injected.Add(c.bound + recoveryCap + time.Hour)
	}
	for _, s := range samples {
		if s.Sent.Before(f.Injected) || s.Sent.After(end) {
			continue
		}
		if f.PrimaryLost.IsZero() {
			if s.Replica == primary && s.Code != http.StatusOK {
				f.PrimaryLost = s.Sent
			}
			continue
		}
		if s.Code == http.StatusOK {
			f.NextPrimary = s.Received
			return
		}
	}
	// Recovered means one replica served then; the probe that showed it
	// may have been sent before the one that showed the loss (probes
	// answer out of order when the host stalls).
	if !f.PrimaryLost.IsZero() && !f.Recovered.IsZero() {
		f.NextPrimary = later(f.Recovered, f.PrimaryLost)
	}
}

// finish waits for the end state and records it, then stops every
// replica and looks for hook processes left behind.
func (c *campaign) finish(rec *Record) {
	w := c.w
	steadyAt := c.obs.waitSteady(c.ctx, time.Now(), c.bound+recoveryCap)
	if steadyAt.IsZero() {
		c.log.Warn("no single primary at the end")
	}
	if c.o.Priorities {
		c.settlePriorities(rec)
	}
	for _, n := range w.nodes {
		if s, ok := c.obs.lastSample(n.id); ok && s.Code == http.StatusOK && n.replica() != nil {
			rec.End.Primaries = append(rec.End.Primaries, n.id)
		}
	}
	// A killed replica's lease lives until its TTL runs out: wait that out
	// before calling a lease left over.
	deadline := time.Now().Add(c.o.TTL + 3*time.Second)
	for {
		live, sidecars, err := c.leases()
		if err != nil {
			c.log.Warn("reading leases", "err", err)
		}
		rec.End.LiveLeases, rec.End.SidecarLease = live, sidecars
		if err == nil && subset(live, sidecars) || time.Now().After(deadline) {
			break
		}
		c.sleep(200 * time.Millisecond)
	}
	for _, n := range w.nodes {
		if n.replica() == nil {
			rec.End.Down = append(rec.End.Down, n.id)
		}
	}
	for _, n := range w.nodes {
		w.stopReplica(n, 10*time.Second)
	}
	if c.o.Priorities {
		c.countPriorityLogs(rec)
	}
	rec.End.LeftoverHook = leftoverProcesses(w.dir, true)
	rec.Ended = time.Now()
	tl, err := w.set.Timeline()
	if err != nil {
		rec.TimelineErr = err.Error()
	}
	rec.Timeline = tl
	rec.TimelineSkipped = countLines(w.set.TimelinePath()) - len(tl)
	w.mu.Lock()
	rec.Frozen = append(rec.Frozen, w.frozen...)
	rec.HookFaults = append(rec.HookFaults, w.hookW...)
	rec.Exits = append(rec.Exits, w.exits...)
	w.mu.Unlock()
}

// leases are the lease ids etcd holds and those the running sidecars
// report holding.
func (c *campaign) leases() (live, sidecars []int64, err error) {
	cli, err := clientv3.New(etcdtest.ClientConfig(c.w.etcd.Endpoints()...))
	if err != nil {
		return nil, nil, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	resp, err := cli.Leases(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, l := range resp.Leases {
		live = append(live, int64(l.ID))
	}
	for _, n := range c.w.nodes {
		rep := n.replica()
		if rep == nil {
			continue
		}
		st, err := rep.Status(ctx)
		if err != nil || st.Lease == nil {
			continue
		}
		if id, err := strconv.ParseInt(st.Lease.ID, 16, 64); err == nil {
			sidecars = append(sidecars, id)
		}
	}
	return live, sidecars, nil
}

func subset(a, b []int64) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// leftoverProcesses are processes still carrying the campaign's
// CHAOS_DIR in their environment: hooks (or their children) that outlived
// the leaderd that ran them. With kill, they are SIGKILLed once listed,
// so no run leaves them behind.
func leftoverProcesses(dir string, kill bool) []string {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	marker := []byte("CHAOS_DIR=" + dir + "\x00")
	var out []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !bytes.Contains(env, marker) {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		out = append(out, fmt.Sprintf("pid %d: %s", pid, bytes.ReplaceAll(bytes.TrimRight(cmd, "\x00"), []byte{0}, []byte{' '})))
		if kill {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	return out
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// countLines counts a file's newline-terminated lines (0 if unreadable).
func countLines(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return bytes.Count(b, []byte{'\n'})
}
