package sidecar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/hooks"
	"github.com/leaderd/leaderd/role"
)

// Tests of the hardening issue's state-machine items, against fakes.

// logRecorder is a slog.Handler that keeps every record, so tests can wait
// for a message and check its level.
type logRecorder struct {
	store *logStore
	attrs []slog.Attr
}

type logStore struct {
	mu      sync.Mutex
	records []logRecord
	change  chan struct{}
}

type logRecord struct {
	Level slog.Level
	Msg   string
	Attrs string
}

func newLogRecorder() *logRecorder {
	return &logRecorder{store: &logStore{change: make(chan struct{})}}
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	for _, a := range r.attrs {
		fmt.Fprintf(&b, "%s ", a)
	}
	rec.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, "%s ", a)
		return true
	})
	s := r.store
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = append(s.records, logRecord{Level: rec.Level, Msg: rec.Message, Attrs: b.String()})
	close(s.change)
	s.change = make(chan struct{})
	return nil
}

func (r *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecorder{store: r.store, attrs: append(slices.Clone(r.attrs), as...)}
}

func (r *logRecorder) WithGroup(string) slog.Handler { return r }

func (r *logRecorder) snapshot() ([]logRecord, <-chan struct{}) {
	r.store.mu.Lock()
	defer r.store.mu.Unlock()
	return slices.Clone(r.store.records), r.store.change
}

// waitFor waits for the first record with message msg, bounded.
func (r *logRecorder) waitFor(t *testing.T, msg string) logRecord {
	t.Helper()
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	for {
		recs, change := r.snapshot()
		for _, rec := range recs {
			if rec.Msg == msg {
				return rec
			}
		}
		select {
		case <-change:
		case <-deadline.C:
			t.Fatalf("timed out waiting for log %q; log:\n%s", msg, formatRecords(recs))
		}
	}
}

// count counts the records with message msg at level.
func (r *logRecorder) count(msg string, level slog.Level) int {
	recs, _ := r.snapshot()
	n := 0
	for _, rec := range recs {
		if rec.Msg == msg && rec.Level == level {
			n++
		}
	}
	return n
}

func formatRecords(recs []logRecord) string {
	var b strings.Builder
	for _, r := range recs {
		fmt.Fprintf(&b, "  %s %s %s\n", r.Level, r.Msg, r.Attrs)
	}
	return b.String()
}

func postResign(sc *Sidecar, token string) int {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/resign", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	sc.Handler().ServeHTTP(rec, req)
	return rec.Code
}

func hasPrefix(log []string, prefix string) bool {
	return slices.ContainsFunc(log, func(l string) bool { return strings.HasPrefix(l, prefix) })
}

// Item 9: a replica restarted during a pause must know of the pause before
// it campaigns.
func TestMachineWaitsForTheControlKeysBeforeCampaigning(t *testing.T) {
	m := startMachine(t, func(m *machine) { m.el.control = make(chan election.Control) })
	m.candidacy(t)
	waitUntil(t, "phase connecting", func() bool { return m.sc.Status().Phase == role.PhaseConnecting })
	if log, _ := m.calls.snapshot(); hasPrefix(log, "campaign") {
		t.Fatalf("campaigned before the control keys were read:\n  %s", strings.Join(log, "\n  "))
	}
	m.el.control <- election.Control{Paused: true}
	waitUntil(t, "phase paused", func() bool { return m.sc.Status().Phase == role.PhasePaused })
	if log, _ := m.calls.snapshot(); hasPrefix(log, "campaign") {
		t.Fatalf("campaigned while paused:\n  %s", strings.Join(log, "\n  "))
	}
	m.el.control <- election.Control{}
	m.calls.waitFor(t, "campaign", 1)
}

// Item 8: /primary stops answering 200 the moment the tenure is lost, and
// so does POST /resign, before the state machine has reacted.
func TestPrimaryEndpointEndsWithTheTenure(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Election, cfg.ID, cfg.APIToken = "e", "me", "tok"
	sc := newSidecar(cfg, slog.New(slog.DiscardHandler), nil, nil, nil)
	ten := &fakeTenure{token: 3}
	sc.state.update(func(st *state) {
		st.running, st.role, st.phase = true, role.Primary, role.PhasePrimary
		st.candidacy = &fakeCandidacy{deadline: time.Now().Add(time.Hour)}
		st.tenure = ten
	})
	if code := httpCode(sc, "/primary"); code != http.StatusOK {
		t.Fatalf("/primary = %d while serving", code)
	}
	ten.lose(election.ErrKeyDeleted)
	if code := httpCode(sc, "/primary"); code != http.StatusServiceUnavailable {
		t.Fatalf("/primary = %d after the tenure was lost", code)
	}
	if code := postResign(sc, "tok"); code != http.StatusConflict {
		t.Fatalf("POST /resign = %d after the tenure was lost, want 409", code)
	}
}

// Item 8: a resign request accepted for one tenure never ends the next.
func TestMachineStaleResignRequestIsDropped(t *testing.T) {
	m := startMachine(t, nil)
	ten := m.win(t, m.candidacy(t), 5)
	waitUntil(t, "phase primary", func() bool { return m.sc.Status().Phase == role.PhasePrimary })
	ten.lose(election.ErrLeaseNotFound)
	next := m.candidacy(t)
	// A POST /resign accepted for tenure 5 just as it ended.
	m.sc.state.update(func(st *state) { st.resignFor = 5 })
	wake(m.sc.resignRequests)
	ten6 := &fakeTenure{calls: m.calls, token: 6}
	next.win <- ten6
	m.calls.waitFor(t, "promote elected token=6", 1)
	waitUntil(t, "phase primary", func() bool { return m.sc.Status().Phase == role.PhasePrimary })
	ten6.lose(election.ErrKeyDeleted)
	log := m.calls.waitFor(t, "demote key-deleted token=6", 1)
	if hasPrefix(log, "demote resigned") {
		t.Fatalf("a stale resign request ended the next tenure:\n  %s", strings.Join(log, "\n  "))
	}
}

// Item 7: while the election is paused, no resign or switchover request
// changes the primary: POST /resign is refused with 409 and control
// requests are ignored until the pause ends.
func TestMachineResignIgnoredWhilePaused(t *testing.T) {
	m := startMachine(t, func(m *machine) {
		m.el.control = make(chan election.Control, 1)
		m.configure = func(c *Config) { c.APIToken = "tok" }
		m.logs = newLogRecorder()
	})
	m.el.control <- election.Control{}
	m.win(t, m.candidacy(t), 7)
	waitUntil(t, "phase primary", func() bool { return m.sc.Status().Phase == role.PhasePrimary })
	m.el.control <- election.Control{Paused: true}
	waitUntil(t, "paused", func() bool { return m.sc.Status().Paused })
	if code := postResign(m.sc, "tok"); code != http.StatusConflict {
		t.Fatalf("POST /resign while paused = %d, want 409", code)
	}
	now := time.Now()
	req := &election.Request{From: "me", FencingToken: 7, Requested: now, Expires: now.Add(time.Minute), Revision: 11}
	m.el.control <- election.Control{Paused: true, Resign: req}
	m.logs.waitFor(t, "request ignored: the election is paused")
	if st := m.sc.Status(); st.Phase != role.PhasePrimary {
		t.Fatalf("phase %s while paused with a resign request", st.Phase)
	}
	if log, _ := m.calls.snapshot(); hasPrefix(log, "demote resigned") {
		t.Fatalf("resigned while paused:\n  %s", strings.Join(log, "\n  "))
	}
	// Resumed, the request (still live) is honoured.
	m.el.control <- election.Control{Resign: req}
	m.calls.waitFor(t, "demote resigned token=7", 1)
}

// Item 19: after Abort ends the retries of a failing demote, the lease is
// left to expire explicitly: never revoked, the key never resigned.
func TestMachineAbortLeavesTheLeaseToExpire(t *testing.T) {
	m := startMachine(t, func(m *machine) {
		m.demote.results = []error{nil} // the start-up demote succeeds
		for range 1000 {
			m.demote.results = append(m.demote.results, errors.New("exit status 1"))
		}
	})
	m.win(t, m.candidacy(t), 4)
	waitUntil(t, "phase primary", func() bool { return m.sc.Status().Phase == role.PhasePrimary })
	m.cancel()
	m.calls.waitFor(t, "demote shutdown", 2)
	m.sc.Abort()
	select {
	case err := <-m.done:
		m.done <- err
		if err == nil {
			t.Fatal("Run returned nil after an aborted, failing demote")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after Abort")
	}
	log, _ := m.calls.snapshot()
	if !hasPrefix(log, "abandon") || hasPrefix(log, "close") || hasPrefix(log, "resign") {
		t.Fatalf("want the lease abandoned, neither revoked nor resigned:\n  %s", strings.Join(log, "\n  "))
	}
}

// Item 14: /standby means a standby that can serve reads: a pause or a
// switchover to another replica changes nothing; an unhealthy app or a
// replica without a lease (etcd unreachable) is not one.
func TestStandbyEndpointByPhase(t *testing.T) {
	h := newFakeHealth(true)
	m := startMachine(t, func(m *machine) {
		m.el.control = make(chan election.Control, 1)
		m.health = h
	})
	m.el.control <- election.Control{}
	m.candidacy(t)
	m.calls.waitFor(t, "campaign", 1)
	standby := func(what string, want int) {
		t.Helper()
		if code := httpCode(m.sc, "/standby"); code != want {
			t.Fatalf("/standby = %d %s, want %d (status %+v)", code, what, want, m.sc.Status())
		}
	}
	standby("while campaigning", http.StatusOK)

	m.el.control <- election.Control{Paused: true}
	waitUntil(t, "phase paused", func() bool { return m.sc.Status().Phase == role.PhasePaused })
	standby("while paused", http.StatusOK)

	now := time.Now()
	m.sc.state.setLeader(candidates("x", "me", "y"))
	m.el.control <- election.Control{Switchover: &election.Request{From: "x", To: "y", FencingToken: 1, Requested: now, Expires: now.Add(time.Minute)}}
	waitUntil(t, "phase yielding", func() bool { return m.sc.Status().Phase == role.PhaseYielding })
	standby("while yielding to a switchover", http.StatusOK)

	m.el.control <- election.Control{}
	h.set(false)
	waitUntil(t, "phase unhealthy", func() bool { return m.sc.Status().Phase == role.PhaseUnhealthy })
	standby("with an unhealthy app", http.StatusServiceUnavailable)

	h.set(true)
	m.calls.waitFor(t, "campaign", 2)
	waitUntil(t, "phase campaigning", func() bool { return m.sc.Status().Phase == role.PhaseCampaigning })
	// etcd goes away: the lease is lost and no new one can be had.
	m.el.mu.Lock()
	m.el.fail = 1 << 30
	m.el.mu.Unlock()
	m.sc.state.mu.Lock()
	current := m.sc.state.candidacy.(*fakeCandidacy)
	m.sc.state.mu.Unlock()
	current.loseLease()
	// At once, before the state machine has reacted.
	standby("with its lease lost", http.StatusServiceUnavailable)
	waitUntil(t, "phase connecting", func() bool { return m.sc.Status().Phase == role.PhaseConnecting })
	standby("without a lease", http.StatusServiceUnavailable)
}

// candidates makes leader-watch candidates with these ids, in this order.
func candidates(ids ...string) []election.Candidate {
	out := make([]election.Candidate, len(ids))
	for i, id := range ids {
		out[i] = election.Candidate{CandidateValue: election.CandidateValue{ID: id}, CreateRevision: int64(i + 1)}
	}
	return out
}

// Item 15: a routine switchover logs at INFO on bystanders.
func TestMachineBystanderOfASwitchoverLogsInfo(t *testing.T) {
	m := startMachine(t, func(m *machine) {
		m.el.control = make(chan election.Control, 1)
		m.logs = newLogRecorder()
	})
	m.el.control <- election.Control{}
	m.candidacy(t)
	m.calls.waitFor(t, "campaign", 1)
	now := time.Now()
	m.sc.state.setLeader(candidates("x", "me", "y"))
	m.el.control <- election.Control{Switchover: &election.Request{From: "x", To: "y", FencingToken: 1, Requested: now, Expires: now.Add(time.Minute)}}
	rec := m.logs.waitFor(t, "withdrew from the election")
	if rec.Level != slog.LevelInfo {
		t.Fatalf("withdrew for a switchover at %s, want INFO", rec.Level)
	}
	rec = m.logs.waitFor(t, "not campaigning")
	if rec.Level != slog.LevelInfo {
		t.Fatalf("not campaigning (yielding) at %s, want INFO", rec.Level)
	}
}

// Item 15: errors of the leader and control watches are logged once per
// outage, and their recovery once.
func TestMachineWatchErrorsLoggedOncePerOutage(t *testing.T) {
	reads := make(chan error)
	m := startMachine(t, func(m *machine) {
		m.el.leaderReads = reads
		m.logs = newLogRecorder()
	})
	for range 3 {
		reads <- errors.New("etcdserver: no leader")
	}
	reads <- nil
	m.logs.waitFor(t, "reading etcd recovered")
	reads <- errors.New("etcdserver: no leader")
	reads <- nil
	waitUntil(t, "the second recovery logged", func() bool { return m.logs.count("reading etcd recovered", slog.LevelInfo) == 2 })
	if n := m.logs.count("reading etcd failed; retrying", slog.LevelWarn); n != 2 {
		recs, _ := m.logs.snapshot()
		t.Fatalf("%d warnings for two outages, want 2:\n%s", n, formatRecords(recs))
	}
}

// Item 3: /livez answers 200 while the loop runs, even while a failing
// demote is retried (when /healthz says 503); 503 once stopped.
func TestLivezStaysUpWhileADemoteIsRetried(t *testing.T) {
	m := startMachine(t, func(m *machine) {
		m.demote.results = []error{nil}
		for range 1000 {
			m.demote.results = append(m.demote.results, errors.New("exit status 1"))
		}
	})
	ten := m.win(t, m.candidacy(t), 4)
	waitUntil(t, "phase primary", func() bool { return m.sc.Status().Phase == role.PhasePrimary })
	if code := httpCode(m.sc, "/livez"); code != http.StatusOK {
		t.Fatalf("/livez = %d while primary", code)
	}
	ten.lose(election.ErrKeyDeleted)
	waitUntil(t, "degraded", func() bool { return m.sc.Status().Degraded })
	if code := httpCode(m.sc, "/healthz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/healthz = %d while a demote fails", code)
	}
	if code := httpCode(m.sc, "/livez"); code != http.StatusOK {
		t.Fatalf("/livez = %d while a demote is retried", code)
	}
	m.sc.Abort()
	select {
	case err := <-m.done:
		m.done <- err
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after Abort")
	}
	if code := httpCode(m.sc, "/livez"); code != http.StatusServiceUnavailable {
		t.Fatalf("/livez = %d after Run returned", code)
	}
}

// Item 13: an end record that could not be written at step-down (etcd
// unreachable) is written once etcd answers again.
func TestMachineEndRecordRetriedAfterTheOutage(t *testing.T) {
	m := startMachine(t, func(m *machine) { m.el.failEnds = 2 })
	ten := m.win(t, m.candidacy(t), 3)
	waitUntil(t, "phase primary", func() bool { return m.sc.Status().Phase == role.PhasePrimary })
	ten.lose(election.ErrSafeDeadline)
	log := m.calls.waitFor(t, "record end token=3 reason=etcd-unreachable", 1)
	after(t, log, "demote etcd-unreachable token=3", "record end failed token=3", "record end failed token=3", "record end token=3")
}

// Liveness: bystanders yield to a switchover only while its target
// campaigns; when the target leaves the election, they campaign again
// rather than leave it empty until the request expires.
func TestMachineYieldEndsWhenTheTargetLeaves(t *testing.T) {
	m := startMachine(t, func(m *machine) { m.el.control = make(chan election.Control, 1) })
	m.el.control <- election.Control{}
	m.candidacy(t)
	m.calls.waitFor(t, "campaign", 1)
	now := time.Now()
	m.sc.state.setLeader(candidates("x", "me", "y"))
	m.el.control <- election.Control{Switchover: &election.Request{From: "x", To: "y", FencingToken: 1, Requested: now, Expires: now.Add(time.Hour)}}
	waitUntil(t, "phase yielding", func() bool { return m.sc.Status().Phase == role.PhaseYielding })
	m.sc.state.setLeader(candidates("x"))
	wake(m.sc.candidatesChanged)
	m.calls.waitFor(t, "campaign", 2)
}

// A replica that withdraws from the election (a pause) revokes its own
// lease. That is no lease loss: on resume it campaigns again at once,
// without the back-off a lease lost soon after its grant earns.
func TestMachineOwnRevokeIsNoLeaseLoss(t *testing.T) {
	logs := newLogRecorder()
	m := startMachine(t, func(m *machine) {
		m.el.control = make(chan election.Control)
		m.logs = logs
	})
	m.el.control <- election.Control{}
	m.candidacy(t)
	m.calls.waitFor(t, "campaign", 1)
	m.el.control <- election.Control{Paused: true}
	m.calls.waitFor(t, "close", 1)
	m.candidacy(t)
	m.el.control <- election.Control{}
	m.calls.waitFor(t, "campaign", 2)
	if n := logs.count("waiting before campaigning again", slog.LevelInfo); n != 0 {
		recs, _ := logs.snapshot()
		t.Fatalf("backed off after its own revoke:\n%s", formatRecords(recs))
	}
}

// lingeringHook is a promote that takes a while to die once killed (a
// process group within its grace period).
type lingeringHook struct {
	calls   *calls
	started chan struct{} // closed when it runs
	killed  chan struct{} // closed when its context ends
	release chan struct{} // closing it lets it return
}

func (h *lingeringHook) Run(ctx context.Context, env hooks.Env) hooks.Result {
	h.calls.add("%s %s token=%d", env.Event, env.Reason, env.FencingToken)
	close(h.started)
	<-ctx.Done()
	close(h.killed)
	<-h.release
	return hooks.Result{Hook: string(env.Event), Err: ctx.Err(), Canceled: true}
}

// A stop during a promote, then the tenure lost while the promote is being
// killed: the demote is told of the loss (the key is gone), not of the
// stop.
func TestMachineLossWhileAStopKillsThePromoteNamesTheLoss(t *testing.T) {
	promote := &lingeringHook{started: make(chan struct{}), killed: make(chan struct{}), release: make(chan struct{})}
	m := startMachine(t, func(m *machine) { promote.calls = m.calls })
	m.sc.promote = promote
	c := m.candidacy(t)
	ten := &fakeTenure{calls: m.calls, token: 7}
	c.win <- ten
	waitClosed(t, "the promote to start", promote.started)
	m.cancel() // SIGTERM while promoting
	waitClosed(t, "the promote to be killed", promote.killed)
	ten.lose(election.ErrSafeDeadline)
	close(promote.release)
	log := m.calls.waitFor(t, "demote ", 2) // start-up, then the step-down
	after(t, log, "promote elected", "demote etcd-unreachable token=7")
}

// stoppingHook is a promote that succeeds just as the sidecar is told to
// stop: SIGTERM lands as the promote exits 0.
type stoppingHook struct {
	calls *calls
	stop  func()
}

func (h *stoppingHook) Run(ctx context.Context, env hooks.Env) hooks.Result {
	h.calls.add("%s %s token=%d", env.Event, env.Reason, env.FencingToken)
	h.stop()
	return hooks.Result{Hook: string(env.Event)}
}

// A promote that ends after the stop began never makes the replica
// primary: no phase primary, no /primary 200, no primary member record.
func TestMachineNoPrimaryAfterAStopDuringThePromote(t *testing.T) {
	for range 50 {
		logs := newLogRecorder()
		hook := &stoppingHook{}
		m := startMachine(t, func(m *machine) { m.logs = logs; hook.calls = m.calls })
		m.sc.promote = hook
		hook.stop = m.cancel
		m.win(t, m.candidacy(t), 7)
		if err := m.stop(t); err != nil {
			t.Fatal(err)
		}
		if n := logs.count("primary", slog.LevelInfo); n > 0 {
			recs, _ := logs.snapshot()
			t.Fatalf("became primary after the stop began:\n%s", formatRecords(recs))
		}
	}
}

// waitClosed waits (bounded) until ch is closed.
func waitClosed(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitBound):
		t.Fatalf("timed out waiting for %s", what)
	}
}
