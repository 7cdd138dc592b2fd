package sidecar

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leaderd/leaderd/hooks"
	"github.com/leaderd/leaderd/internal/etcdtest"
	"github.com/leaderd/leaderd/internal/timeline"
)

// Test timing: TTL 3s leaves 3 - 1 - 0.5 = 1.5s >= 2 x 0.75s, valid.
const (
	testTTL           = 3 * time.Second
	testDemoteTimeout = time.Second
	// waitBound caps every wait for an event in these tests.
	waitBound = 20 * time.Second
)

// event is one hook start or end, recorded around the real hook runner
// (OK set on the end of a hook that succeeded).
type event = timeline.Event

// recorder is the in-process timeline: it collects events from every
// replica and wakes waiters.
type recorder struct {
	mu     sync.Mutex
	events []event
	change chan struct{}
}

func newTimeline() *recorder { return &recorder{change: make(chan struct{})} }

func (tl *recorder) add(e event) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.events = append(tl.events, e)
	close(tl.change)
	tl.change = make(chan struct{})
}

func (tl *recorder) snapshot() ([]event, <-chan struct{}) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return append([]event(nil), tl.events...), tl.change
}

// waitFor waits until find returns an index >= 0 in the events, bounded.
func (tl *recorder) waitFor(t *testing.T, what string, find func([]event) int) event {
	t.Helper()
	deadline := time.NewTimer(waitBound)
	defer deadline.Stop()
	for {
		evs, change := tl.snapshot()
		if i := find(evs); i >= 0 {
			return evs[i]
		}
		select {
		case <-change:
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s; timeline:\n%s", waitBound, what, formatEvents(evs))
		}
	}
}

func formatEvents(evs []event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "  %s ok=%v\n", e, e.OK)
	}
	return b.String()
}

// match finds the first event after index from that satisfies all fields
// set in want (empty strings and zero tokens match anything).
func match(from int, want event) func([]event) int { return timeline.First(from, want) }

// recordingRunner wraps a real hooks.Runner and records start and end.
type recordingRunner struct {
	id    string
	inner hookRunner
	tl    *recorder
}

func (r *recordingRunner) Run(ctx context.Context, env hooks.Env) hooks.Result {
	r.tl.add(event{ID: r.id, Hook: env.Event, Phase: timeline.PhaseStart, Reason: env.Reason, Token: env.FencingToken, At: time.Now()})
	res := r.inner.Run(ctx, env)
	r.tl.add(event{ID: r.id, Hook: env.Event, Phase: timeline.PhaseEnd, Reason: env.Reason, Token: env.FencingToken, OK: res.OK(), At: time.Now()})
	return res
}

// cluster is one embedded etcd with replicas, each behind its own proxy.
type cluster struct {
	t    *testing.T
	etcd *etcdtest.Server
	tl   *recorder
	mu   sync.Mutex
	reps map[string]*replica
}

type replica struct {
	id     string
	proxy  *etcdtest.Proxy
	sc     *Sidecar
	cancel context.CancelFunc
	done   chan error
}

func newCluster(t *testing.T) *cluster {
	c := &cluster{t: t, etcd: etcdtest.Start(t), tl: newTimeline(), reps: map[string]*replica{}}
	t.Cleanup(c.stopAll)
	return c
}

// replicaOptions change one replica's config before it starts.
type replicaOption func(*Config)

func withPromote(cmd string) replicaOption { return func(c *Config) { c.OnPromote = cmd } }
func withDemote(cmd string) replicaOption  { return func(c *Config) { c.OnDemote = cmd } }

func (c *cluster) config(id string, endpoint string) Config {
	cfg := DefaultConfig()
	cfg.Endpoints = []string{endpoint}
	cfg.Election = "test"
	cfg.ID = id
	cfg.TTL = testTTL
	cfg.DemoteTimeout = testDemoteTimeout
	cfg.PromoteTimeout = 5 * time.Second
	cfg.Listen = "off"
	cfg.OnPromote = "true"
	cfg.OnDemote = "true"
	return cfg
}

// start runs a replica until stop or the end of the test.
func (c *cluster) start(id string, opts ...replicaOption) *replica {
	c.t.Helper()
	proxy := etcdtest.StartProxy(c.t, c.etcd.Endpoint())
	cfg := c.config(id, proxy.Endpoint())
	for _, o := range opts {
		o(&cfg)
	}
	logger := testLogger(c.t, id)
	sc, err := New(cfg, logger)
	if err != nil {
		c.t.Fatalf("new sidecar %s: %v", id, err)
	}
	sc.promote = &recordingRunner{id: id, inner: sc.promote, tl: c.tl}
	sc.demote = &recordingRunner{id: id, inner: sc.demote, tl: c.tl}
	if sc.follow != nil {
		sc.follow = &recordingRunner{id: id, inner: sc.follow, tl: c.tl}
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{id: id, proxy: proxy, sc: sc, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- sc.Run(ctx) }()
	c.mu.Lock()
	c.reps[id] = r
	c.mu.Unlock()
	return r
}

// stop stops a replica gracefully and waits for Run to return.
func (c *cluster) stop(id string) error {
	c.t.Helper()
	c.mu.Lock()
	r := c.reps[id]
	delete(c.reps, id)
	c.mu.Unlock()
	if r == nil {
		return nil
	}
	r.cancel()
	select {
	case err := <-r.done:
		return err
	case <-time.After(waitBound):
		r.sc.Abort()
		c.t.Fatalf("replica %s did not stop within %s", id, waitBound)
		return nil
	}
}

func (c *cluster) stopAll() {
	c.mu.Lock()
	ids := make([]string, 0, len(c.reps))
	for id := range c.reps {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.mu.Lock()
			r := c.reps[id]
			c.mu.Unlock()
			r.sc.Abort() // a test's end needs no clean hand-off
			r.cancel()
			select {
			case <-r.done:
			case <-time.After(waitBound):
				c.t.Errorf("replica %s did not stop", id)
			}
		}()
	}
	wg.Wait()
}

func (c *cluster) replica(id string) *replica {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reps[id]
}

// testLogger writes to the test log only when -v is set, to keep output quiet.
func testLogger(t *testing.T, id string) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})).With("replica", id)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// counterHook returns a shell command that fails its first n runs, then
// succeeds, counting runs in a file.
func counterHook(t *testing.T, n int) string {
	f := filepath.Join(t.TempDir(), "count")
	if err := os.WriteFile(f, []byte("0"), 0o644); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`c=$(cat %[1]s); echo $((c+1)) > %[1]s; [ "$c" -ge %[2]d ]`, f, n)
}

// assertNoOverlap fails if two promote..demote tenures of different
// replicas overlap: a promote may start only after the previous primary's
// demote has ended. The events are in the order they happened, and a
// failed demote (retried) ends nothing.
func assertNoOverlap(t *testing.T, evs []event) {
	t.Helper()
	tenures := timeline.Pairing{OnlyOK: true, NextPromoteCloses: true}.Tenures(evs)
	if overlaps := timeline.Overlaps(tenures, timeline.Rules{OtherReplicasOnly: true, ByPosition: true}); len(overlaps) > 0 {
		t.Fatalf("%s promoted while %s had not finished demoting:\n%s", overlaps[0].B.ID, overlaps[0].A.ID, formatEvents(evs))
	}
}

// candidatesSnapshot is the campaign order as the state last saw it, by id.
func (s *state) candidatesSnapshot() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, len(s.campaigners))
	for i, c := range s.campaigners {
		ids[i] = c.ID
	}
	return ids
}
