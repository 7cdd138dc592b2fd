package sidecar

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/internal/etcdtest"
	"github.com/leaderd/leaderd/role"
)

const ttlRaisedWarning = "etcd granted another lease TTL than asked; the lease guard follows the granted TTL"

// heldLease is the lease the replica holds now; nil while none.
func heldLease(s *Sidecar) *election.Lease {
	s.state.mu.Lock()
	defer s.state.mu.Unlock()
	if c, ok := s.state.candidacy.(etcdCandidacy); ok {
		return c.Lease()
	}
	return nil
}

// etcd with a 5s election timeout raises every TTL below 8s (1.5 x 5s,
// rounded up) to 8s. A replica asking for 4s must warn once, run its guard
// on 8s (renew interval 2s, step-down lead 1s + 0.8s), show 8s in /status
// and its budget, and ask for 8s from then on.
func TestGrantedTTLRetimesTheGuard(t *testing.T) {
	srv := etcdtest.StartWithOptions(t, etcdtest.Options{
		Dir: filepath.Join(t.TempDir(), "etcd"), ElectionTimeout: 5 * time.Second,
	})
	cfg := DefaultConfig()
	cfg.Endpoints = []string{srv.Endpoint()}
	cfg.Election = "test"
	cfg.ID = "a"
	cfg.TTL, cfg.DemoteTimeout = 4*time.Second, time.Second
	cfg.Listen = "off"
	cfg.OnPromote, cfg.OnDemote = "true", "true"
	logs := newLogRecorder()
	sc, err := New(cfg, slog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sc.Run(ctx) }()
	t.Cleanup(func() {
		sc.Abort()
		cancel()
		select {
		case <-done:
		case <-time.After(waitBound):
			t.Errorf("the replica did not stop within %s", waitBound)
		}
	})

	warning := logs.waitFor(t, ttlRaisedWarning)
	for _, want := range []string{"ttl_asked=4s", "ttl_granted=8s", "renew_interval=2s", "step_down_lead=1.8s", "safe_deadline=6.2s"} {
		if !strings.Contains(warning.Attrs, want) {
			t.Errorf("warning %q lacks %s", warning.Attrs, want)
		}
	}
	if warning.Level != slog.LevelWarn {
		t.Errorf("logged at %s, want WARN", warning.Level)
	}
	waitUntil(t, "the replica is primary", func() bool { return sc.Status().Phase == role.PhasePrimary })

	checkGuard := func(when string) int64 {
		t.Helper()
		l := heldLease(sc)
		if l == nil {
			t.Fatalf("%s: no lease held", when)
		}
		if l.TTL() != 8*time.Second {
			t.Errorf("%s: lease TTL %s, want 8s", when, l.TTL())
		}
		if lead := l.Deadline().Sub(l.SafeDeadline()); lead != 1800*time.Millisecond {
			t.Errorf("%s: step-down lead %s, want 1.8s (demote timeout 1s + margin 8s/10)", when, lead)
		}
		st := sc.Status()
		if st.Lease == nil || st.Lease.TTLSeconds != 8 {
			t.Errorf("%s: /status lease %+v, want ttl_seconds 8", when, st.Lease)
		}
		b := st.Budget
		if b == nil || b.TTL != 8*time.Second || b.RequestedTTL != 4*time.Second || b.RenewInterval != 2*time.Second || b.SafeDeadline != 6200*time.Millisecond {
			t.Errorf("%s: /status budget %+v, want TTL 8s asked 4s, renew 2s, safe deadline 6.2s", when, b)
		}
		return int64(l.ID())
	}
	first := checkGuard("first lease")

	// A new term: revoke the lease behind the replica's back. Its next grant
	// asks for 8s, so nothing is raised and nothing more is logged.
	cli := etcdtest.NewClient(t, srv.Endpoint())
	rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer rcancel()
	if _, err := cli.Revoke(rctx, clientv3.LeaseID(first)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the replica holds a new lease", func() bool {
		l := heldLease(sc)
		return l != nil && int64(l.ID()) != first
	})
	checkGuard("second lease")
	if n := logs.count(ttlRaisedWarning, slog.LevelWarn); n != 1 {
		t.Errorf("warned %d times, want once", n)
	}
	body, err := json.Marshal(sc.Status())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), `"budget":{`) || !strings.Contains(string(body), `"requested_ttl_seconds":4`) {
		t.Errorf("/status JSON has no budget with requested_ttl_seconds 4: %s", body)
	}
}
