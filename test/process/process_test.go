// Package process holds leaderd's process-level tests: the real binary,
// three real `leaderd run` processes on one embedded etcd (each behind its
// own fault proxy), the example hooks writing one timeline, and real
// signals. See docs/design.md, "Test layers".
package process

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/leaderd/leaderd/internal/etcdtest"
	"github.com/leaderd/leaderd/internal/replicas"
	"github.com/leaderd/leaderd/internal/timeline"
	"github.com/leaderd/leaderd/role"
	"github.com/leaderd/leaderd/sidecar"
)

// Timing of the replicas. TTL 3s with a 1s demote timeout passes the lease
// guard rule exactly: 3 - 1 - max(0.5, 0.3) = 1.5 >= 2 x 3/4.
const (
	ttl           = 3 * time.Second
	demoteTimeout = 1 * time.Second
)

// Bounds of the waits below.
const (
	// testTimeout bounds a whole scenario.
	testTimeout = 60 * time.Second
	// electedTimeout bounds the first election after start-up.
	electedTimeout = 15 * time.Second
	// exitTimeout bounds a graceful exit.
	exitTimeout = 10 * time.Second
	// rejoinTimeout bounds a healed replica's return as a standby: the
	// etcd client reconnects with backoff.
	rejoinTimeout = 30 * time.Second
	// closeGrace is Set.Close's SIGTERM-to-SIGKILL grace at clean-up.
	closeGrace = 10 * time.Second
	// minFreezeExtra is how much longer than the TTL a SIGSTOP lasts at
	// least.
	minFreezeExtra = 100 * time.Millisecond
	// pollInterval paces HTTP polling.
	pollInterval = 20 * time.Millisecond
)

var binary string // built once by TestMain

func TestMain(m *testing.M) {
	bin, remove, err := replicas.BuildTemp()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = bin
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		remove()
		os.Exit(code)
	}))
}

// cluster is an embedded etcd and a replica set whose replicas each reach
// etcd through their own proxy, so one can be cut off alone.
type cluster struct {
	t       *testing.T
	set     *replicas.Set
	etcd    *etcdtest.Server
	proxies map[string]*etcdtest.Proxy
	byID    map[string]*replicas.Replica
}

// newCluster starts etcd and an empty replica set. Clean-up stops every
// replica (even after a failure), then, on failure, logs the timeline and
// the replicas' log tails.
func newCluster(t *testing.T, ttl, demoteTimeout time.Duration) *cluster {
	t.Helper()
	dir := t.TempDir()
	srv := etcdtest.Start(t)
	set, err := replicas.NewSet(binary, dir, "process-test", ttl, demoteTimeout)
	if err != nil {
		t.Fatalf("new set: %v", err)
	}
	c := &cluster{t: t, set: set, etcd: srv, proxies: map[string]*etcdtest.Proxy{}, byID: map[string]*replicas.Replica{}}
	// Cleanups run last-in first-out: the replicas stop first (while etcd
	// and the proxies still run), then the report, then etcd and the dir.
	t.Cleanup(func() {
		if t.Failed() {
			c.report()
		}
	})
	t.Cleanup(func() {
		set.Close(closeGrace)
		for _, p := range c.proxies {
			p.Close()
		}
		http.DefaultClient.CloseIdleConnections()
	})
	return c
}

// start starts a replica behind a new proxy.
func (c *cluster) start(id string, extra ...string) *replicas.Replica {
	c.t.Helper()
	// Not etcdtest.StartProxy: its t.Cleanup would close the proxy before
	// the replicas stop (cleanups run last-in first-out), and their
	// graceful stop would then wait out the etcd clean-up timeouts.
	p, err := etcdtest.NewProxy(c.etcd.Endpoint())
	if err != nil {
		c.t.Fatalf("proxy for %s: %v", id, err)
	}
	c.proxies[id] = p
	r, err := c.set.Start(id, p.Endpoint(), extra...)
	if err != nil {
		c.t.Fatalf("start %s: %v", id, err)
	}
	c.byID[id] = r
	return r
}

// startThree starts replicas a, b and c, waits until one of them is
// primary (promote hook ended) and the other two campaign on a lease, and
// returns the primary.
func (c *cluster) startThree(ctx context.Context) *replicas.Replica {
	c.t.Helper()
	for _, id := range []string{"a", "b", "c"} {
		c.start(id)
	}
	ctx, cancel := context.WithTimeout(ctx, electedTimeout)
	defer cancel()
	ev, err := c.set.WaitFor(ctx, timeline.First(0, timeline.Event{Hook: "promote", Phase: "end"}))
	if err != nil {
		c.t.Fatalf("no primary: %v", err)
	}
	primary := c.byID[ev.ID]
	waitStatus(ctx, c.t, primary, "primary serving", func(st sidecar.Status) bool {
		return st.Role == role.Primary && st.Phase == role.PhasePrimary
	})
	for id, r := range c.byID {
		if id != ev.ID {
			waitStatus(ctx, c.t, r, "standby campaigning on a lease", isCampaigningStandby)
		}
	}
	return primary
}

func isCampaigningStandby(st sidecar.Status) bool {
	return st.Role == role.Standby && st.Phase == role.PhaseCampaigning && st.Lease != nil
}

// timeline reads the timeline or fails the test.
func (c *cluster) timeline() []timeline.Event {
	c.t.Helper()
	evs, err := c.set.Timeline()
	if err != nil {
		c.t.Fatalf("timeline: %v", err)
	}
	return evs
}

// waitEvent waits up to bound for the first event at or after index from
// that matches want (see timeline.First) and also passes ok (nil: any).
func (c *cluster) waitEvent(ctx context.Context, bound time.Duration, from int, want timeline.Event, ok func(timeline.Event) bool) timeline.Event {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	ev, err := c.set.WaitFor(ctx, func(evs []timeline.Event) int {
		for i := from; i < len(evs); i++ {
			if i = timeline.First(i, want)(evs); i < 0 {
				return -1
			}
			if ok == nil || ok(evs[i]) {
				return i
			}
		}
		return -1
	})
	if err != nil {
		c.t.Fatalf("waiting for %s-%s (id %q, reason %q) within %s: %v", want.Hook, want.Phase, want.ID, want.Reason, bound, err)
	}
	return ev
}

func (c *cluster) report() {
	evs, err := c.set.Timeline()
	var b strings.Builder
	for _, e := range evs {
		b.WriteString("  " + e.String() + "\n")
	}
	c.t.Logf("timeline (err %v):\n%s", err, b.String())
	for _, id := range slices.Sorted(maps.Keys(c.byID)) {
		data, err := os.ReadFile(filepath.Join(c.set.Dir, id+".log"))
		if err != nil {
			c.t.Logf("log of %s: %v", id, err)
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > 60 {
			lines = lines[len(lines)-60:]
		}
		c.t.Logf("log of %s (last %d lines):\n%s", id, len(lines), strings.Join(lines, "\n"))
	}
}

// waitStatus polls GET /status until ok holds, bounded by ctx.
func waitStatus(ctx context.Context, t *testing.T, r *replicas.Replica, what string, ok func(sidecar.Status) bool) sidecar.Status {
	t.Helper()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var last sidecar.Status
	var lastErr error
	for {
		st, err := r.Status(ctx)
		if err == nil && ok(st) {
			return st
		}
		if err == nil {
			last = st
		}
		lastErr = err
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not %s: %v; last status %+v, last error %v", r.ID, what, ctx.Err(), last, lastErr)
		case <-tick.C:
		}
	}
}

// assertNoOverlap checks that no two tenures (promote start to demote end)
// of different replicas overlap; an open tenure lasts until now.
func assertNoOverlap(t *testing.T, tens []timeline.Tenure) {
	t.Helper()
	for _, o := range timeline.Overlaps(tens, timeline.Rules{OtherReplicasOnly: true}) {
		t.Error(o)
	}
}

// assertTokensIncrease checks that the fencing tokens of successive
// tenures, in order of their start, strictly increase.
func assertTokensIncrease(t *testing.T, tens []timeline.Tenure) {
	t.Helper()
	tens = slices.Clone(tens)
	slices.SortStableFunc(tens, func(x, y timeline.Tenure) int { return x.Start.Compare(y.Start) })
	for _, v := range timeline.TokenInversions(tens) {
		t.Error(v)
	}
}

// assertSafeTimeline is the invariant of every scenario without a frozen
// process. killed, if given, closes the tenures still open of replicas that
// were SIGKILLed at the given times: a killed replica's hooks cannot run,
// so its tenure ends at its death (docs/design.md, section 1: a crash
// takes the replica's app with it; otherwise only fencing protects).
func (c *cluster) assertSafeTimeline(killed map[string]time.Time) []timeline.Tenure {
	c.t.Helper()
	tens := timeline.Tenures(c.timeline())
	for i, x := range tens {
		if at, ok := killed[x.ID]; ok && x.End.IsZero() && x.Start.Before(at) {
			tens[i].End, tens[i].EndReason = at, "killed"
		}
	}
	assertNoOverlap(c.t, tens)
	assertTokensIncrease(c.t, tens)
	return tens
}

func otherThan(id string) func(timeline.Event) bool {
	return func(e timeline.Event) bool { return e.ID != id }
}

// TestSIGTERMPrimary: a gracefully stopped primary exits 0 after its
// demote, and the next primary promotes only after that demote ended,
// without waiting for the lease to expire.
func TestSIGTERMPrimary(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c := newCluster(t, ttl, demoteTimeout)
	primary := c.startThree(ctx)
	from := len(c.timeline())

	sent := time.Now()
	if err := primary.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	code, err := primary.Wait(exitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Errorf("%s exited %d after SIGTERM, want 0", primary.ID, code)
	}
	demoted := c.waitEvent(ctx, time.Second, from, timeline.Event{Hook: "demote", Phase: "end", ID: primary.ID, Reason: role.ReasonShutdown}, nil)
	next := c.waitEvent(ctx, ttl+2*time.Second, from, timeline.Event{Hook: "promote", Phase: "start"}, otherThan(primary.ID))
	t.Logf("SIGTERM to exit %s; SIGTERM to %s's promote %s", time.Since(sent).Round(time.Millisecond), next.ID, next.At.Sub(sent).Round(time.Millisecond))
	if !demoted.At.Before(next.At) {
		t.Errorf("%s's promote started at %s, before %s's demote ended at %s", next.ID, next.At.Format("15:04:05.000"), primary.ID, demoted.At.Format("15:04:05.000"))
	}
	// A resign hands over at once; waiting for the lease would take ~TTL.
	if handOff := next.At.Sub(sent); handOff > ttl/3 {
		t.Errorf("hand-off took %s, want under %s (TTL %s)", handOff, ttl/3, ttl)
	}
	c.assertSafeTimeline(nil)
}

// TestSIGKILLPrimary: a crashed primary cannot demote or resign; its lease
// expires on the server and another replica promotes within TTL + 1.5s.
func TestSIGKILLPrimary(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c := newCluster(t, ttl, demoteTimeout)
	primary := c.startThree(ctx)
	from := len(c.timeline())

	killed := time.Now()
	if err := primary.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL: %v", err)
	}
	if _, err := primary.Wait(exitTimeout); err != nil {
		t.Fatal(err)
	}
	bound := ttl + 1500*time.Millisecond
	next := c.waitEvent(ctx, bound+time.Second, from, timeline.Event{Hook: "promote", Phase: "start"}, otherThan(primary.ID))
	failover := next.At.Sub(killed)
	t.Logf("SIGKILL to %s's promote: %s", next.ID, failover.Round(time.Millisecond))
	if failover > bound {
		t.Errorf("failover took %s, want at most TTL + 1.5s = %s", failover, bound)
	}
	c.assertSafeTimeline(map[string]time.Time{primary.ID: killed})
}

// TestCutOffPrimary: a primary cut off from etcd steps down on its own
// safe deadline, before the server expires its lease, so its demote ends
// before anyone else promotes; healed, it comes back as a standby.
func TestCutOffPrimary(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c := newCluster(t, ttl, demoteTimeout)
	primary := c.startThree(ctx)
	from := len(c.timeline())

	cut := time.Now()
	c.proxies[primary.ID].CutOff()
	demoted := c.waitEvent(ctx, ttl, from, timeline.Event{Hook: "demote", Phase: "end", ID: primary.ID}, nil)
	if demoted.Reason != role.ReasonEtcdUnreachable {
		t.Errorf("%s demoted with reason %s, want %s", primary.ID, demoted.Reason, role.ReasonEtcdUnreachable)
	}
	next := c.waitEvent(ctx, ttl+3*time.Second, from, timeline.Event{Hook: "promote", Phase: "start"}, otherThan(primary.ID))
	t.Logf("cut-off to %s's demote end %s; to %s's promote %s",
		primary.ID, demoted.At.Sub(cut).Round(time.Millisecond), next.ID, next.At.Sub(cut).Round(time.Millisecond))
	if !demoted.At.Before(next.At) {
		t.Errorf("%s's promote started at %s, before cut-off %s's demote ended at %s", next.ID, next.At.Format("15:04:05.000"), primary.ID, demoted.At.Format("15:04:05.000"))
	}

	healed := time.Now()
	c.proxies[primary.ID].Heal()
	rctx, rcancel := context.WithTimeout(ctx, rejoinTimeout)
	defer rcancel()
	st := waitStatus(rctx, t, primary, "standby with a lease after heal", isCampaigningStandby)
	t.Logf("heal to %s standby with lease %s: %s", primary.ID, st.Lease.ID, time.Since(healed).Round(time.Millisecond))
	c.assertSafeTimeline(nil)
}

// TestSIGSTOPPrimary: a primary frozen for longer than its TTL cannot
// demote itself; the lease expires and another replica promotes with a
// higher fencing token. This is the one scenario where tenures may
// overlap: the frozen process still believes it is primary until it runs
// again, and only the fencing token lets the app reject its writes. Once
// resumed, it must stop serving at once and demote within a second, with
// reason lease-lost (etcd was reachable all along).
func TestSIGSTOPPrimary(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c := newCluster(t, ttl, demoteTimeout)
	primary := c.startThree(ctx)
	st, err := primary.Status(ctx)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	staleToken := st.FencingToken
	from := len(c.timeline())

	stopped := time.Now()
	if err := primary.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP: %v", err)
	}
	// Keep it frozen until another replica has taken over and serves as
	// primary: by then its lease has expired on the server (> TTL minus a
	// renew interval since the freeze).
	next := c.waitEvent(ctx, ttl+3*time.Second, from, timeline.Event{Hook: "promote", Phase: "end"}, otherThan(primary.ID))
	waitStatus(ctx, t, c.byID[next.ID], "primary serving", func(st sidecar.Status) bool {
		return st.Role == role.Primary && st.Phase == role.PhasePrimary
	})
	if next.Token <= staleToken {
		t.Errorf("new primary %s has fencing token %d, want more than the frozen primary's %d", next.ID, next.Token, staleToken)
	}

	// The fault is a freeze longer than the TTL. The promote above usually
	// comes later than that already (the lease outlives the last renewal,
	// up to a renew interval before the freeze, by the TTL); when it does
	// not, the freeze is topped up. This sets the fault's length, it
	// synchronises nothing.
	if rest := ttl + minFreezeExtra - time.Since(stopped); rest > 0 {
		hold := time.NewTimer(rest)
		<-hold.C
	}

	resumed := time.Now()
	if err := primary.Signal(syscall.SIGCONT); err != nil {
		t.Fatalf("SIGCONT: %v", err)
	}
	t.Logf("frozen for %s; %s promoted %s after the freeze", resumed.Sub(stopped).Round(time.Millisecond), next.ID, next.At.Sub(stopped).Round(time.Millisecond))
	// Its safe deadline passed while it was frozen, so /primary fails at
	// once, whatever the state machine has done yet.
	if code, err := primary.Get(ctx, "/primary"); err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("stale primary's /primary right after SIGCONT: %d, %v; want 503", code, err)
	}
	demoted := c.waitEvent(ctx, 3*time.Second, from, timeline.Event{Hook: "demote", Phase: "end", ID: primary.ID}, nil)
	t.Logf("SIGCONT to %s's demote end (reason %s): %s", primary.ID, demoted.Reason, demoted.At.Sub(resumed).Round(time.Millisecond))
	if d := demoted.At.Sub(resumed); d > time.Second {
		t.Errorf("stale primary's demote ended %s after SIGCONT, want within 1s", d)
	}
	if demoted.Token != staleToken {
		t.Errorf("stale primary's demote has fencing token %d, want its tenure's %d", demoted.Token, staleToken)
	}
	// etcd was reachable all along: the lease expired during the freeze.
	if demoted.Reason != role.ReasonLeaseLost {
		t.Errorf("stale primary demoted with reason %s, want %s", demoted.Reason, role.ReasonLeaseLost)
	}
	assertTokensIncrease(t, timeline.Tenures(c.timeline()))
}

// longDemote is a demote hook that, on shutdown, takes 1.5s and
// writes its start and end to the timeline in the example hooks' format.
const longDemote = `#!/bin/sh
set -eu
mark() {
	echo "$(date +%s%N) $LEADERD_EVENT-$1 $LEADERD_ID ${LEADERD_FENCING_TOKEN:--} $LEADERD_REASON" >>"$HOOK_TIMELINE"
}
mark start
if [ "$LEADERD_REASON" = shutdown ]; then
	sleep 1.5
fi
mark end
`

// TestSecondSIGTERMDuringDemote: a second SIGTERM cuts the etcd clean-up
// short but never interrupts a running demote hook: the process exits
// only after the hook ended, promptly, and with status 0 (a graceful stop
// whose clean-up was cut short is still a clean stop: the lease expires
// by itself).
func TestSecondSIGTERMDuringDemote(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	// demote-timeout 3s leaves room for the 1.5s hook. The lease guard then
	// needs TTL 10s: 10 - 3 - max(0.5, 1) = 6 >= 10/2.
	c := newCluster(t, 10*time.Second, 3*time.Second)
	script := filepath.Join(t.TempDir(), "long-demote.sh")
	if err := os.WriteFile(script, []byte(longDemote), 0o755); err != nil {
		t.Fatal(err)
	}
	r := c.start("a", "--on-demote", script)
	c.waitEvent(ctx, electedTimeout, 0, timeline.Event{Hook: "promote", Phase: "end", ID: "a"}, nil)
	from := len(c.timeline())

	exited := make(chan time.Time, 1)
	go func() {
		<-r.Done()
		exited <- time.Now()
	}()
	if err := r.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("first SIGTERM: %v", err)
	}
	c.waitEvent(ctx, 5*time.Second, from, timeline.Event{Hook: "demote", Phase: "start", ID: "a", Reason: role.ReasonShutdown}, nil)
	second := time.Now()
	if err := r.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("second SIGTERM: %v", err)
	}
	code, err := r.Wait(exitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	exit := <-exited
	if code != 0 {
		t.Errorf("exit status %d after a second SIGTERM, want 0", code)
	}
	// Had leaderd killed the hook, no end would come; had it exited
	// without waiting, the hook (its own process group) would still end,
	// after the exit.
	ended := c.waitEvent(ctx, 3*time.Second, from, timeline.Event{Hook: "demote", Phase: "end", ID: "a", Reason: role.ReasonShutdown}, nil).At
	t.Logf("second SIGTERM to demote end %s; demote end to exit %s", ended.Sub(second).Round(time.Millisecond), exit.Sub(ended).Round(time.Millisecond))
	if !second.Before(ended) {
		t.Errorf("the demote hook had ended (%s) before the second SIGTERM (%s): the test proved nothing",
			ended.Format("15:04:05.000"), second.Format("15:04:05.000"))
	}
	if exit.Before(ended) {
		t.Errorf("the process exited at %s, before its demote hook ended at %s", exit.Format("15:04:05.000"), ended.Format("15:04:05.000"))
	}
	if d := exit.Sub(ended); d > time.Second {
		t.Errorf("the process exited %s after its demote hook ended, want within 1s", d)
	}
	// The second signal reached leaderd and was acted on (not lost).
	logText, err := os.ReadFile(filepath.Join(c.set.Dir, "a.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(logText), "second signal: cutting etcd clean-up short") {
		t.Errorf("a's log does not show the second signal being handled")
	}
	c.assertSafeTimeline(nil)
}
