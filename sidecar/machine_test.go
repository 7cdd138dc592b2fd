package sidecar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/hooks"
	"github.com/leaderd/leaderd/role"
)

// The state machine against hand-written fakes: the order of hooks and
// etcd calls, without etcd.

// calls is an ordered log of what the state machine did, with a signal
// for waiters.
type calls struct {
	mu     sync.Mutex
	log    []string
	change chan struct{}
}

func newCalls() *calls { return &calls{change: make(chan struct{})} }

func (c *calls) add(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.log = append(c.log, fmt.Sprintf(format, args...))
	close(c.change)
	c.change = make(chan struct{})
}

func (c *calls) snapshot() ([]string, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.log), c.change
}

// waitFor waits until the log holds an entry with the prefix, counting n.
func (c *calls) waitFor(t *testing.T, prefix string, n int) []string {
	t.Helper()
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	for {
		log, change := c.snapshot()
		seen := 0
		for _, l := range log {
			if strings.HasPrefix(l, prefix) {
				seen++
			}
		}
		if seen >= n {
			return log
		}
		select {
		case <-change:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %d x %q; log:\n  %s", n, prefix, strings.Join(log, "\n  "))
		}
	}
}

// fakeHook records runs; its results come from a script, then success.
type fakeHook struct {
	calls   *calls
	mu      sync.Mutex
	results []error // per run; nil = success
	block   chan struct{}
}

func (h *fakeHook) Run(ctx context.Context, env hooks.Env) hooks.Result {
	h.calls.add("%s %s token=%d leader=%s role=%s prev=%s", env.Event, env.Reason, env.FencingToken, env.Leader, env.Role, env.PreviousRole)
	h.mu.Lock()
	var err error
	if len(h.results) > 0 {
		err, h.results = h.results[0], h.results[1:]
	}
	block := h.block
	h.mu.Unlock()
	res := hooks.Result{Hook: string(env.Event), Reason: env.Reason, Err: err}
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			res.Err, res.Canceled = ctx.Err(), true
			h.calls.add("%s killed", env.Event)
		}
	}
	return res
}

// fakeElector hands out candidacies the test controls.
type fakeElector struct {
	calls *calls
	mu    sync.Mutex
	cands chan *fakeCandidacy
	fail  int // fail this many Grants first
	// control, if set, delivers the control reads; nil: one empty read at
	// start.
	control chan election.Control
	// leaderReads, if set, delivers leader reads: an error, or nil for a
	// good read with no candidates.
	leaderReads chan error
	// failEnds fails this many end-record writes first (etcd unreachable).
	failEnds int
	// peers, if set, is what ReadPeers reads; nil: no peers.
	peers func() election.Peers
	// requests are the requests PutRequest stored.
	requests []election.Request
	// leaders, if set, delivers good leader reads with these candidates.
	leaders chan []election.Candidate
	// renewed, if set, answers LeaseRenewed; nil: every lease is renewed.
	renewed func(lease int64) (bool, error)
}

func (e *fakeElector) Grant(ctx context.Context) (candidacy, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fail > 0 {
		e.fail--
		e.calls.add("grant failed")
		return nil, errors.New("etcd unreachable")
	}
	c := &fakeCandidacy{calls: e.calls, lost: make(chan struct{}), win: make(chan *fakeTenure, 1), deadline: time.Now().Add(time.Hour)}
	e.calls.add("grant")
	e.cands <- c
	return c, nil
}

func (e *fakeElector) failEnd() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.failEnds > 0 {
		e.failEnds--
		return true
	}
	return false
}

func (e *fakeElector) WatchLeader(ctx context.Context, fn func([]election.Candidate, error)) {
	for {
		select {
		case err := <-e.leaderReads: // nil when the test gives none
			fn(nil, err)
		case cands := <-e.leaders:
			fn(cands, nil)
		case <-ctx.Done():
			return
		}
	}
}

func (e *fakeElector) WatchControl(ctx context.Context, fn func(election.Control, error)) {
	if e.control != nil {
		// The test delivers the control reads itself.
		for {
			select {
			case c := <-e.control:
				fn(c, nil)
			case <-ctx.Done():
				return
			}
		}
	}
	fn(election.Control{}, nil)
	<-ctx.Done()
}

func (e *fakeElector) ClearRequest(ctx context.Context, r *election.Request) error {
	e.calls.add("clear request")
	return nil
}

// ReadPeers reads no peers: a fake election has no priorities, so a
// winner promotes.
func (e *fakeElector) ReadPeers(ctx context.Context) (election.Peers, error) {
	if e.peers != nil {
		return e.peers(), nil
	}
	return election.Peers{}, nil
}

func (e *fakeElector) LeaseRenewed(ctx context.Context, lease int64) (bool, error) {
	if e.renewed != nil {
		return e.renewed(lease)
	}
	return true, nil
}

func (e *fakeElector) PutRequest(ctx context.Context, r election.Request) error {
	e.mu.Lock()
	e.requests = append(e.requests, r)
	e.mu.Unlock()
	e.calls.add("put request to=%s", r.To)
	return nil
}

func (e *fakeElector) PublishMember(ctx context.Context, lease int64, m election.Member) error {
	return nil
}

func (e *fakeElector) WatchMember(ctx context.Context, id string, fn func(*election.Member, error)) {
	<-ctx.Done()
}

func (e *fakeElector) RecordTenure(ctx context.Context, rec election.TenureRecord) error {
	if rec.Open() {
		e.calls.add("record start token=%d", rec.FencingToken)
	} else if e.failEnd() {
		e.calls.add("record end failed token=%d", rec.FencingToken)
		return errors.New("etcd unreachable")
	} else {
		e.calls.add("record end token=%d reason=%s", rec.FencingToken, rec.EndReason)
	}
	return nil
}

type fakeCandidacy struct {
	calls    *calls
	lost     chan struct{}
	lostOnce sync.Once
	closed   atomic.Bool // Close was called: the lease's error is ErrLeaseClosed, as a real lease's
	win      chan *fakeTenure
	deadline time.Time
}

func (c *fakeCandidacy) LeaseID() int64          { return 0xabc }
func (c *fakeCandidacy) TTL() time.Duration      { return 15 * time.Second }
func (c *fakeCandidacy) SafeDeadline() time.Time { return c.deadline }
func (c *fakeCandidacy) Lost() <-chan struct{}   { return c.lost }
func (c *fakeCandidacy) loseLease()              { c.lostOnce.Do(func() { close(c.lost) }) }
func (c *fakeCandidacy) Err() error {
	select {
	case <-c.lost:
		return election.ErrLeaseNotFound
	default:
	}
	if c.closed.Load() {
		return election.ErrLeaseClosed
	}
	return nil
}

func (c *fakeCandidacy) Campaign(ctx context.Context, value string) (tenure, error) {
	c.calls.add("campaign")
	select {
	case t := <-c.win:
		return t, nil
	case <-c.lost:
		return nil, election.ErrLeaseNotFound
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *fakeCandidacy) Revoke(ctx context.Context) error { return nil }

func (c *fakeCandidacy) Abandon() {
	c.closed.Store(true)
	c.calls.add("abandon")
}

func (c *fakeCandidacy) Close(ctx context.Context) error {
	c.closed.Store(true)
	c.calls.add("close")
	return nil
}

type fakeTenure struct {
	calls *calls
	token int64
	cands []election.Candidate
	once  sync.Once
	ctx   context.Context
	lost  context.CancelCauseFunc
}

func (t *fakeTenure) init() {
	t.once.Do(func() { t.ctx, t.lost = context.WithCancelCause(context.Background()) })
}

func (t *fakeTenure) FencingToken() int64 { return t.token }

// Candidates: what the win's verification read; nil unless the test sets
// it, so that the yield reads the peers.
func (t *fakeTenure) Candidates() []election.Candidate { return t.cands }
func (t *fakeTenure) Context() context.Context {
	t.init()
	return t.ctx
}

// lose ends the tenure with err as etcd would; the first call wins.
func (t *fakeTenure) lose(err error) {
	t.init()
	t.lost(err)
}

func (t *fakeTenure) Resign(ctx context.Context) error {
	t.calls.add("resign")
	return nil
}

// machine is a sidecar wired to fakes and running.
type machine struct {
	sc      *Sidecar
	calls   *calls
	el      *fakeElector
	promote *fakeHook
	demote  *fakeHook
	health  *fakeHealth // nil: no health check
	// configure, if set, changes the config before the sidecar is made.
	configure func(*Config)
	// logs, if set, records the sidecar's log.
	logs   *logRecorder
	cancel context.CancelFunc
	done   chan error
}

func startMachine(t *testing.T, setup func(m *machine)) *machine {
	t.Helper()
	cl := newCalls()
	m := &machine{
		calls:   cl,
		el:      &fakeElector{calls: cl, cands: make(chan *fakeCandidacy, 16)},
		promote: &fakeHook{calls: cl},
		demote:  &fakeHook{calls: cl},
		done:    make(chan error, 1),
	}
	if setup != nil {
		setup(m)
	}
	cfg := DefaultConfig()
	cfg.Election, cfg.ID = "e", "me"
	cfg.Listen = "off" // tests call Handler directly; port 8008 may be taken
	if m.configure != nil {
		m.configure(&cfg)
	}
	logger := slog.New(slog.DiscardHandler)
	if m.logs != nil {
		logger = slog.New(m.logs)
	}
	m.sc = newSidecar(cfg, logger, m.el, m.promote, m.demote)
	if m.health != nil {
		m.sc.setHealth(m.health)
	}
	m.sc.newBackOff = func() backoff.BackOff { return backoff.NewConstantBackOff(time.Millisecond) }
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() { m.done <- m.sc.Run(ctx) }()
	t.Cleanup(func() {
		m.sc.Abort()
		cancel()
		select {
		case <-m.done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return")
		}
	})
	return m
}

// candidacy returns the next granted candidacy.
func (m *machine) candidacy(t *testing.T) *fakeCandidacy {
	t.Helper()
	select {
	case c := <-m.el.cands:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no lease was granted")
		return nil
	}
}

// win makes the candidacy win with token and waits until it is primary.
func (m *machine) win(t *testing.T, c *fakeCandidacy, token int64) *fakeTenure {
	t.Helper()
	ten := &fakeTenure{calls: m.calls, token: token}
	c.win <- ten
	m.calls.waitFor(t, "promote elected", 1)
	return ten
}

func (m *machine) stop(t *testing.T) error {
	t.Helper()
	m.cancel()
	select {
	case err := <-m.done:
		m.done <- err // for Cleanup
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
		return nil
	}
}

// after asserts that want appear in the log in this order (not
// necessarily adjacent), each matched by prefix.
func after(t *testing.T, log []string, want ...string) {
	t.Helper()
	i := 0
	for _, l := range log {
		if i < len(want) && strings.HasPrefix(l, want[i]) {
			i++
		}
	}
	if i < len(want) {
		t.Fatalf("want in order %q; log:\n  %s", want, strings.Join(log, "\n  "))
	}
}

func TestMachineStartupDemoteBeforeCampaign(t *testing.T) {
	m := startMachine(t, nil)
	m.candidacy(t)
	log := m.calls.waitFor(t, "campaign", 1)
	if !strings.HasPrefix(log[0], "demote startup token=0") || !strings.Contains(log[0], "prev=") {
		t.Fatalf("first call %q, want the start-up demote", log[0])
	}
	after(t, log, "demote startup", "grant", "campaign")
}

func TestMachinePromoteEnv(t *testing.T) {
	m := startMachine(t, nil)
	m.win(t, m.candidacy(t), 42)
	log, _ := m.calls.snapshot()
	after(t, log, "promote elected token=42 leader=me role=primary prev=standby")
	waitUntil(t, "phase primary", func() bool { return m.sc.Status().Phase == role.PhasePrimary })
	if code := httpCode(m.sc, "/primary"); code != http.StatusOK {
		t.Fatalf("/primary = %d", code)
	}
	if st := m.sc.Status(); st.FencingToken != 42 || st.Lease == nil || st.Lease.ID != "abc" || st.LastTransition.Reason != role.ReasonElected {
		t.Fatalf("status %+v", st)
	}
}

func TestMachineGracefulStopDemotesThenResignsThenRevokes(t *testing.T) {
	m := startMachine(t, nil)
	m.win(t, m.candidacy(t), 7)
	if err := m.stop(t); err != nil {
		t.Fatalf("Run = %v", err)
	}
	log, _ := m.calls.snapshot()
	after(t, log, "promote elected", "demote shutdown token=7", "resign", "close")
}

func TestMachineStandbyStopRevokesWithoutHooks(t *testing.T) {
	m := startMachine(t, nil)
	m.candidacy(t)
	m.calls.waitFor(t, "campaign", 1)
	if err := m.stop(t); err != nil {
		t.Fatalf("Run = %v", err)
	}
	log, _ := m.calls.snapshot()
	after(t, log, "campaign", "close")
	for _, l := range log[1:] {
		if strings.HasPrefix(l, "demote") || strings.HasPrefix(l, "promote") {
			t.Fatalf("a standby ran %q on stop", l)
		}
	}
}

func TestMachineTenureLossReasons(t *testing.T) {
	for _, tc := range []struct {
		err    error
		reason role.Reason
	}{
		{election.ErrKeyDeleted, role.ReasonKeyDeleted},
		{election.ErrSafeDeadline, role.ReasonEtcdUnreachable},
		{election.ErrLeaseNotFound, role.ReasonLeaseLost},
		{election.ErrLeaseExpired, role.ReasonLeaseLost},
	} {
		t.Run(string(tc.reason), func(t *testing.T) {
			m := startMachine(t, nil)
			c := m.candidacy(t)
			ten := m.win(t, c, 5)
			waitUntil(t, "phase primary", func() bool { return m.sc.Status().Phase == role.PhasePrimary })
			ten.lose(tc.err)
			m.candidacy(t) // campaigns again on a new lease
			log, _ := m.calls.snapshot()
			after(t, log, "promote elected", "demote "+string(tc.reason)+" token=5", "close", "grant")
			if slices.Contains(log, "resign") {
				t.Fatalf("resigned a lost tenure:\n  %s", strings.Join(log, "\n  "))
			}
		})
	}
}

func TestMachineLossKillsRunningPromote(t *testing.T) {
	m := startMachine(t, func(m *machine) { m.promote.block = make(chan struct{}) })
	ten := m.win(t, m.candidacy(t), 9)
	ten.lose(election.ErrSafeDeadline)
	log := m.calls.waitFor(t, "demote etcd-unreachable", 1)
	after(t, log, "promote elected", "promote killed", "demote etcd-unreachable token=9")
}

func TestMachinePromoteFailureDemotesResignsAndCampaignsAgain(t *testing.T) {
	m := startMachine(t, func(m *machine) { m.promote.results = []error{errors.New("exit status 1")} })
	m.win(t, m.candidacy(t), 3)
	m.candidacy(t)
	log := m.calls.waitFor(t, "campaign", 2)
	after(t, log, "promote elected", "demote promote-failed token=3 leader=", "resign", "close", "grant", "campaign")
}

func TestMachineFailedDemoteIsRetriedBeforeResign(t *testing.T) {
	m := startMachine(t, func(m *machine) {
		// start-up succeeds; the shutdown demote fails twice.
		m.demote.results = []error{nil, errors.New("exit status 1"), errors.New("timed out")}
	})
	m.win(t, m.candidacy(t), 4)
	if err := m.stop(t); err != nil {
		t.Fatalf("Run = %v", err)
	}
	log, _ := m.calls.snapshot()
	after(t, log, "demote shutdown", "demote shutdown", "demote shutdown", "resign", "close")
}

func TestMachineFailedStartupDemoteBlocksCampaign(t *testing.T) {
	m := startMachine(t, func(m *machine) {
		m.demote.results = []error{errors.New("exit status 1"), errors.New("exit status 1")}
	})
	log := m.calls.waitFor(t, "grant", 1)
	after(t, log, "demote startup", "demote startup", "demote startup", "grant")
	if st := m.sc.Status(); st.Degraded {
		t.Fatalf("still degraded after a good demote: %+v", st)
	}
}

func TestMachineGrantRetriedWithBackoff(t *testing.T) {
	m := startMachine(t, func(m *machine) { m.el.fail = 3 })
	m.candidacy(t)
	log, _ := m.calls.snapshot()
	after(t, log, "grant failed", "grant failed", "grant failed", "grant")
	waitUntil(t, "etcd reachable again", func() bool { return m.sc.Status().Etcd.Reachable })
}

func TestMachinePrimaryEndpointRespectsSafeDeadline(t *testing.T) {
	m := startMachine(t, nil)
	c := m.candidacy(t)
	m.win(t, c, 8)
	waitUntil(t, "phase primary", func() bool { return m.sc.Status().Phase == role.PhasePrimary })
	st := m.sc.state
	st.update(func(s *state) { s.candidacy = &fakeCandidacy{deadline: time.Now().Add(-time.Millisecond)} })
	if code := httpCode(m.sc, "/primary"); code != http.StatusServiceUnavailable {
		t.Fatalf("/primary = %d past the safe deadline", code)
	}
	st.update(func(s *state) { s.candidacy = c })
}
