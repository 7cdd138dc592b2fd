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

// A read-back that contradicts the grant (TimeToLive reports less than
// the grant's answer: garbage, or a proxy's) is used for that lease only,
// the shorter being the safe side, and never adopted: later grants asking
// for it would run a guard the configuration was not validated for (here
// 2s with a 1s demote: no safe time left), so one bad answer would keep
// the replica out of the election for good. The next grant reads back
// again, and an answer that agrees is adopted.
func TestContradictoryTTLReadBackIsNotAdopted(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TTL, cfg.DemoteTimeout = 4*time.Second, time.Second
	base := election.LeaseOptions{TTL: cfg.TTL, RenewInterval: cfg.RenewInterval(), StepDownLead: cfg.StepDownLead()}
	var adopted []election.LeaseOptions
	var inEffect []time.Duration
	c := &ttlCheck{cfg: cfg, logger: slog.New(slog.DiscardHandler), inEffect: func(d time.Duration) { inEffect = append(inEffect, d) }}
	adopt := func(o election.LeaseOptions) { adopted = append(adopted, o) }

	opts := c.options(base, adopt)
	renew, lead := opts.ReadBack(election.TTLReadBack{Asked: 4 * time.Second, Granted: 2 * time.Second, GrantResponse: 4 * time.Second})
	if b := cfg.Budget(2 * time.Second); renew != b.RenewInterval || lead != b.StepDownLead {
		t.Errorf("this lease's guard: renew %s, lead %s; want the shorter TTL's %s, %s", renew, lead, b.RenewInterval, b.StepDownLead)
	}
	if len(adopted) != 0 || len(inEffect) != 0 {
		t.Fatalf("a contradictory read-back was adopted: %+v, TTL in effect %v", adopted, inEffect)
	}

	opts = c.options(base, adopt)
	if opts.ReadBack == nil {
		t.Fatal("no read-back on the next grant after a contradictory one")
	}
	opts.ReadBack(election.TTLReadBack{Asked: 4 * time.Second, Granted: 8 * time.Second, GrantResponse: 8 * time.Second})
	if len(adopted) != 1 || adopted[0].TTL != 8*time.Second || len(inEffect) != 1 || inEffect[0] != 8*time.Second {
		t.Fatalf("an agreeing read-back of 8s: adopted %+v, TTL in effect %v", adopted, inEffect)
	}
	if c.options(base, adopt).ReadBack != nil {
		t.Error("read back again after an agreeing read-back")
	}
}
