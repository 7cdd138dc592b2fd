package sidecar

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/internal/etcdtest"
	"github.com/leaderd/leaderd/role"
)

// startThree starts a, b and c and returns the first primary's promote.
func startThree(t *testing.T, c *cluster) event {
	for _, id := range []string{"a", "b", "c"} {
		c.start(id)
	}
	return c.tl.waitFor(t, "a first promote", match(0, event{Hook: "promote", Phase: "end"}))
}

func TestFirstElection(t *testing.T) {
	c := newCluster(t)
	first := startThree(t, c)

	evs, _ := c.tl.snapshot()
	// Every replica ran its start-up demote before anything else it did.
	for _, id := range []string{"a", "b", "c"} {
		i := match(0, event{ID: id})(evs)
		if i < 0 || evs[i].Hook != "demote" || evs[i].Reason != role.ReasonStartup {
			t.Errorf("%s: first hook is not the start-up demote:\n%s", id, formatEvents(evs))
		}
	}
	if !first.OK || first.Token <= 0 {
		t.Fatalf("promote: ok=%v token=%d", first.OK, first.Token)
	}
	// Exactly one primary: the other two never promoted.
	for _, e := range evs {
		if e.Hook == "promote" && e.ID != first.ID {
			t.Fatalf("%s also promoted:\n%s", e.ID, formatEvents(evs))
		}
	}
	// The API agrees: /primary is 200 on the primary only.
	waitUntil(t, "/primary 200 on the primary", func() bool { return httpCode(c.replica(first.ID).sc, "/primary") == 200 })
	for _, id := range []string{"a", "b", "c"} {
		want := http.StatusServiceUnavailable
		if id == first.ID {
			want = http.StatusOK
		}
		if got := httpCode(c.replica(id).sc, "/primary"); got != want {
			t.Errorf("%s /primary = %d, want %d", id, got, want)
		}
		st := c.replica(id).sc.Status()
		if id != first.ID && st.Role != role.Standby {
			t.Errorf("%s role = %s", id, st.Role)
		}
	}
	st := c.replica(first.ID).sc.Status()
	if st.Role != role.Primary || st.FencingToken != first.Token || st.Lease == nil || st.Lease.SecondsToSafeDeadline <= 0 {
		t.Errorf("primary status = %+v", st)
	}
}

func TestGracefulHandOff(t *testing.T) {
	c := newCluster(t)
	first := startThree(t, c)
	if err := c.stop(first.ID); err != nil {
		t.Fatalf("graceful stop returned %v", err)
	}
	evs, _ := c.tl.snapshot()
	demoteEnd := match(0, event{ID: first.ID, Hook: "demote", Phase: "end", Reason: role.ReasonShutdown})(evs)
	if demoteEnd < 0 || !evs[demoteEnd].OK {
		t.Fatalf("no successful shutdown demote:\n%s", formatEvents(evs))
	}
	next := c.tl.waitFor(t, "the next promote", promoteStartBy(func(id string) bool { return id != first.ID }))
	if !next.At.After(evs[demoteEnd].At) {
		t.Fatalf("new promote started before the old demote ended")
	}
	if next.Token <= first.Token {
		t.Fatalf("fencing token did not increase: %d then %d", first.Token, next.Token)
	}
	// The hand-off is prompt: resign, not lease expiry, lets the next one in.
	if gap := next.At.Sub(evs[demoteEnd].At); gap > testTTL {
		t.Errorf("hand-off took %s, as long as a lease expiry", gap)
	}
	all, _ := c.tl.snapshot()
	assertNoOverlap(t, all)
}

// promoteStartBy finds the first promote start by a replica that ok accepts.
func promoteStartBy(ok func(id string) bool) func([]event) int {
	return func(evs []event) int {
		for i, e := range evs {
			if e.Hook == "promote" && e.Phase == "start" && ok(e.ID) {
				return i
			}
		}
		return -1
	}
}

func TestPrimaryCrashFailover(t *testing.T) {
	c := newCluster(t)
	first := startThree(t, c)
	// The crashed primary's client vanishes: connections drop, nothing is
	// resigned or revoked.
	crashed := time.Now()
	c.replica(first.ID).proxy.Close()
	next := c.tl.waitFor(t, "a promote elsewhere", promoteStartBy(func(id string) bool { return id != first.ID }))
	if took := next.At.Sub(crashed); took > testTTL+1500*time.Millisecond {
		t.Fatalf("failover took %s, want <= TTL + 1.5s", took)
	}
	evs, _ := c.tl.snapshot()
	assertNoOverlap(t, evs)
}

func TestCutOffPrimaryDemotesBeforeAnyonePromotes(t *testing.T) {
	c := newCluster(t)
	first := startThree(t, c)
	c.replica(first.ID).proxy.CutOff()
	demote := c.tl.waitFor(t, "the cut-off primary's demote", match(0, event{ID: first.ID, Hook: "demote", Phase: "end", Reason: role.ReasonEtcdUnreachable}))
	next := c.tl.waitFor(t, "a promote elsewhere", promoteStartBy(func(id string) bool { return id != first.ID }))
	if !demote.At.Before(next.At) {
		t.Fatalf("new promote at %s did not wait for the old demote end at %s", next.At, demote.At)
	}
	if next.Token <= first.Token {
		t.Fatalf("fencing token did not increase")
	}
	// Healed, the old primary rejoins as a standby.
	c.replica(first.ID).proxy.Heal()
	waitUntil(t, "the old primary campaigns again", func() bool {
		st := c.replica(first.ID).sc.Status()
		return st.Role == role.Standby && st.Lease != nil && st.Etcd.Reachable
	})
	evs, _ := c.tl.snapshot()
	assertNoOverlap(t, evs)
}

func TestEtcdStoppedAndRestarted(t *testing.T) {
	c := newCluster(t)
	first := startThree(t, c)
	before, _ := c.tl.snapshot()
	stopped := time.Now()
	c.etcd.Stop()
	demote := c.tl.waitFor(t, "the primary's demote", match(len(before), event{ID: first.ID, Hook: "demote", Phase: "end"}))
	if demote.Reason != role.ReasonEtcdUnreachable {
		t.Errorf("demote reason %q, want %q", demote.Reason, role.ReasonEtcdUnreachable)
	}
	// The lease was last renewed before the stop, so the server could
	// expire it TTL after that at the earliest.
	if took := demote.At.Sub(stopped); took >= testTTL {
		t.Fatalf("demote ended %s after etcd stopped, not before the TTL (%s)", took, testTTL)
	}
	evs, _ := c.tl.snapshot()
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	if err := c.etcd.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	again := c.tl.waitFor(t, "a primary after the restart", match(len(evs), event{Hook: "promote", Phase: "end"}))
	t.Logf("a primary %s after etcd's restart", again.At.Sub(restarted).Round(time.Millisecond))
	if !again.OK || again.Token <= first.Token {
		t.Fatalf("after restart: %s (first token %d)", again, first.Token)
	}
	all, _ := c.tl.snapshot()
	assertNoOverlap(t, all)
}

func TestOwnKeyDeletedByOperator(t *testing.T) {
	c := newCluster(t)
	first := startThree(t, c)
	cli := etcdtest.NewClient(t, c.etcd.Endpoint())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cands, _, err := election.NewStore(cli, "/leaderd", "test").Candidates(ctx)
	if err != nil || len(cands) == 0 || cands[0].ID != first.ID {
		t.Fatalf("candidates %+v, %v", cands, err)
	}
	deleted := time.Now()
	if _, err := cli.Delete(ctx, cands[0].Key); err != nil {
		t.Fatal(err)
	}
	demote := c.tl.waitFor(t, "demote after the key deletion", match(0, event{ID: first.ID, Hook: "demote", Phase: "end", Reason: role.ReasonKeyDeleted}))
	if took := demote.At.Sub(deleted); took > time.Second {
		t.Errorf("demote ended %s after the deletion, want promptly", took)
	}
	// Deleting the key is an operator forcing a change: the next candidate
	// wins at once, possibly while the old primary's demote still runs,
	// so no overlap is asserted here; the fencing token still rises.
	c.tl.waitFor(t, "a new primary", func(evs []event) int {
		for i, e := range evs {
			if e.Hook == "promote" && e.Phase == "start" && e.Token > first.Token {
				return i
			}
		}
		return -1
	})
}

func TestPromoteFailureGivesWay(t *testing.T) {
	c := newCluster(t)
	c.start("bad", withPromote("exit 7"))
	c.tl.waitFor(t, "the failed promote's demote", match(0, event{ID: "bad", Hook: "demote", Phase: "end", Reason: role.ReasonPromoteFailed}))
	c.start("good")
	good := c.tl.waitFor(t, "the good replica's promote", match(0, event{ID: "good", Hook: "promote", Phase: "end"}))
	if !good.OK {
		t.Fatalf("good promote failed")
	}
	evs, _ := c.tl.snapshot()
	for _, e := range evs {
		if e.ID == "bad" && e.Hook == "promote" && e.Phase == "end" && e.OK {
			t.Fatalf("bad promote succeeded:\n%s", formatEvents(evs))
		}
	}
	assertNoOverlap(t, evs)
}

func TestDemoteFailureIsRetriedBeforeHandOff(t *testing.T) {
	c := newCluster(t)
	c.start("a", withDemote(counterHook(t, 2)+" || exit 1")) // start-up demote fails twice
	c.tl.waitFor(t, "a's failed start-up demote", match(0, event{ID: "a", Hook: "demote", Phase: "end"}))
	// The state is set just after the hook's end is recorded, and the
	// second failure keeps it for at least one back-off.
	waitUntil(t, "a reported degraded", func() bool {
		st := c.replica("a").sc.Status()
		return st.Degraded && !st.Healthy && httpCode(c.replica("a").sc, "/healthz") == http.StatusServiceUnavailable
	})
	// It campaigns only after a demote succeeded.
	promote := c.tl.waitFor(t, "a's promote", match(0, event{ID: "a", Hook: "promote", Phase: "start"}))
	evs, _ := c.tl.snapshot()
	ok := match(0, event{ID: "a", Hook: "demote", Phase: "end"})
	var firstOK time.Time
	for i := ok(evs); i >= 0; i = match(i+1, event{ID: "a", Hook: "demote", Phase: "end"})(evs) {
		if evs[i].OK {
			firstOK = evs[i].At
			break
		}
	}
	if firstOK.IsZero() || !firstOK.Before(promote.At) {
		t.Fatalf("promoted before a demote succeeded:\n%s", formatEvents(evs))
	}
}

func TestDemoteTimeoutHoldsLeadershipUntilDemoted(t *testing.T) {
	c := newCluster(t)
	// The shutdown demote hangs past its timeout twice, then succeeds.
	hang := counterHook(t, 2) // the first two shutdown demotes hang
	c.start("a", withDemote(`[ "$LEADERD_REASON" = startup ] && exit 0; `+hang+` || sleep 30`))
	c.tl.waitFor(t, "a's promote", match(0, event{ID: "a", Hook: "promote", Phase: "end"}))
	c.start("b")
	c.tl.waitFor(t, "b's start-up demote", match(0, event{ID: "b", Hook: "demote", Phase: "end"}))
	stopped := make(chan error, 1)
	go func() { stopped <- c.stop("a") }()
	// a's shutdown demote times out; it is retried, and b must not
	// promote until one succeeded.
	bPromote := c.tl.waitFor(t, "b's promote", match(0, event{ID: "b", Hook: "promote", Phase: "start"}))
	evs, _ := c.tl.snapshot()
	var timeouts int
	var okEnd time.Time
	for _, e := range evs {
		if e.ID == "a" && e.Hook == "demote" && e.Phase == "end" && e.Reason == role.ReasonShutdown {
			if !e.OK {
				timeouts++
			} else if okEnd.IsZero() {
				okEnd = e.At
			}
		}
	}
	if timeouts < 1 || okEnd.IsZero() || !okEnd.Before(bPromote.At) {
		t.Fatalf("want failed demotes, then a good one, then b's promote:\n%s", formatEvents(evs))
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("stop: %v", err)
		}
	case <-time.After(waitBound):
		t.Fatal("a did not stop")
	}
}

func TestReplicaRestartRejoinsAsStandby(t *testing.T) {
	c := newCluster(t)
	first := startThree(t, c)
	var standby string
	for _, id := range []string{"a", "b", "c"} {
		if id != first.ID {
			standby = id
			break
		}
	}
	if err := c.stop(standby); err != nil {
		t.Fatal(err)
	}
	evs, _ := c.tl.snapshot()
	c.start(standby)
	c.tl.waitFor(t, "the restarted replica's start-up demote", match(len(evs), event{ID: standby, Hook: "demote", Phase: "end", Reason: role.ReasonStartup}))
	waitUntil(t, "the restarted replica campaigns", func() bool { return c.replica(standby).sc.Status().Lease != nil })
	all, _ := c.tl.snapshot()
	for _, e := range all[len(evs):] {
		if e.Hook == "promote" {
			t.Fatalf("a restart of a standby changed the primary:\n%s", formatEvents(all))
		}
	}
}

func httpCode(sc *Sidecar, path string) int {
	rec := httptest.NewRecorder()
	sc.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code
}

// waitUntil polls cond, bounded by waitBound. Used only for state that has
// no event to wait on (HTTP answers, status fields).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitBound)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", waitBound, what)
		}
		<-tick.C
	}
}
