package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sync"
	"time"

	"github.com/leaderd/leaderd/hooks"
	"github.com/leaderd/leaderd/internal/etcdtest"
	"github.com/leaderd/leaderd/internal/timeline"
	"github.com/leaderd/leaderd/role"
	"github.com/leaderd/leaderd/sidecar"
)

// The scale bench (-scale): N elections × 3 replicas on a 3-member etcd
// cluster of separate processes. The replicas are sidecar.Sidecar values in
// this process, each with its own etcd client; their hooks are real shell
// processes appending to a timeline file per election.

// Bounds of the scale bench, generous for 3,000 sidecars on two cores.
const (
	// scalePoll paces the polling of the sidecars' status and timelines.
	scalePoll = 100 * time.Millisecond
	// scaleStopTimeout bounds a stopped sidecar's Run: its demote hook
	// (demote-timeout) and two clean-up calls (2 s each), with room.
	scaleStopTimeout = 30 * time.Second
	// killEvery picks the mass failover's elections: every 10th (10 %).
	killEvery = 10
)

// scaleReplica is one in-process sidecar.
type scaleReplica struct {
	id     string
	sc     *sidecar.Sidecar
	cancel context.CancelFunc
	done   chan error
	// proxy is the replica's only way to etcd in the elections of the mass
	// failover (closing it is the kill); nil elsewhere.
	proxy *etcdtest.Proxy
}

// wait waits up to timeout for Run to return; the result stays readable.
func (r *scaleReplica) wait(timeout time.Duration) (ended bool, err error) {
	select {
	case err := <-r.done:
		r.done <- err
		return true, err
	case <-time.After(timeout):
		return false, nil
	}
}

func (r *scaleReplica) running() bool {
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

type scaleElection struct {
	name     string
	timeline string
	reps     []*scaleReplica
	killable bool
	handoff  bool // in the hand-off sample: its replicas log at Info to their own file
}

func (e *scaleElection) events() ([]timeline.Event, error) {
	return timeline.ReadFile(e.timeline, timeline.ParseOptions{SkipPartial: true})
}

// waitEvent polls the election's timeline until an event from index from
// on matches, bounded by timeout.
func (e *scaleElection) waitEvent(ctx context.Context, timeout time.Duration, from int, match func(timeline.Event) bool) (timeline.Event, error) {
	deadline := time.Now().Add(timeout)
	for {
		evs, err := e.events()
		if err != nil {
			return timeline.Event{}, err
		}
		for i := from; i < len(evs); i++ {
			if match(evs[i]) {
				return evs[i], nil
			}
		}
		if time.Now().After(deadline) {
			return timeline.Event{}, fmt.Errorf("%s: no matching event within %s; since then: %s", e.name, timeout, timeline.Format(evs[min(from, len(evs)):]))
		}
		if !sleepCtx(ctx, scalePoll/4) {
			return timeline.Event{}, ctx.Err()
		}
	}
}

// primary returns the election's serving primary, or nil.
func (e *scaleElection) primary() *scaleReplica {
	for _, r := range e.reps {
		if !r.running() {
			continue
		}
		st := r.sc.Status()
		if st.Role == role.Primary && st.Phase == role.PhasePrimary {
			return r
		}
	}
	return nil
}

// steady reports whether the election has one serving primary and every
// other running replica is a campaigning standby holding a lease.
func (e *scaleElection) steady() bool {
	primaries := 0
	for _, r := range e.reps {
		if !r.running() {
			continue
		}
		st := r.sc.Status()
		switch {
		case st.Lease == nil || !st.Etcd.Reachable:
			return false
		case st.Role == role.Primary && st.Phase == role.PhasePrimary:
			primaries++
		case st.Role == role.Standby && st.Phase == role.PhaseCampaigning:
		default:
			return false
		}
	}
	return primaries == 1
}

// scaleRun is one N.
type scaleRun struct {
	o         scaleOptions
	n         int
	dir       string
	etcd      *etcdProcs
	elections []*scaleElection
	logger    *slog.Logger
	sink      logSink // the hand-off elections' Info lines
	log       io.Writer
	hz        int64
	res       *scaleResult
}

// runScale runs every N in turn, each on a fresh etcd cluster.
func runScale(ctx context.Context, o scaleOptions, rep *scaleReport, stderr io.Writer) {
	dir, err := os.MkdirTemp("", "leaderd-scale-*")
	if err != nil {
		rep.Fatal = fmt.Sprintf("work dir: %v", err)
		return
	}
	if o.keep {
		fmt.Fprintf(stderr, "bench: working directory %s (kept)\n", dir)
		rep.WorkDir = dir
	} else {
		defer os.RemoveAll(dir)
	}
	if o.pprofDir != "" {
		if err := os.MkdirAll(o.pprofDir, 0o755); err != nil {
			rep.Fatal = fmt.Sprintf("-scale-pprof: %v", err)
			return
		}
	}
	fmt.Fprintf(stderr, "bench: building bench/etcdmember\n")
	bin, err := buildEtcdMember(ctx, dir)
	if err != nil {
		rep.Fatal = err.Error()
		return
	}
	for _, n := range o.ns {
		if ctx.Err() != nil {
			return
		}
		res := &scaleResult{N: n, Sidecars: 3 * n}
		rep.Results = append(rep.Results, res)
		ndir := filepath.Join(dir, fmt.Sprintf("n%d", n))
		if err := os.MkdirAll(filepath.Join(ndir, "timelines"), 0o755); err != nil {
			res.fail("work dir: %v", err)
			continue
		}
		s := &scaleRun{o: o, n: n, dir: ndir, log: stderr, hz: clockTicks(), res: res}
		s.run(ctx, bin)
	}
}

func (s *scaleRun) logf(format string, args ...any) {
	fmt.Fprintf(s.log, "bench: N=%d: %s\n", s.n, fmt.Sprintf(format, args...))
}

func (s *scaleRun) run(ctx context.Context, bin string) {
	var err error
	s.logf("starting 3 etcd members")
	if s.etcd, err = startEtcdProcs(ctx, bin, s.dir, s.o.pprofDir != ""); err != nil {
		s.res.fail("etcd: %v", err)
		return
	}
	defer s.etcd.close()
	if err := s.idle(ctx); err != nil {
		s.res.fail("idle etcd: %v", err)
		return
	}
	logf, err := os.Create(filepath.Join(s.dir, "sidecars.log"))
	if err != nil {
		s.res.fail("log: %v", err)
		return
	}
	defer logf.Close()
	s.logger = slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	defer s.stopAll()

	if err := s.start(ctx); err != nil {
		s.res.fail("start: %v", err)
		return
	}
	s.logf("every election has a primary after %s", ms(s.res.Start))
	if err := s.steadyState(ctx); err != nil {
		s.res.fail("steady state: %v", err)
		return
	}
	s.logf("steady: %.0f etcd requests/s, etcd CPU %.2f cores", s.res.RPS, sum(s.res.EtcdCPU))
	if err := s.handoffs(ctx); err != nil {
		s.res.fail("hand-off: %v", err)
	}
	if err := s.massFailover(ctx); err != nil {
		s.res.fail("mass failover: %v", err)
	}
	s.checkSafety()
}

// config is one replica's sidecar config: leaderd's defaults, no HTTP API,
// hooks appending to the election's timeline.
func (s *scaleRun) config(e *scaleElection, id, endpoint string) sidecar.Config {
	cfg := sidecar.DefaultConfig()
	cfg.Endpoints = []string{endpoint}
	cfg.Election = e.name
	cfg.ID = id
	cfg.Listen = "off"
	cfg.TTL = s.o.ttl
	cfg.DemoteTimeout = s.o.demoteTimeout
	cfg.OnPromote = timelineHook(e.timeline)
	cfg.OnDemote = timelineHook(e.timeline)
	return cfg
}

// timelineHook is a hook command writing a start and an end line in the
// format of package timeline, as examples/hooks do, one write each.
func timelineHook(path string) string {
	line := `"$LEADERD_EVENT-%s $LEADERD_ID ${LEADERD_FENCING_TOKEN:--} $LEADERD_REASON"`
	return fmt.Sprintf(`echo "$(date +%%s%%N) "%s >>%s; echo "$(date +%%s%%N) "%s >>%s`,
		fmt.Sprintf(line, "start"), path, fmt.Sprintf(line, "end"), path)
}

// start creates every sidecar, starts them all at once and waits until
// every election is steady. Start is the latest first promote start after
// the start.
func (s *scaleRun) start(ctx context.Context) error {
	eps := s.etcd.endpoints()
	sample := handoffSample(s.n, s.o.handoffs)
	for i := range s.n {
		e := &scaleElection{name: fmt.Sprintf("s%04d", i), killable: i%killEvery == killEvery-1, handoff: sample[i]}
		e.timeline = filepath.Join(s.dir, "timelines", e.name)
		logger := s.logger
		if e.handoff {
			logger = slog.New(s.sink.handler())
		}
		for r := range 3 {
			// Each replica talks to one member, spread evenly.
			ep := eps[(i+r)%3]
			rep := &scaleReplica{id: fmt.Sprintf("r%d", r+1), done: make(chan error, 1)}
			if e.killable {
				p, err := etcdtest.NewProxy(ep)
				if err != nil {
					return err
				}
				rep.proxy, ep = p, p.Endpoint()
			}
			sc, err := sidecar.New(s.config(e, rep.id, ep), logger)
			if err != nil {
				return err
			}
			rep.sc = sc
			e.reps = append(e.reps, rep)
		}
		s.elections = append(s.elections, e)
	}
	s.logf("starting %d sidecars (%s)", 3*s.n, rampText(s.o.ramp))
	if s.o.pprofDir != "" {
		// The start storm's own profile, until every election is steady.
		stop, err := startProfile(filepath.Join(s.o.pprofDir, fmt.Sprintf("sidecars-start-n%d.pprof", s.n)))
		if err != nil {
			return err
		}
		defer stop()
	}
	// An election's replicas start together; elections start at the ramp's
	// pace (all at once without one).
	t0 := time.Now()
	started := make([]time.Time, len(s.elections))
	for i, e := range s.elections {
		if s.o.ramp > 0 {
			at := t0.Add(time.Duration(float64(3*i) / s.o.ramp * float64(time.Second)))
			if !sleepCtx(ctx, time.Until(at)) {
				return ctx.Err()
			}
		}
		started[i] = time.Now()
		for _, r := range e.reps {
			rctx, cancel := context.WithCancel(context.Background())
			r.cancel = cancel
			go func() { r.done <- r.sc.Run(rctx) }()
		}
	}
	s.res.RampTime = time.Since(t0)
	// Bound: a minute, plus 300 ms per election for the start-up storm.
	bound := time.Minute + time.Duration(s.n)*300*time.Millisecond
	if err := s.waitAll(ctx, bound, (*scaleElection).steady); err != nil {
		// Reported; the phases after it run on the elections that are.
		s.res.fail("start: %v", err)
	}
	s.res.SteadyAfter = time.Since(t0)
	var firsts, own []time.Duration
	for j, e := range s.elections {
		evs, err := e.events()
		if err != nil {
			return err
		}
		i := slices.IndexFunc(evs, func(ev timeline.Event) bool { return ev.Is(hooks.Promote, timeline.PhaseStart) })
		if i < 0 {
			s.res.fail("%s: steady without a promote in its timeline", e.name)
			continue
		}
		firsts = append(firsts, evs[i].At.Sub(t0))
		own = append(own, evs[i].At.Sub(started[j]))
	}
	st := (&dist{Values: firsts}).stats()
	s.res.Start = st.Max
	s.res.ElectionStart = &dist{Name: "an election's start → its first promote start", Values: own}
	return nil
}

// waitAll waits until ok holds for every election, bounded.
func (s *scaleRun) waitAll(ctx context.Context, bound time.Duration, ok func(*scaleElection) bool) error {
	deadline := time.Now().Add(bound)
	for {
		var missing []string
		for _, e := range s.elections {
			if !ok(e) {
				missing = append(missing, e.name)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d elections not steady after %s, e.g. %v", len(missing), bound, missing[:min(5, len(missing))])
		}
		if !sleepCtx(ctx, scalePoll) {
			return ctx.Err()
		}
	}
}

// steadyState lets the cluster settle, then measures etcd's requests and
// the CPU of every process over the window.
func (s *scaleRun) steadyState(ctx context.Context) error {
	if !sleepCtx(ctx, s.o.settle) {
		return ctx.Err()
	}
	pids := s.etcd.pids()
	before, err := s.sampleMetrics(ctx)
	if err != nil {
		return err
	}
	ticks0, err := s.ticks(pids)
	if err != nil {
		return err
	}
	t0 := time.Now()
	var profWG sync.WaitGroup
	if s.o.pprofDir != "" {
		s.profile(ctx, &profWG)
	}
	if !sleepCtx(ctx, s.o.window) {
		return ctx.Err()
	}
	profWG.Wait()
	ticks1, err := s.ticks(pids)
	if err != nil {
		return err
	}
	window := time.Since(t0)
	after, err := s.sampleMetrics(ctx)
	if err != nil {
		return err
	}
	s.res.Window = window
	secs := window.Seconds()
	s.res.ByMethod = map[string]float64{}
	s.res.Watchers, s.res.WatchStreams = after.watchers, after.watchStreams
	s.res.SteadyFsync = meanSince(before.fsyncSum, before.fsyncCount, after.fsyncSum, after.fsyncCount)
	for m, v := range after.received {
		if d := v - before.received[m]; d > 0 {
			s.res.ByMethod[m] = d / secs
			s.res.RPS += d / secs
		}
	}
	for m, v := range after.started {
		if d := v - before.started[m]; d > 0 {
			s.res.OpenedPS += d / secs
		}
	}
	for i := range pids {
		s.res.EtcdCPU = append(s.res.EtcdCPU, float64(ticks1[i]-ticks0[i])/float64(s.hz)/secs)
		m, err := memory(pids[i])
		if err != nil {
			return err
		}
		s.res.EtcdRSS = append(s.res.EtcdRSS, m.VmRSS)
	}
	s.res.SidecarCPU = float64(ticks1[len(pids)]-ticks0[len(pids)]) / float64(s.hz) / secs
	m, err := memory(os.Getpid())
	if err != nil {
		return err
	}
	s.res.SidecarRSS = m.VmRSS
	// Every election should still be steady: a window with failovers in
	// it measures something else. Reported, and the run goes on.
	var unsteady []string
	for _, e := range s.elections {
		if !e.steady() {
			unsteady = append(unsteady, e.name)
		}
	}
	if len(unsteady) > 0 {
		s.res.fail("%d elections not steady at the end of the steady window, e.g. %v", len(unsteady), unsteady[:min(5, len(unsteady))])
	}
	return nil
}

// idleWindow is how long the cluster's own CPU is measured before any
// sidecar starts.
const idleWindow = 5 * time.Second

// idle measures the members' CPU with no client: raft heartbeats and
// timers, the floor under every steady-state figure.
func (s *scaleRun) idle(ctx context.Context) error {
	pids := s.etcd.pids()
	t0, err := s.ticks(pids)
	if err != nil {
		return err
	}
	start := time.Now()
	if !sleepCtx(ctx, idleWindow) {
		return ctx.Err()
	}
	t1, err := s.ticks(pids)
	if err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	for i := range pids {
		s.res.EtcdIdleCPU += float64(t1[i]-t0[i]) / float64(s.hz) / secs
	}
	return nil
}

// ticks is the CPU ticks of each pid, then of this process.
func (s *scaleRun) ticks(pids []int) ([]int64, error) {
	var out []int64
	for _, p := range append(slices.Clone(pids), os.Getpid()) {
		t, err := cpuTicks(p)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// sampleMetrics reads every member's /metrics, summed.
func (s *scaleRun) sampleMetrics(ctx context.Context) (*etcdSample, error) {
	smp := &etcdSample{}
	for _, m := range s.etcd.members {
		if err := scrapeMember(ctx, m.clientURL, smp); err != nil {
			return nil, err
		}
	}
	return smp, nil
}

// profile takes CPU profiles of this process and of every member over
// the window, into -scale-pprof.
func (s *scaleRun) profile(ctx context.Context, wg *sync.WaitGroup) {
	secs := int(s.o.window / time.Second)
	stop, err := startProfile(filepath.Join(s.o.pprofDir, fmt.Sprintf("sidecars-n%d.pprof", s.n)))
	if err == nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sleepCtx(ctx, time.Duration(secs)*time.Second)
			stop()
		}()
	}
	if err != nil {
		s.res.fail("profile: %v", err)
	}
	for _, m := range s.etcd.members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := filepath.Join(s.o.pprofDir, fmt.Sprintf("etcd-%s-n%d.pprof", m.name, s.n))
			if err := fetchProfile(ctx, m.clientURL, secs, path); err != nil {
				s.logf("profile of %s: %v", m.name, err)
			}
		}()
	}
}

// startProfile starts a CPU profile of this process into path.
func startProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// handoffs stops the primary of a sample of elections gracefully, one at
// a time while the others run: old demote end → new promote start, and
// the stop → new promote start.
func (s *scaleRun) handoffs(ctx context.Context) error {
	var pool []*scaleElection
	for _, e := range s.elections {
		if e.handoff {
			pool = append(pool, e)
		}
	}
	s.res.Handoff = &dist{Name: "hand-off: old demote end → new promote start", Target: target{P99: 50 * time.Millisecond}}
	s.res.StopToPromote = &dist{Name: "graceful stop → new promote start"}
	for i, name := range stepNames {
		s.res.Steps[i] = &dist{Name: name}
	}
	before, err := s.sampleMetrics(ctx)
	if err != nil {
		return err
	}
	for _, e := range pool {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := s.handoff(ctx, e); err != nil {
			s.res.fail("hand-off %s: %v", e.name, err)
		}
	}
	if after, err := s.sampleMetrics(ctx); err == nil {
		s.res.HandoffFsync = meanSince(before.fsyncSum, before.fsyncCount, after.fsyncSum, after.fsyncCount)
		s.res.HandoffCommit = meanSince(before.commitSum, before.commitCount, after.commitSum, after.commitCount)
	}
	st := s.res.Handoff.stats()
	s.logf("hand-off p50 %s p99 %s over %d; mean WAL fsync %s, backend commit %s", ms(st.P50), ms(st.P99), st.N, msFine(s.res.HandoffFsync), msFine(s.res.HandoffCommit))
	return nil
}

func (s *scaleRun) handoff(ctx context.Context, e *scaleElection) error {
	var p *scaleReplica
	if err := s.waitOne(ctx, e, func(e *scaleElection) bool { return e.steady() }); err != nil {
		return err
	}
	if p = e.primary(); p == nil {
		return fmt.Errorf("no primary")
	}
	evs, err := e.events()
	if err != nil {
		return err
	}
	from := len(evs)
	stopAt := time.Now()
	p.cancel()
	if ok, err := p.wait(scaleStopTimeout); !ok {
		return fmt.Errorf("%s did not stop within %s", p.id, scaleStopTimeout)
	} else if err != nil {
		return fmt.Errorf("%s stopped with %v", p.id, err)
	}
	promoted, err := e.waitEvent(ctx, 2*s.o.ttl+10*time.Second, from, promoteStartOther(p.id))
	if err != nil {
		return err
	}
	demoted, err := e.waitEvent(ctx, time.Second, from, demoteEnd(p.id))
	if err != nil {
		return err
	}
	h := promoted.At.Sub(demoted.At)
	if h <= 0 {
		s.res.Violations++
		return fmt.Errorf("%s promoted %s before %s's demote ended", promoted.ID, ms(-h), p.id)
	}
	s.res.Handoff.Values = append(s.res.Handoff.Values, h)
	if steps, ok := handoffSteps(s.sink.since(stopAt), e.name, p.id, promoted.ID, demoted.At, promoted.At); ok {
		for i, d := range steps {
			s.res.Steps[i].Values = append(s.res.Steps[i].Values, d)
		}
	}
	s.res.StopToPromote.Values = append(s.res.StopToPromote.Values, promoted.At.Sub(stopAt))
	return nil
}

// waitOne waits up to 10 s for ok on one election: each election is
// handed off or killed once, so it is steady unless it is in trouble.
func (s *scaleRun) waitOne(ctx context.Context, e *scaleElection, ok func(*scaleElection) bool) error {
	deadline := time.Now().Add(10 * time.Second)
	for !ok(e) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not steady", e.name)
		}
		if !sleepCtx(ctx, scalePoll) {
			return ctx.Err()
		}
	}
	return nil
}

// killed is one primary of the mass failover.
type killed struct {
	e         *scaleElection
	r         *scaleReplica
	from      int
	killAt    time.Time
	remaining time.Duration
}

// massFailover kills the primaries of every 10th election at once: their
// proxies close every connection and refuse new ones (what etcd sees of a
// SIGKILLed process: its sockets closed, nothing sent after), then their
// sidecars are abandoned (Abort, cancel) so nothing they would do on the
// way out reaches etcd. Each election's standby must wait out the lease.
func (s *scaleRun) massFailover(ctx context.Context) error {
	var ks []*killed
	for _, e := range s.elections {
		if !e.killable {
			continue
		}
		// An election that is not steady is left out (and reported):
		// its primary, if any, may be on its way out already.
		if err := s.waitOne(ctx, e, (*scaleElection).steady); err != nil {
			s.res.fail("mass failover: %v; left out", err)
			continue
		}
		p := e.primary()
		if p == nil {
			s.res.fail("mass failover: %s has no primary; left out", e.name)
			continue
		}
		evs, err := e.events()
		if err != nil {
			return err
		}
		ks = append(ks, &killed{e: e, r: p, from: len(evs)})
	}
	if len(ks) == 0 {
		return nil
	}
	lead := s.stepDownLead()
	// Read every lease first, then kill all at once: the time left at the
	// kill is the time to the safe deadline at the read, plus the lead,
	// minus the time from the read to the kill.
	reads := make([]time.Time, len(ks))
	toSafe := make([]time.Duration, len(ks))
	for i, k := range ks {
		st := k.r.sc.Status()
		reads[i] = time.Now()
		if st.Lease == nil || st.Role != role.Primary {
			return fmt.Errorf("%s/%s is no longer a primary with a lease", k.e.name, k.r.id)
		}
		toSafe[i] = time.Duration(st.Lease.SecondsToSafeDeadline * float64(time.Second))
	}
	for i, k := range ks {
		k.killAt = time.Now()
		k.r.proxy.Close()
		k.remaining = toSafe[i] + lead - k.killAt.Sub(reads[i])
	}
	for _, k := range ks {
		k.r.sc.Abort()
		k.r.cancel()
	}
	s.logf("killed %d primaries", len(ks))
	s.res.Killed = len(ks)
	s.res.LeaseLeft = &dist{Name: "lease time left at the kill"}
	s.res.Failover = &dist{Name: "kill → new promote start"}
	s.res.Excess = &dist{Name: "excess: failover − lease time left", Target: target{P99: time.Second}}
	first := ks[0].killAt
	var last time.Time
	for _, k := range ks {
		promoted, err := k.e.waitEvent(ctx, k.remaining+30*time.Second, k.from, promoteStartOther(k.r.id))
		if err != nil {
			s.res.fail("mass failover %s: %v", k.e.name, err)
			continue
		}
		if promoted.At.After(last) {
			last = promoted.At
		}
		f := promoted.At.Sub(k.killAt)
		ex := f - k.remaining
		s.res.Failover.Values = append(s.res.Failover.Values, f)
		s.res.LeaseLeft.Values = append(s.res.LeaseLeft.Values, k.remaining)
		s.res.Excess.Values = append(s.res.Excess.Values, ex)
		if ex < 0 {
			s.res.Violations++
			s.res.fail("%s: %s promoted %s before %s's lease could expire", k.e.name, promoted.ID, ms(-ex), k.r.id)
		}
	}
	s.res.ReplaceAll = last.Sub(first)
	st := s.res.Excess.stats()
	s.logf("mass failover: all replaced after %s, excess p50 %s max %s", ms(s.res.ReplaceAll), ms(st.P50), ms(st.Max))
	for _, k := range ks {
		if ok, _ := k.r.wait(scaleStopTimeout); !ok {
			return fmt.Errorf("%s/%s did not end within %s of its kill", k.e.name, k.r.id, scaleStopTimeout)
		}
	}
	return nil
}

func (s *scaleRun) stepDownLead() time.Duration {
	cfg := sidecar.DefaultConfig()
	cfg.TTL, cfg.DemoteTimeout = s.o.ttl, s.o.demoteTimeout
	return cfg.StepDownLead()
}

// checkSafety checks every election's timeline: no overlapping tenures,
// fencing tokens increasing.
func (s *scaleRun) checkSafety() {
	for _, e := range s.elections {
		evs, err := e.events()
		if err != nil {
			s.res.fail("%s timeline: %v", e.name, err)
			continue
		}
		sf := checkTimeline(evs)
		s.res.Tenures += sf.Tenures
		for _, o := range append(sf.Overlaps, sf.Tokens...) {
			s.res.Violations++
			s.res.fail("safety %s: %s", e.name, o)
		}
	}
}

// stopAll ends every sidecar still running (Abort: no clean hand-off is
// needed at the end) and closes the proxies.
func (s *scaleRun) stopAll() {
	var wg sync.WaitGroup
	for _, e := range s.elections {
		for _, r := range e.reps {
			if r.cancel == nil {
				continue
			}
			r.sc.Abort()
			r.cancel()
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.wait(scaleStopTimeout)
			}()
		}
	}
	wg.Wait()
	for _, e := range s.elections {
		for _, r := range e.reps {
			if r.proxy != nil {
				r.proxy.Close()
			}
		}
	}
}

// handoffSample marks k elections for the hand-offs, evenly spread over
// those the mass failover leaves alone.
func handoffSample(n, k int) []bool {
	var pool []int
	for i := range n {
		if i%killEvery != killEvery-1 {
			pool = append(pool, i)
		}
	}
	k = min(k, len(pool))
	out := make([]bool, n)
	for j := range k {
		out[pool[j*len(pool)/k]] = true
	}
	return out
}

func sum(xs []float64) float64 {
	var t float64
	for _, x := range xs {
		t += x
	}
	return t
}
