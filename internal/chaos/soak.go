package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leaderd/leaderd/internal/etcdtest"
	"github.com/leaderd/leaderd/role"
	"github.com/leaderd/leaderd/sidecar"
)

// SoakOptions configure a soak: the campaign's world (Options; Faults and
// Overlap are not used) under steady churn for Duration, with every
// leaderd's footprint and etcd's lease count sampled throughout.
type SoakOptions struct {
	Options
	Duration time.Duration
	// A switchover to a random standby every SwitchoverMin..SwitchoverMax.
	SwitchoverMin, SwitchoverMax time.Duration
	// A SIGKILL of a random replica other than r1 every KillEvery,
	// restarted after one TTL. r1 is never killed: its one process is the
	// leak evidence.
	KillEvery time.Duration
	// A health flap every FlapEvery (±25%): a replica unhealthy for
	// FlapMin..FlapMax.
	FlapEvery        time.Duration
	FlapMin, FlapMax time.Duration
	// SampleEvery is the resource sampling period.
	SampleEvery time.Duration
	// WarmUp is left out of the growth comparisons; 0 means
	// min(5m, Duration/6).
	WarmUp time.Duration
}

// DefaultSoak is the soak: a switchover every 3-6 s, a SIGKILL
// every 30 s, a health flap every ~20 s, sampling every 10 s.
func DefaultSoak(o Options, d time.Duration) SoakOptions {
	return SoakOptions{
		Options:       o,
		Duration:      d,
		SwitchoverMin: 3 * time.Second, SwitchoverMax: 6 * time.Second,
		KillEvery: 30 * time.Second,
		FlapEvery: 20 * time.Second, FlapMin: time.Second, FlapMax: 3 * time.Second,
		SampleEvery: 10 * time.Second,
	}
}

// Validate checks the options a soak cannot run with.
func (so SoakOptions) Validate() error {
	o := so.Options
	o.Faults, o.Overlap = 1, 0 // not used by a soak
	if err := o.Validate(); err != nil {
		return err
	}
	switch {
	case so.Duration <= 0:
		return errors.New("-soak must be positive")
	case so.SwitchoverMin <= 0 || so.SwitchoverMax < so.SwitchoverMin:
		return errors.New("switchover interval: need 0 < min <= max")
	case so.KillEvery <= 0 || so.FlapEvery <= 0 || so.SampleEvery <= 0:
		return errors.New("kill, flap and sample intervals must be positive")
	case so.FlapMin <= 0 || so.FlapMax < so.FlapMin:
		return errors.New("flap length: need 0 < min <= max")
	}
	return nil
}

// warmUp is WarmUp or its default.
func (so SoakOptions) warmUp() time.Duration {
	if so.WarmUp > 0 {
		return so.WarmUp
	}
	return min(5*time.Minute, so.Duration/6)
}

// The churn events' Fault kinds.
const (
	SoakSwitchover = "switchover"
	SoakKill       = "sigkill"
	SoakFlap       = "health-flap"
)

// soakKill is the campaign's SIGKILL, restarted at its heal; soakFlap is
// one unhealthy stretch, long enough (health-failures 2 at 250ms) for an
// unhealthy primary to step down. The switchover is soak.switchoverKind.
var (
	soakKill = kindByName(SoakKill)
	soakFlap = &kind{name: SoakFlap, scope: onReplica,
		inject: func(c *campaign, a *active) error { return c.w.setUnhealthy(a.node, true) },
		heal:   func(c *campaign, a *active) error { return c.w.setUnhealthy(a.node, false) }}
)

// ResourceSample is one leaderd process's footprint at one time.
type ResourceSample struct {
	At         time.Time
	Replica    string
	Pid        int
	RSS        int64      // bytes, VmRSS
	Goroutines int        // go_goroutines from /metrics; -1 if it did not answer
	FDs        int        // entries in /proc/PID/fd
	Phase      role.Phase // its /status phase after the reads ("" if no answer)
}

// LeaseSample is etcd's lease count at one time.
type LeaseSample struct {
	At      time.Time // when the request was sent
	Leases  int
	Running int // leaderd processes running then
	// Allowed is Replicas plus the SIGKILLs within TTL+1s before At: a
	// killed process's lease lives on until its TTL runs out.
	Allowed int
}

// Process is one leaderd process the soak started (or found at start).
type Process struct {
	Replica    string
	Pid        int
	Start, End time.Time // End: killed, or the end of the churn
}

// SoakCheck is one target with its measured value.
type SoakCheck struct {
	Name     string
	Pass     bool
	Measured string // the figures
	Target   string // what passing means, and why
}

// SoakResult is a soak's record and its judgement.
type SoakResult struct {
	Options    SoakOptions
	Started    time.Time // churn start (after the first steady state)
	ChurnEnd   time.Time
	Resources  []ResourceSample
	Leases     []LeaseSample
	SampleErrs int // lease reads that failed
	Processes  []Process
	// EndLeases is etcd's lease count once a TTL passed after the churn,
	// with EndRunning leaderd processes running.
	EndLeases, EndRunning int
	Record                *Record
	Verdict               Verdict
	Checks                []SoakCheck
}

// OK is true when every target passed.
func (r *SoakResult) OK() bool {
	for _, c := range r.Checks {
		if !c.Pass {
			return false
		}
	}
	return len(r.Checks) > 0
}

// Count is how many churn events of kind ran.
func (r *SoakResult) Count(kind string) int {
	n := 0
	if r.Record == nil {
		return 0
	}
	for _, f := range r.Record.Faults {
		if f.Kind == kind {
			n++
		}
	}
	return n
}

// Soak runs the world under churn for so.Duration, sampling as it goes,
// then judges it. An error without a result means the soak could not run.
func Soak(ctx context.Context, so SoakOptions) (*SoakResult, error) {
	if err := so.Validate(); err != nil {
		return nil, err
	}
	c, rec, err := setup(ctx, so.Options)
	if err != nil {
		return nil, err
	}
	defer func() {
		c.teardown()
		c.obs.client.CloseIdleConnections()
	}()
	cli, err := clientv3.New(etcdtest.ClientConfig(c.w.etcd.Endpoints()...))
	if err != nil {
		return nil, err
	}
	defer cli.Close()

	s := &soak{c: c, so: so, cli: cli, res: &SoakResult{Options: so, Started: time.Now()},
		http: &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
	for _, n := range c.w.nodes {
		if rep := n.replica(); rep != nil {
			s.res.Processes = append(s.res.Processes, Process{Replica: n.id, Pid: rep.Pid(), Start: s.res.Started})
		}
	}
	c.log.Info("soak started", "seed", so.Seed, "duration", so.Duration, "replicas", so.Replicas, "warm-up", so.warmUp())

	sampleCtx, stopSampling := context.WithCancel(ctx)
	var sampling sync.WaitGroup
	sampling.Add(1)
	go func() { defer sampling.Done(); s.sampleLoop(sampleCtx) }()
	s.churn()
	stopSampling()
	sampling.Wait()
	s.res.ChurnEnd = time.Now()
	for i := range s.res.Processes {
		if s.res.Processes[i].End.IsZero() {
			s.res.Processes[i].End = s.res.ChurnEnd
		}
	}

	s.endLeases()
	c.conclude(rec)
	s.res.Record = rec
	s.res.Verdict = Check(rec)
	s.res.Checks = judgeSoak(s.res)
	return s.res, ctx.Err()
}

// soak is one soak's mutable state.
type soak struct {
	c    *campaign
	so   SoakOptions
	cli  *clientv3.Client
	http *http.Client

	mu    sync.Mutex // guards res.Resources, res.Leases, res.SampleErrs, kills
	res   *SoakResult
	kills []time.Time
}

// churn runs the events until the duration is up, one at a time: each
// waits for a single primary again (settle) before the next, so every
// recovery is measured on its own. An event that falls due while another
// runs goes next.
func (s *soak) churn() {
	c, so := s.c, s.so
	end := s.res.Started.Add(so.Duration)
	r := c.rand
	between := func(lo, hi time.Duration) time.Duration {
		return lo + time.Duration(r.Float64()*float64(hi-lo))
	}
	flapGap := func() time.Duration { return between(so.FlapEvery*3/4, so.FlapEvery*5/4) }
	now := time.Now()
	nextSwitch, nextKill, nextFlap := now.Add(between(so.SwitchoverMin, so.SwitchoverMax)), now.Add(so.KillEvery), now.Add(flapGap())
	for c.ctx.Err() == nil {
		due := earlier(nextSwitch, earlier(nextKill, nextFlap))
		if !due.Before(end) {
			c.sleep(time.Until(end))
			return
		}
		c.sleep(time.Until(due))
		if c.ctx.Err() != nil {
			return
		}
		switch {
		case due.Equal(nextKill):
			s.kill()
			nextKill = nextKill.Add(so.KillEvery)
		case due.Equal(nextFlap):
			s.flap(between(so.FlapMin, so.FlapMax))
			nextFlap = time.Now().Add(flapGap())
		default:
			s.switchover()
			nextSwitch = time.Now().Add(between(so.SwitchoverMin, so.SwitchoverMax))
		}
	}
}

// switchover hands the primary to a random campaigning standby.
func (s *soak) switchover() {
	c := s.c
	primary, _ := c.obs.primary()
	a := c.inject(s.switchoverKind(), 0, primary, nil, nil)
	a.fault.Healed = a.fault.Injected // instant: the request is the whole fault
	c.settle([]*active{a})
}

// switchoverKind is the campaign's switchover, but to a standby that is
// campaigning: right after a flap or a restart a standby is not yet, and
// leaderd rightly refuses a switchover to it. A switchover that moves
// nothing (none campaigning, or refused) must not have settle wait for
// the primary to move.
func (s *soak) switchoverKind() *kind {
	return &kind{name: SoakSwitchover, scope: onElection, moves: true,
		inject: func(c *campaign, a *active) error {
			to := s.campaigningStandby(a.primary)
			if to == nil {
				a.primary = ""
				a.fault.Note = noStandby
				return nil
			}
			a.fault.Target = to.id
			err := c.operator("switchover", "--to", to.id, "--wait", "0")
			if err != nil {
				a.primary = ""
			}
			return err
		}}
}

const noStandby = "no standby campaigning"

// campaigningStandby is a random running replica other than primary whose
// /status says campaigning, or nil.
func (s *soak) campaigningStandby(primary string) *node {
	var standbys []*node
	for _, n := range s.c.w.nodes {
		rep := n.replica()
		if n.id == primary || rep == nil || n.frozen() {
			continue
		}
		if phase, err := s.phase(rep.APIAddr); err == nil && phase == role.PhaseCampaigning {
			standbys = append(standbys, n)
		}
	}
	if len(standbys) == 0 {
		return nil
	}
	return standbys[s.c.rand.IntN(len(standbys))]
}

// phase is a replica's /status phase, asked without keep-alive so the
// soak holds no connection (a descriptor, a goroutine) open in leaderd.
func (s *soak) phase(apiAddr string) (role.Phase, error) {
	req, err := http.NewRequestWithContext(s.c.ctx, http.MethodGet, "http://"+apiAddr+"/status", nil)
	if err != nil {
		return "", err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var st sidecar.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return "", err
	}
	return st.Phase, nil
}

// kill SIGKILLs a random running replica other than r1, restarts it after
// one TTL and waits for a single primary.
func (s *soak) kill() {
	c := s.c
	primary, _ := c.obs.primary()
	var candidates []*node
	for _, n := range c.w.nodes[1:] {
		if n.replica() != nil {
			candidates = append(candidates, n)
		}
	}
	var target *node
	if len(candidates) > 0 {
		target = candidates[c.rand.IntN(len(candidates))]
	}
	var oldPid int
	if target != nil {
		if rep := target.replica(); rep != nil {
			oldPid = rep.Pid()
		}
	}
	a := c.inject(soakKill, c.o.TTL, primary, target, nil)
	if target == nil {
		return
	}
	s.mu.Lock()
	s.kills = append(s.kills, a.fault.Injected)
	s.mu.Unlock()
	s.ended(oldPid, time.Now())
	c.sleep(a.hold)
	c.settle([]*active{a})
	if rep := target.replica(); rep != nil {
		s.mu.Lock()
		s.res.Processes = append(s.res.Processes, Process{Replica: target.id, Pid: rep.Pid(), Start: a.fault.Healed})
		s.mu.Unlock()
	}
}

// ended marks the process pid as ended at t.
func (s *soak) ended(pid int, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.res.Processes {
		if p := &s.res.Processes[i]; p.Pid == pid && p.End.IsZero() {
			p.End = t
		}
	}
}

// flap makes a replica (the primary half of the time) unhealthy for hold.
func (s *soak) flap(hold time.Duration) {
	c := s.c
	primary, _ := c.obs.primary()
	a := c.inject(soakFlap, hold, primary, c.pickReplica(primary, nil), nil)
	a.fault.Note = joinNote(a.fault.Note, "unhealthy for "+hold.Round(time.Millisecond).String())
	if a.node == nil {
		return
	}
	c.sleep(hold)
	c.settle([]*active{a})
}

// sampleLoop samples at once, then every SampleEvery until ctx ends.
func (s *soak) sampleLoop(ctx context.Context) {
	tick := time.NewTicker(s.so.SampleEvery)
	defer tick.Stop()
	for {
		s.sample(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// sample reads every running leaderd's footprint and etcd's lease count.
func (s *soak) sample(ctx context.Context) {
	running := 0
	for _, n := range s.c.w.nodes {
		rep := n.replica()
		if rep == nil {
			continue
		}
		running++
		rs, err := s.footprint(ctx, n.id, rep.Pid(), rep.APIAddr)
		if ctx.Err() != nil {
			return // the end of the soak cut this sample short
		}
		if err != nil {
			// The process ended under the sample (a kill): not a footprint.
			s.c.log.Debug("sampling", "replica", n.id, "err", err)
			continue
		}
		s.mu.Lock()
		s.res.Resources = append(s.res.Resources, rs)
		s.mu.Unlock()
	}
	at := time.Now()
	count, err := leaseCount(ctx, s.cli)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			s.res.SampleErrs++
			s.c.log.Warn("reading leases", "err", err)
		}
		return
	}
	s.res.Leases = append(s.res.Leases, LeaseSample{At: at, Leases: count, Running: running,
		Allowed: s.so.Replicas + killsWithin(s.kills, at, s.so.TTL+time.Second)})
}

// killsWithin counts the kills in (at-d, at].
func killsWithin(kills []time.Time, at time.Time, d time.Duration) int {
	n := 0
	for _, k := range kills {
		if !k.After(at) && k.After(at.Add(-d)) {
			n++
		}
	}
	return n
}

func leaseCount(ctx context.Context, cli *clientv3.Client) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := cli.Leases(ctx)
	if err != nil {
		return 0, err
	}
	return len(resp.Leases), nil
}

// footprint reads one process's RSS, descriptors and goroutines. The
// descriptors are counted before /metrics is asked, so the scrape's own
// connection is not among them (it is closed after each answer).
func (s *soak) footprint(ctx context.Context, id string, pid int, apiAddr string) (ResourceSample, error) {
	rs := ResourceSample{At: time.Now(), Replica: id, Pid: pid, Goroutines: -1, FDs: -1}
	for i := range burstReads {
		n, err := countFDs(pid)
		if err != nil {
			return rs, err
		}
		if rs.FDs < 0 || n < rs.FDs {
			rs.FDs = n
		}
		if i < burstReads-1 {
			time.Sleep(burstGap)
		}
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return rs, err
	}
	if rs.RSS, err = parseVmRSS(status); err != nil {
		return rs, err
	}
	for i := range burstReads {
		g, err := s.goroutines(ctx, apiAddr)
		if err != nil {
			s.c.log.Debug("reading go_goroutines", "replica", id, "err", err)
			break
		}
		if rs.Goroutines < 0 || g < rs.Goroutines {
			rs.Goroutines = g
		}
		if i < burstReads-1 {
			time.Sleep(burstGap)
		}
	}
	rs.Phase, _ = s.phase(apiAddr)
	return rs, nil
}

// A sample's descriptors and goroutines are the least of a burst of
// reads: every 250 ms a health check (and at a role change a hook) is
// forked, holding up to 8 descriptors (pipes, /dev/null) and a few
// goroutines while it runs, and on a loaded machine a single read catches
// one often. A leak stays through the burst; a child in flight does not.
const (
	burstReads = 5
	burstGap   = 30 * time.Millisecond
)

func (s *soak) goroutines(ctx context.Context, apiAddr string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+apiAddr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("/metrics: %s", resp.Status)
	}
	return parseGoroutines(resp.Body)
}

// countFDs counts the entries of /proc/PID/fd.
func countFDs(pid int) (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return 0, err
	}
	// A zombie (killed, not yet reaped) has no descriptors: not a sample.
	if len(names) == 0 {
		return 0, syscall.ESRCH
	}
	return len(names), nil
}

// parseVmRSS reads "VmRSS: N kB" from /proc/PID/status, in bytes.
func parseVmRSS(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("VmRSS: unexpected %q", rest)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmRSS: %w", err)
		}
		return kb * 1024, nil
	}
	return 0, errors.New("no VmRSS line (a kernel thread, or a zombie)")
}

// parseGoroutines reads the go_goroutines gauge from a Prometheus text
// exposition.
func parseGoroutines(r io.Reader) (int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "go_goroutines")
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue // a comment, or go_goroutines_something
		}
		if rest[0] == '{' {
			i := strings.IndexByte(rest, '}')
			if i < 0 {
				return 0, fmt.Errorf("go_goroutines: unterminated labels")
			}
			rest = rest[i+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0, errors.New("go_goroutines: no value")
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("go_goroutines: %w", err)
		}
		return int(v), nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no go_goroutines in /metrics")
}

// endLeases waits, bounded by TTL + 3s, for etcd's lease count to equal
// the running processes (a lease of the last kill may still be running
// out), and records both.
func (s *soak) endLeases() {
	deadline := time.Now().Add(s.so.TTL + 3*time.Second)
	for {
		running := 0
		for _, n := range s.c.w.nodes {
			if n.replica() != nil {
				running++
			}
		}
		count, err := leaseCount(s.c.ctx, s.cli)
		if err != nil {
			count = -1
		}
		s.res.EndLeases, s.res.EndRunning = count, running
		if count == running || time.Now().After(deadline) || s.c.ctx.Err() != nil {
			return
		}
		s.c.sleep(250 * time.Millisecond)
	}
}
