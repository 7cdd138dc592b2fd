package sidecar

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/hooks"
	"github.com/leaderd/leaderd/internal/etcdtest"
	"github.com/leaderd/leaderd/internal/timeline"
	"github.com/leaderd/leaderd/role"
)

func withPriority(n int) replicaOption { return func(c *Config) { c.Priority = n } }
func withFailback(d time.Duration) replicaOption {
	return func(c *Config) { c.FailbackAfter = d }
}

// peersWith is a read of the election where high (priority prio, healthy
// as given) campaigns behind "me".
func peersWith(prio int, healthy bool) election.Peers {
	me := election.Candidate{CandidateValue: election.CandidateValue{ID: "me", Priority: 50}, LeaseID: 0xabc, Key: "c/abc"}
	high := election.Candidate{CandidateValue: election.CandidateValue{ID: "high", Priority: prio}, LeaseID: 7, Key: "c/7"}
	return election.Peers{
		Candidates: []election.Candidate{me, high},
		Members:    map[string]*election.Member{"high": {ID: "high", Healthy: healthy, LeaseID: 7, Priority: prio}},
	}
}

func TestHigherTarget(t *testing.T) {
	all := func(election.Candidate) bool { return true }
	cases := []struct {
		name  string
		peers election.Peers
		want  string
	}{
		{"higher and healthy", peersWith(200, true), "high"},
		{"equal priority keeps the order", peersWith(50, true), ""},
		{"lower", peersWith(10, true), ""},
		{"unhealthy", peersWith(200, false), ""},
		{"no member record", func() election.Peers { p := peersWith(200, true); p.Members = nil; return p }(), ""},
		{"record on another lease", func() election.Peers { p := peersWith(200, true); p.Members["high"].LeaseID = 8; return p }(), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := higherTarget(tc.peers, "me", 50, all)
			if (tc.want == "") == ok || (ok && got.ID != tc.want) {
				t.Fatalf("target %q ok=%v, want %q", got.ID, ok, tc.want)
			}
		})
	}
	// The highest wins; among equals, the first in campaign order.
	p := peersWith(200, true)
	for _, id := range []string{"x", "y", "z"} {
		prio := 300
		if id == "x" {
			prio = 250
		}
		lease := int64(len(p.Candidates) + 10)
		p.Candidates = append(p.Candidates, election.Candidate{CandidateValue: election.CandidateValue{ID: id, Priority: prio}, LeaseID: lease})
		p.Members[id] = &election.Member{ID: id, Healthy: true, LeaseID: lease}
	}
	if got, _ := higherTarget(p, "me", 50, all); got.ID != "y" {
		t.Fatalf("target %q, want y (highest, first of the equals)", got.ID)
	}
	// One refused by allowed (back-off) gives way to the next best.
	if got, _ := higherTarget(p, "me", 50, func(c election.Candidate) bool { return c.ID != "y" && c.ID != "z" }); got.ID != "x" {
		t.Fatalf("target %q, want x", got.ID)
	}
}

func TestYieldBackOffGrowsAndResets(t *testing.T) {
	y := yieldBackOff{servedFor: time.Minute}
	t0 := time.Unix(1000, 0)
	if !y.allowed("t", t0) {
		t.Fatal("a first yield must be allowed")
	}
	want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second}
	now := t0
	for i, w := range want {
		if d := y.yielded("t", now); d != w {
			t.Fatalf("yield %d: back-off %s, want %s", i+1, d, w)
		}
		if y.allowed("t", now.Add(w-time.Millisecond)) {
			t.Fatalf("yield %d: allowed again before its back-off", i+1)
		}
		now = now.Add(w)
		if !y.allowed("t", now) {
			t.Fatalf("yield %d: not allowed after its back-off", i+1)
		}
	}
	// Capped.
	for range 20 {
		y.yielded("t", now)
	}
	if d := y.yielded("t", now); d != yieldBackOffMax {
		t.Fatalf("back-off %s, want the cap %s", d, yieldBackOffMax)
	}
	// The target served a while: allowed at once, and the next starts afresh.
	y.observeLeader("t", now.Add(time.Second))
	y.observeLeader("other", now.Add(time.Second+time.Minute))
	if !y.allowed("t", now.Add(2*time.Minute)) {
		t.Fatal("not allowed after the target served")
	}
	if d := y.yielded("t", now.Add(2*time.Minute)); d != yieldBackOffMin {
		t.Fatalf("after serving: back-off %s, want %s", d, yieldBackOffMin)
	}
	// Leading briefly (a failed promote, a flap) is not serving.
	now = now.Add(2 * time.Minute)
	y.observeLeader("t", now.Add(time.Second))
	y.observeLeader("", now.Add(2*time.Second))
	if y.allowed("t", now.Add(3*time.Second)) {
		t.Fatal("allowed after the target led for a second only")
	}
	// A long quiet starts afresh.
	later := now.Add(yieldQuiet + time.Second)
	if d := y.yielded("t", later); d != yieldBackOffMin {
		t.Fatalf("after a long quiet: back-off %s, want %s", d, yieldBackOffMin)
	}
}

func TestYieldBackOffBounded(t *testing.T) {
	var y yieldBackOff
	now := time.Unix(1000, 0)
	for i := range 3 * yieldTargetsMax {
		y.yielded(strings.Repeat("x", i+1), now.Add(time.Duration(i)*time.Millisecond))
	}
	if len(y.targets) > yieldTargetsMax {
		t.Fatalf("%d targets remembered, want at most %d", len(y.targets), yieldTargetsMax)
	}
}

// A lower-priority winner yields to the higher-priority campaigner once;
// when it wins again (the target failed its promote and is campaigning
// again), the back-off makes it promote instead of yielding in a loop.
func TestMachineYieldBackOffStopsALoop(t *testing.T) {
	m := startMachine(t, func(m *machine) {
		m.configure = func(c *Config) { c.Priority = 50 }
		m.el.peers = func() election.Peers { return peersWith(200, true) }
	})
	c := m.candidacy(t)
	m.calls.waitFor(t, "campaign", 1)
	c.win <- &fakeTenure{calls: m.calls, token: 10}
	m.calls.waitFor(t, "campaign", 2) // yielded: resigned, campaigning again on the same lease
	log, _ := m.calls.snapshot()
	after(t, log, "campaign", "resign", "campaign")
	grants := 0
	for _, l := range log {
		if strings.HasPrefix(l, "promote") || l == "close" {
			t.Fatalf("yielded with %q; log:\n  %s", l, strings.Join(log, "\n  "))
		}
		if l == "grant" {
			grants++
		}
	}
	if grants != 1 {
		t.Fatalf("%d leases granted, want the yield to keep its lease; log:\n  %s", grants, strings.Join(log, "\n  "))
	}
	m.win(t, c, 11) // the target did not take over: promote now
	log, _ = m.calls.snapshot()
	resigns := 0
	for _, l := range log {
		if l == "resign" {
			resigns++
		}
	}
	if resigns != 1 {
		t.Fatalf("%d yields before promoting, want 1; log:\n  %s", resigns, strings.Join(log, "\n  "))
	}
}

// An operator's switchover that names this replica is not undone by a
// yield to a higher priority.
func TestMachineNamedTargetDoesNotYield(t *testing.T) {
	m := startMachine(t, func(m *machine) {
		m.configure = func(c *Config) { c.Priority = 50 }
		m.el.peers = func() election.Peers { return peersWith(200, true) }
	})
	m.sc.state.nameTarget(time.Now(), time.Now().Add(time.Minute))
	m.win(t, m.candidacy(t), 10)
}

// lowWinsWhileHighCampaigns sets up: p primary, then low and high
// campaigning behind it in that order, and stops p gracefully so that low
// is next in line. It returns the timeline index after p's demote.
func lowWinsWhileHighCampaigns(t *testing.T, c *cluster, lowPrio, highPrio int, highOpts ...replicaOption) int {
	t.Helper()
	c.start("p")
	c.tl.waitFor(t, "p promoted", match(0, event{ID: "p", Hook: hooks.Promote, Phase: timeline.PhaseEnd}))
	p := c.replica("p")
	c.start("low", withPriority(lowPrio))
	waitUntil(t, "low campaigns", func() bool { return len(p.sc.state.candidatesSnapshot()) == 2 })
	c.start("high", append([]replicaOption{withPriority(highPrio)}, highOpts...)...)
	waitUntil(t, "high campaigns behind low", func() bool {
		got := p.sc.state.candidatesSnapshot()
		return len(got) == 3 && got[1] == "low" && got[2] == "high"
	})
	// The yield needs high's member record on its candidate's lease: the
	// record is published beside the campaign, so wait for it rather than
	// race it.
	store := election.NewStore(etcdtest.NewClient(t, c.etcd.Endpoint()), DefaultConfig().Prefix, "test")
	waitUntil(t, "high published a healthy record", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		peers, err := store.ReadPeers(ctx)
		if err != nil || len(peers.Candidates) != 3 {
			return false
		}
		high, m := peers.Candidates[2], peers.Members["high"]
		return high.ID == "high" && high.Priority == highPrio && m != nil && m.Healthy && m.LeaseID == high.LeaseID
	})
	// Counted before the stop: the next promote may land before stop returns.
	evs, _ := c.tl.snapshot()
	if err := c.stop("p"); err != nil {
		t.Fatalf("stop p: %v", err)
	}
	return len(evs)
}

func promotesBy(evs []event, id string) int {
	n := 0
	for _, e := range evs {
		if e.ID == id && e.Is(hooks.Promote, timeline.PhaseStart) {
			n++
		}
	}
	return n
}

func TestPriorityLowerWinnerYieldsWithoutPromoting(t *testing.T) {
	c := newCluster(t)
	from := lowWinsWhileHighCampaigns(t, c, 50, 200)
	c.tl.waitFor(t, "high promoted", match(from, event{ID: "high", Hook: hooks.Promote, Phase: timeline.PhaseEnd}))
	waitUntil(t, "high primary", func() bool { return c.replica("high").sc.Status().Phase == role.PhasePrimary })
	evs, _ := c.tl.snapshot()
	if n := promotesBy(evs, "low"); n != 0 {
		t.Fatalf("low ran its promote %d times; it must yield without promoting:\n%s", n, formatEvents(evs))
	}
	assertNoOverlap(t, evs)
	if st := c.replica("low").sc.Status(); st.Role != role.Standby || st.Phase != role.PhaseCampaigning {
		t.Fatalf("low: role %s phase %s, want a campaigning standby", st.Role, st.Phase)
	}
	assertMetric(t, scrape(t, c.replica("low").sc),
		`leaderd_yields_total{election="test",id="low",kind="win"} 1`,
		`leaderd_yields_total{election="test",id="low",kind="failback"} 0`,
		`leaderd_priority{election="test",id="low"} 50`)
}

func TestPriorityEqualKeepsCampaignOrder(t *testing.T) {
	c := newCluster(t)
	from := lowWinsWhileHighCampaigns(t, c, 100, 100)
	c.tl.waitFor(t, "low promoted", match(from, event{ID: "low", Hook: hooks.Promote, Phase: timeline.PhaseEnd}))
	evs, _ := c.tl.snapshot()
	if n := promotesBy(evs, "high"); n != 0 {
		t.Fatalf("high promoted with an equal priority:\n%s", formatEvents(evs))
	}
}

// The target's promote always fails: the winner yields once, then
// promotes itself, and the target's failures do not cycle the role.
func TestPriorityFailingTargetNoYieldLoop(t *testing.T) {
	c := newCluster(t)
	from := lowWinsWhileHighCampaigns(t, c, 50, 200, withPromote("false"))
	c.tl.waitFor(t, "low promoted", match(from, event{ID: "low", Hook: hooks.Promote, Phase: timeline.PhaseEnd, OK: true}))
	waitUntil(t, "low primary", func() bool { return c.replica("low").sc.Status().Phase == role.PhasePrimary })
	evs, _ := c.tl.snapshot()
	if n := promotesBy(evs, "high"); n > 2 {
		t.Fatalf("high's failing promote ran %d times before low took over:\n%s", n, formatEvents(evs))
	}
	// low stays primary: high keeps failing nothing while it only campaigns.
	tenure := c.replica("low").sc.Status().FencingToken
	for range 3 * int(yieldBackOffMin/time.Second) {
		time.Sleep(time.Second)
		if st := c.replica("low").sc.Status(); st.Phase != role.PhasePrimary || st.FencingToken != tenure {
			t.Fatalf("low lost the role: phase %s token %d (was %d)", st.Phase, st.FencingToken, tenure)
		}
	}
	assertNoOverlap(t, evs)
}

// primaryWithHigherCampaigner starts low (priority 50) as primary, then
// high (200), and returns when low's leader watch sees high campaign.
func primaryWithHigherCampaigner(t *testing.T, c *cluster, lowOpts ...replicaOption) time.Time {
	t.Helper()
	c.start("low", append([]replicaOption{withPriority(50)}, lowOpts...)...)
	c.tl.waitFor(t, "low promoted", match(0, event{ID: "low", Hook: hooks.Promote, Phase: timeline.PhaseEnd}))
	waitUntil(t, "low primary", func() bool { return c.replica("low").sc.Status().Phase == role.PhasePrimary })
	started := time.Now()
	c.start("high", withPriority(200))
	waitUntil(t, "high campaigns", func() bool { return len(c.replica("low").sc.state.candidatesSnapshot()) == 2 })
	return started
}

func TestFailbackOffNeverHandsOver(t *testing.T) {
	c := newCluster(t)
	primaryWithHigherCampaigner(t, c)
	// A negative claim needs a window: three times the failback duration
	// the next test uses.
	time.Sleep(6 * time.Second)
	evs, _ := c.tl.snapshot()
	if n := promotesBy(evs, "high"); n != 0 {
		t.Fatalf("high promoted with --failback off:\n%s", formatEvents(evs))
	}
	if st := c.replica("low").sc.Status(); st.Phase != role.PhasePrimary {
		t.Fatalf("low phase %s, want primary", st.Phase)
	}
}

func TestFailbackAfterHandsOverOnlyAfterItsDuration(t *testing.T) {
	const after = 2 * time.Second
	c := newCluster(t)
	started := primaryWithHigherCampaigner(t, c, withFailback(after))
	demote := c.tl.waitFor(t, "low hands over", match(0, event{ID: "low", Hook: hooks.Demote, Phase: timeline.PhaseStart, Reason: role.ReasonSwitchover}))
	promote := c.tl.waitFor(t, "high promoted", match(0, event{ID: "high", Hook: hooks.Promote, Phase: timeline.PhaseStart}))
	if demote.At.Sub(started) < after {
		t.Fatalf("low handed over %s after high started, before --failback after=%s", demote.At.Sub(started), after)
	}
	if promote.At.Before(demote.At) {
		t.Fatal("high promoted before low's demote")
	}
	evs, _ := c.tl.snapshot()
	assertNoOverlap(t, evs)
	waitUntil(t, "high primary", func() bool { return c.replica("high").sc.Status().Phase == role.PhasePrimary })
	assertMetric(t, scrape(t, c.replica("low").sc),
		`leaderd_yields_total{election="test",id="low",kind="failback"} 1`)
}

func TestParseFailback(t *testing.T) {
	for in, want := range map[string]time.Duration{"off": 0, " off ": 0, "after=90s": 90 * time.Second, "after=1h": time.Hour} {
		if got, err := ParseFailback(in); err != nil || got != want {
			t.Errorf("ParseFailback(%q) = %s, %v; want %s", in, got, err, want)
		}
		if want > 0 && FailbackText(want) != "after="+want.String() {
			t.Errorf("FailbackText(%s) = %q", want, FailbackText(want))
		}
	}
	for _, in := range []string{"", "on", "after=", "after=0", "after=-5s", "after=5", "AFTER=5s", "after 5s"} {
		if _, err := ParseFailback(in); err == nil {
			t.Errorf("ParseFailback(%q): no error", in)
		}
	}
}

// TestFailbackCheck drives one tenure's failback with explicit times: a
// higher candidate is handed the role only once its key has been seen for
// the duration, not while it is in yield back-off, and a new key (a
// restart, an unhealthy spell) starts its clock over.
func TestFailbackCheck(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Election, cfg.ID, cfg.Priority, cfg.FailbackAfter = "e", "me", 50, 10*time.Second
	cl := newCalls()
	peers := peersWith(200, true)
	el := &fakeElector{calls: cl, peers: func() election.Peers { return peers }}
	s := newSidecar(cfg, slog.New(slog.DiscardHandler), el, nil, nil)
	s.state.setLeader(peers.Candidates)
	fb := s.newFailback(el, 42)
	defer fb.stop()
	ctx := context.Background()
	puts := func() int {
		log, _ := cl.snapshot()
		n := 0
		for _, l := range log {
			if l == "put request to=high" {
				n++
			}
		}
		return n
	}
	t0 := time.Now()
	fb.check(ctx, t0)
	fb.check(ctx, t0.Add(9*time.Second))
	if n := puts(); n != 0 {
		t.Fatalf("%d requests before the duration", n)
	}
	// The key changes (high restarted): its clock starts over.
	peers.Candidates[1].Key, peers.Candidates[1].LeaseID = "c/8", 8
	peers.Members["high"].LeaseID = 8
	s.state.setLeader(peers.Candidates)
	fb.check(ctx, t0.Add(9*time.Second))
	fb.check(ctx, t0.Add(12*time.Second))
	if n := puts(); n != 0 {
		t.Fatalf("%d requests 3s after a new key", n)
	}
	// Due at 19s, but in back-off until 16s + 5s.
	s.state.yielded("high", yieldAtWin, t0.Add(16*time.Second))
	fb.check(ctx, t0.Add(20*time.Second))
	if n := puts(); n != 0 {
		t.Fatalf("%d requests while high is in back-off", n)
	}
	fb.check(ctx, t0.Add(21*time.Second))
	if n := puts(); n != 1 {
		t.Fatalf("%d requests once due and out of back-off, want 1", n)
	}
	el.mu.Lock()
	r := el.requests[0]
	el.mu.Unlock()
	at := t0.Add(21 * time.Second)
	if r.From != "me" || r.FencingToken != 42 || r.To != "high" || !r.Requested.Equal(at.UTC()) || !r.Expires.Equal(at.Add(s.failbackRequestTTL()).UTC()) {
		t.Fatalf("request %+v, want from me, token 42, to high, expiring %s after %s", r, s.failbackRequestTTL(), at)
	}
	// The request armed the back-off: no second one at once.
	fb.check(ctx, t0.Add(22*time.Second))
	if n := puts(); n != 1 {
		t.Fatalf("%d requests, want still 1", n)
	}
}

// TestServeFailbackWaitsForResumeAndPendingRequests: a primary with
// failback on asks for nothing while the election is paused or a request
// for its tenure is pending or scheduled, and asks once they are gone.
func TestServeFailbackWaitsForResumeAndPendingRequests(t *testing.T) {
	var highCampaigns atomic.Bool // before the win: nobody to yield to
	m := startMachine(t, func(m *machine) {
		m.configure = func(c *Config) { c.Priority, c.FailbackAfter = 50, 200*time.Millisecond }
		m.el.control = make(chan election.Control, 1)
		m.el.leaders = make(chan []election.Candidate, 1)
		m.el.peers = func() election.Peers {
			if highCampaigns.Load() {
				return peersWith(200, true)
			}
			return election.Peers{}
		}
	})
	m.el.control <- election.Control{}
	m.win(t, m.candidacy(t), 42)
	waitUntil(t, "primary", func() bool { return m.sc.Status().Phase == role.PhasePrimary })

	m.el.control <- election.Control{Paused: true}
	waitUntil(t, "paused", func() bool { return m.sc.Status().Paused })
	highCampaigns.Store(true)
	m.el.leaders <- peersWith(200, true).Candidates
	waitUntil(t, "high seen", func() bool { return len(m.sc.state.candidatesSnapshot()) == 2 })
	noRequestFor := func(what string, d time.Duration) {
		t.Helper()
		time.Sleep(d) // a negative claim needs a window: here 5 x --failback
		if log, _ := m.calls.snapshot(); hasPrefix(log, "put request") {
			t.Fatalf("failback asked for a switchover %s:\n  %s", what, strings.Join(log, "\n  "))
		}
	}
	noRequestFor("while paused", time.Second)

	pending := &election.Request{From: "me", FencingToken: 42, To: "other", Expires: time.Now().Add(time.Minute), Revision: 9}
	m.el.control <- election.Control{Switchover: pending}
	noRequestFor("while a request for its tenure is pending", time.Second)

	scheduled := &election.Request{From: "me", FencingToken: 42, To: "other", At: time.Now().Add(time.Minute),
		Expires: time.Now().Add(2 * time.Minute), Revision: 10}
	m.el.control <- election.Control{Switchover: scheduled}
	noRequestFor("while a switchover of its tenure is scheduled", time.Second)

	m.el.control <- election.Control{}
	m.calls.waitFor(t, "put request to=high", 1)
	if st := m.sc.Status(); st.Phase != role.PhasePrimary {
		t.Fatalf("phase %s: the request alone must not end the tenure", st.Phase)
	}
}

// primaryWithDueHigher makes "me" (priority 50, failback after 200ms) the
// primary with token 42, with the control reads and leader reads given
// by the test, and "high" (200) reading as a healthy campaigner.
func primaryWithDueHigher(t *testing.T, setup func(m *machine)) *machine {
	t.Helper()
	m := startMachine(t, func(m *machine) {
		m.configure = func(c *Config) { c.Priority, c.FailbackAfter = 50, 200*time.Millisecond }
		m.el.control = make(chan election.Control, 1)
		m.el.leaders = make(chan []election.Candidate, 1)
		if setup != nil {
			setup(m)
		}
	})
	m.el.control <- election.Control{}
	m.win(t, m.candidacy(t), 42)
	waitUntil(t, "primary", func() bool { return m.sc.Status().Phase == role.PhasePrimary })
	return m
}

// A failback whose fresh read could not confirm the target (a transient
// etcd error on its lease) tries again by itself: nothing else may ever
// wake serve while the target just keeps campaigning.
func TestServeFailbackRetriesAnUnconfirmedTarget(t *testing.T) {
	var failures atomic.Int32
	failures.Store(1)
	var high atomic.Bool
	m := primaryWithDueHigher(t, func(m *machine) {
		m.el.peers = func() election.Peers {
			if high.Load() {
				return peersWith(200, true)
			}
			return election.Peers{}
		}
		m.el.renewed = func(int64) (bool, error) {
			if failures.Add(-1) >= 0 {
				return false, errors.New("etcdserver: request timed out")
			}
			return true, nil
		}
	})
	high.Store(true)
	m.el.leaders <- peersWith(200, true).Candidates
	m.calls.waitFor(t, "put request to=high", 1)
}

// A request of this tenure that expires unanswered (here an operator's)
// blocks failback only while it is live: once it expired, by the clock
// alone, failback asks for its switchover.
func TestServeFailbackAfterAPendingRequestExpired(t *testing.T) {
	var high atomic.Bool // before the win: nobody to yield to
	m := primaryWithDueHigher(t, func(m *machine) {
		m.el.peers = func() election.Peers {
			if high.Load() {
				return peersWith(200, true)
			}
			return election.Peers{}
		}
	})
	high.Store(true)
	pending := &election.Request{From: "me", FencingToken: 42, To: "other", Expires: time.Now().Add(time.Second), Revision: 9}
	m.el.control <- election.Control{Switchover: pending}
	waitUntil(t, "the request seen", func() bool { return m.sc.controlState().Switchover != nil })
	m.el.leaders <- peersWith(200, true).Candidates
	m.calls.waitFor(t, "put request to=high", 1)
	if time.Now().Before(pending.Expires) {
		t.Fatal("failback asked while a request of its tenure was live")
	}
}

// With the memory full, a repeat yield to a remembered target keeps its
// back-off: room is made only for a new target, and never by forgetting
// the one yielded to.
func TestYieldBackOffFullKeepsTheRepeatedTarget(t *testing.T) {
	var y yieldBackOff
	now := time.Unix(1000, 0)
	y.yielded("a", now) // the oldest
	for i := 1; i < yieldTargetsMax; i++ {
		y.yielded(strings.Repeat("x", i), now.Add(time.Duration(i)*time.Millisecond))
	}
	later := now.Add(time.Minute)
	if d := y.yielded("a", later); d != 2*yieldBackOffMin {
		t.Fatalf("a repeat yield with the memory full armed %s, want %s (the first was forgotten)", d, 2*yieldBackOffMin)
	}
	if len(y.targets) > yieldTargetsMax {
		t.Fatalf("%d targets remembered, want at most %d", len(y.targets), yieldTargetsMax)
	}
}

// A switchover scheduled for later that names this replica does not stop
// a yield at a win before its at (a failover meanwhile): the request does
// nothing until it is due.
func TestMachineScheduledSwitchoverDoesNotNameBeforeItsAt(t *testing.T) {
	m := startMachine(t, func(m *machine) {
		m.configure = func(c *Config) { c.Priority = 50 }
		m.el.control = make(chan election.Control, 1)
		m.el.leaders = make(chan []election.Candidate, 1)
		m.el.peers = func() election.Peers { return peersWith(200, true) }
	})
	p := election.Candidate{CandidateValue: election.CandidateValue{ID: "p", Priority: 100}, LeaseID: 5, Key: "c/5", CreateRevision: 7}
	m.el.leaders <- append([]election.Candidate{p}, peersWith(200, true).Candidates...)
	req := &election.Request{From: "p", FencingToken: 7, To: "me", At: time.Now().Add(time.Hour), Expires: time.Now().Add(2 * time.Hour), Revision: 3}
	waitUntil(t, "p leads", func() bool { return m.sc.state.leadsNow(req) })
	m.el.control <- election.Control{Switchover: req}
	c := m.candidacy(t)
	m.calls.waitFor(t, "campaign", 1)
	c.win <- &fakeTenure{calls: m.calls, token: 10}
	m.calls.waitFor(t, "campaign", 2)
	log, _ := m.calls.snapshot()
	after(t, log, "campaign", "resign", "campaign")
	if hasPrefix(log, "promote") {
		t.Fatalf("promoted over a higher priority, named by a switchover not due for an hour; log:\n  %s", strings.Join(log, "\n  "))
	}
}

// noteNamed: a switchover naming this replica protects its win from its
// at, for failbackRequestTTL at most; one naming another replica, or
// another tenure than the leading one, names nobody.
func TestNoteNamedFromItsAt(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Election, cfg.ID = "e", "me"
	s := newSidecar(cfg, slog.New(slog.DiscardHandler), &fakeElector{calls: newCalls()}, nil, nil)
	p := election.Candidate{CandidateValue: election.CandidateValue{ID: "p"}, CreateRevision: 7}
	s.state.setLeader([]election.Candidate{p})
	t0 := time.Now()
	window := s.failbackRequestTTL()

	s.noteNamed(&election.Request{From: "p", FencingToken: 8, To: "me", Expires: t0.Add(time.Hour)}, t0)
	s.noteNamed(&election.Request{From: "p", FencingToken: 7, To: "other", Expires: t0.Add(time.Hour)}, t0)
	if s.state.namedTarget(t0) {
		t.Fatal("named by a stale request or one for another target")
	}
	at := t0.Add(10 * time.Minute)
	s.noteNamed(&election.Request{From: "p", FencingToken: 7, To: "me", At: at, Expires: at.Add(time.Hour)}, t0)
	for _, c := range []struct {
		at   time.Time
		want bool
	}{{t0, false}, {at.Add(-time.Second), false}, {at, true}, {at.Add(window - time.Second), true}, {at.Add(window), false}} {
		if got := s.state.namedTarget(c.at); got != c.want {
			t.Errorf("named at %s after the request was seen: %v, want %v", c.at.Sub(t0), got, c.want)
		}
	}
	// Due now: named at once, until its expiry when that comes first.
	s.noteNamed(&election.Request{From: "p", FencingToken: 7, To: "me", Expires: t0.Add(time.Second)}, t0)
	if !s.state.namedTarget(t0) || s.state.namedTarget(t0.Add(time.Second)) {
		t.Fatal("a due request: want named now and until its expiry")
	}
}
