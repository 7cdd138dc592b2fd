package sidecar

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/internal/etcdtest"
	"github.com/leaderd/leaderd/role"
)

func (c *cluster) client(t *testing.T) (*clientv3.Client, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return etcdtest.NewClient(t, c.etcd.Endpoint()), ctx
}

func (c *cluster) request(t *testing.T, from event, to string) time.Time {
	t.Helper()
	cli, ctx := c.client(t)
	now := time.Now()
	r := election.Request{From: from.ID, FencingToken: from.Token, To: to, Requested: now, Expires: now.Add(30 * time.Second)}
	if err := election.NewStore(cli, "/leaderd", "test").PutRequest(ctx, r); err != nil {
		t.Fatal(err)
	}
	return now
}

func (c *cluster) waitRequestCleared(t *testing.T) {
	t.Helper()
	cli, _ := c.client(t)
	waitUntil(t, "the request cleared", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		ctl, _, err := election.NewStore(cli, "/leaderd", "test").ReadControl(ctx)
		return err == nil && ctl.Resign == nil && ctl.Switchover == nil
	})
}

func TestResignRequestHandsOver(t *testing.T) {
	c := newCluster(t)
	first := startThree(t, c)
	c.request(t, first, "")
	demote := c.tl.waitFor(t, "the resigning primary's demote", match(0, event{ID: first.ID, Hook: "demote", Phase: "end", Reason: role.ReasonResigned}))
	next := c.tl.waitFor(t, "the next promote", promoteStartBy(func(id string) bool { return id != first.ID }))
	if !demote.At.Before(next.At) || next.Token <= first.Token {
		t.Fatalf("resign: demote end %s, next promote %s (token %d after %d)", demote.At, next.At, next.Token, first.Token)
	}
	c.waitRequestCleared(t)
	// The old primary campaigns again, at the back of the queue.
	waitUntil(t, first.ID+" campaigning", func() bool { return c.replica(first.ID).sc.Status().Phase == role.PhaseCampaigning })
}

func TestSwitchoverGoesToTheNamedReplicaOnly(t *testing.T) {
	c := newCluster(t)
	c.start("a")
	a := c.tl.waitFor(t, "a's promote", match(0, event{ID: "a", Hook: "promote", Phase: "end"}))
	c.start("b")
	waitUntil(t, "b campaigning", func() bool { return c.replica("b").sc.Status().Lease != nil })
	c.start("c")
	// c is last in line; the switchover must skip b.
	waitUntil(t, "c campaigning", func() bool {
		return slices.Equal(c.replica("a").sc.state.candidatesSnapshot(), []string{"a", "b", "c"})
	})
	asked := c.request(t, a, "c")
	promote := c.tl.waitFor(t, "c's promote", match(0, event{ID: "c", Hook: "promote", Phase: "start"}))
	if took := promote.At.Sub(asked); took > time.Second {
		t.Errorf("switchover took %s, want within 1s", took)
	}
	demote := c.tl.waitFor(t, "a's demote", match(0, event{ID: "a", Hook: "demote", Phase: "end", Reason: role.ReasonSwitchover}))
	if !demote.At.Before(promote.At) {
		t.Fatalf("c promoted before a's demote ended")
	}
	c.waitRequestCleared(t)
	// b yielded meanwhile and comes back as a standby; it never promoted.
	waitUntil(t, "b campaigning again", func() bool { return c.replica("b").sc.Status().Phase == role.PhaseCampaigning })
	evs, _ := c.tl.snapshot()
	for _, e := range evs {
		if e.ID == "b" && e.Hook == "promote" {
			t.Fatalf("b promoted during a switchover to c:\n%s", formatEvents(evs))
		}
	}
	assertNoOverlap(t, evs)
}

func TestPauseFreezesRoles(t *testing.T) {
	c := newCluster(t)
	dir := t.TempDir()
	health := dir + "/a"
	writeHealth(t, health, "ok")
	c.start("a", withHealthFile(health))
	c.tl.waitFor(t, "a's promote", match(0, event{ID: "a", Hook: "promote", Phase: "end"}))
	c.start("b")
	waitUntil(t, "b campaigning", func() bool { return c.replica("b").sc.Status().Phase == role.PhaseCampaigning })

	cli, ctx := c.client(t)
	if err := election.NewStore(cli, "/leaderd", "test").SetPaused(ctx, true); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "b paused", func() bool {
		st := c.replica("b").sc.Status()
		return st.Phase == role.PhasePaused && st.Paused && st.Lease != nil
	})
	// Each replica watches the control keys itself: a must know of the
	// pause before its app turns unhealthy.
	waitUntil(t, "a paused", func() bool { return c.replica("a").sc.Status().Paused })
	// Paused, an unhealthy primary stays: watch past the health thresholds.
	writeHealth(t, health, "sick")
	waitUntil(t, "a's app unhealthy", func() bool { return !c.replica("a").sc.Status().AppHealthy })
	window := time.After(500 * time.Millisecond) // 5 check intervals: a demote would have started
	for done := false; !done; {
		select {
		case <-window:
			done = true
		case <-time.After(20 * time.Millisecond):
			if st := c.replica("a").sc.Status(); st.Phase != role.PhasePrimary {
				t.Fatalf("paused, the unhealthy primary left phase primary: %s", st.Phase)
			}
		}
	}
	// Resumed: the unhealthy primary steps down and b takes over.
	if err := election.NewStore(cli, "/leaderd", "test").SetPaused(ctx, false); err != nil {
		t.Fatal(err)
	}
	demote := c.tl.waitFor(t, "a's demote", match(0, event{ID: "a", Hook: "demote", Phase: "end", Reason: role.ReasonUnhealthy}))
	next := c.tl.waitFor(t, "b's promote", match(0, event{ID: "b", Hook: "promote", Phase: "start"}))
	if !demote.At.Before(next.At) {
		t.Fatalf("b promoted before a's demote ended")
	}
}

func TestNoFailoverNeverCampaigns(t *testing.T) {
	c := newCluster(t)
	c.start("a")
	c.tl.waitFor(t, "a's promote", match(0, event{ID: "a", Hook: "promote", Phase: "end"}))
	o := c.start("o", func(cfg *Config) { cfg.NoFailover = true }, withFollow())
	c.tl.waitFor(t, "o follows a", match(0, event{ID: "o", Hook: "leader-change", Phase: "end"}))
	waitUntil(t, "o observing with a lease", func() bool {
		st := o.sc.Status()
		return st.Phase == role.PhaseObserving && st.Lease != nil
	})
	// The primary goes; the observer does not take over.
	if err := c.stop("a"); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, c, "o alone", func(ms []election.Member) bool {
		return len(ms) == 1 && ms[0].ID == "o" && ms[0].Phase == role.PhaseObserving
	})
	evs, _ := c.tl.snapshot()
	for _, e := range evs {
		if e.ID == "o" && e.Hook == "promote" {
			t.Fatalf("a --no-failover replica promoted:\n%s", formatEvents(evs))
		}
	}
}

func TestPostResignNeedsTheToken(t *testing.T) {
	c := newCluster(t)
	a := c.start("a", func(cfg *Config) { cfg.APIToken = "s3cret" })
	first := c.tl.waitFor(t, "a's promote", match(0, event{ID: "a", Hook: "promote", Phase: "end"}))
	b := c.start("b")
	waitUntil(t, "a serving", func() bool { return httpCode(a.sc, "/primary") == http.StatusOK })
	// Until b campaigns (its start-up demote first), a resign would hand
	// the role back to a.
	waitUntil(t, "b campaigning", func() bool { return b.sc.Status().Phase == role.PhaseCampaigning })
	post := func(auth string) int {
		req := httptest.NewRequest(http.MethodPost, "/resign", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		a.sc.Handler().ServeHTTP(rec, req)
		return rec.Code
	}
	if code := post(""); code != http.StatusForbidden {
		t.Fatalf("POST /resign without a token = %d, want 403", code)
	}
	if code := post("Bearer wrong"); code != http.StatusForbidden {
		t.Fatalf("POST /resign with a wrong token = %d, want 403", code)
	}
	if code := post("Bearer s3cret"); code != http.StatusAccepted {
		t.Fatalf("POST /resign = %d, want 202", code)
	}
	c.tl.waitFor(t, "a's demote", match(0, event{ID: "a", Hook: "demote", Phase: "end", Reason: role.ReasonResigned}))
	next := c.tl.waitFor(t, "b's promote", match(0, event{ID: "b", Hook: "promote", Phase: "start"}))
	if next.Token <= first.Token {
		t.Fatalf("token %d after %d", next.Token, first.Token)
	}
	// A replica without --api-token refuses.
	if code := httpCodeMethod(c.replica("b").sc, http.MethodPost, "/resign"); code != http.StatusForbidden {
		t.Fatalf("POST /resign on a replica without a token = %d", code)
	}
}

func httpCodeMethod(sc *Sidecar, method, path string) int {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(method, path, nil)
	req.Header.Set("Authorization", "Bearer ")
	sc.Handler().ServeHTTP(rec, req)
	return rec.Code
}

// A switchover request that names no tenure that leads (here one that
// never was, to a foreign campaigner, expiring in 9999) is stale: the
// standbys do not yield to it, so when the primary goes another replica
// takes over at once, not when the foreign lease expires.
func TestStaleSwitchoverDoesNotStallTheElection(t *testing.T) {
	c := newCluster(t)
	first := startThree(t, c)
	cli, ctx := c.client(t)
	waitUntil(t, "all three campaigning", func() bool { return len(c.replica(first.ID).sc.state.candidatesSnapshot()) == 3 })
	ghost, err := cli.Grant(ctx, 120) // never kept alive: it outlives the test
	if err != nil {
		t.Fatal(err)
	}
	ghostKey := election.NewStore(nil, "/leaderd", "test").CandidateKey(ghost.ID)
	if _, err := cli.Put(ctx, ghostKey, `{"id":"ghost"}`, clientv3.WithLease(ghost.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, election.NewStore(nil, "/leaderd", "test").ControlPrefix()+"switchover",
		`{"from":"nobody","fencing_token":-1,"to":"ghost","expires":"9999-12-31T23:59:59Z"}`); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the standbys seeing the ghost campaign", func() bool {
		for _, id := range []string{"a", "b", "c"} {
			if id != first.ID && !c.replica(id).sc.state.isCandidate("ghost") {
				return false
			}
		}
		return true
	})
	for _, id := range []string{"a", "b", "c"} {
		if st := c.replica(id).sc.Status(); id != first.ID && st.Phase != role.PhaseCampaigning {
			t.Fatalf("%s is %s with a stale switchover in etcd, want campaigning", id, st.Phase)
		}
	}
	stopped := time.Now()
	if err := c.stop(first.ID); err != nil {
		t.Fatal(err)
	}
	next := c.tl.waitFor(t, "the next promote", promoteStartBy(func(id string) bool { return id != first.ID }))
	if took := next.At.Sub(stopped); took > 2*testTTL {
		t.Fatalf("the next promote came %s after the primary stopped, want within 2 TTLs", took)
	}
}
