package sidecar

import (
	"context"
	"log/slog"
	"net"
	"os/exec"
	"testing"
	"time"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/hooks"
	"github.com/leaderd/leaderd/role"
)

func withFollow() replicaOption {
	return func(c *Config) { c.OnLeaderChange = "true" }
}

// startFollower starts a replica whose leader-change hook is recorded on
// the timeline as "leader-change" events carrying the leader's token.
func (c *cluster) startFollower(id, addr string) *replica {
	return c.start(id, withFollow(), withAdvertise(addr))
}

func TestLeaderChangeHookFollowsTheNewPrimary(t *testing.T) {
	c := newCluster(t)
	a := c.startFollower("a", "10.0.0.1:5432")
	first := c.tl.waitFor(t, "a's promote", match(0, event{ID: "a", Hook: "promote", Phase: "end"}))
	c.startFollower("b", "10.0.0.2:5432")
	c.startFollower("c", "10.0.0.3:5432")
	// The standbys follow the primary they find at start.
	for _, id := range []string{"b", "c"} {
		e := c.tl.waitFor(t, id+" following a", match(0, event{ID: id, Hook: "leader-change", Phase: "end"}))
		if e.Token != first.Token || !e.OK {
			t.Fatalf("%s followed token %d (ok=%v), want a's %d", id, e.Token, e.OK, first.Token)
		}
	}
	// a learns of itself through its own leader watch, which may trail the
	// standbys' under load; the address must show once it has.
	waitUntil(t, "a's status names a as leader", func() bool { return a.sc.Status().Leader != nil })
	if st := a.sc.Status(); st.Leader.Addr != "10.0.0.1:5432" {
		t.Fatalf("leader in status: %+v", st.Leader)
	}
	// The primary hands over; the remaining standby follows the new one,
	// and the new primary runs no leader-change hook for itself.
	evs, _ := c.tl.snapshot()
	if err := c.stop("a"); err != nil {
		t.Fatal(err)
	}
	next := c.tl.waitFor(t, "the next promote", match(len(evs), event{Hook: "promote", Phase: "end"}))
	other := map[string]string{"b": "c", "c": "b"}[next.ID]
	e := c.tl.waitFor(t, other+" following "+next.ID, func(evs []event) int {
		for i, e := range evs {
			if e.ID == other && e.Hook == "leader-change" && e.Phase == "start" && e.Token == next.Token {
				return i
			}
		}
		return -1
	})
	if e.Token <= first.Token {
		t.Fatalf("followed token %d after %d", e.Token, first.Token)
	}
	all, _ := c.tl.snapshot()
	for _, e := range all {
		if e.ID == next.ID && e.Hook == "leader-change" && e.Token == next.Token {
			t.Fatalf("the new primary ran the leader-change hook for itself:\n%s", formatEvents(all))
		}
	}
}

func withFollowCmd(cmd string) replicaOption {
	return func(c *Config) { c.OnLeaderChange = cmd }
}

func withPromoteTimeout(d time.Duration) replicaOption {
	return func(c *Config) { c.PromoteTimeout = d }
}

// withServedAPI serves the replica's API on a free loopback port and
// advertises that address, so hooks can ask the leader's /primary.
func withServedAPI(t *testing.T) replicaOption {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return func(c *Config) { c.Listen, c.Advertise, c.Version = addr, addr, "test" }
}

// followedTooEarly returns the index of the first leader-change start that
// is not preceded by a successful promote end of the same tenure (-1: none).
func followedTooEarly(evs []event) int {
	ended := map[int64]bool{}
	for i, e := range evs {
		switch {
		case e.Hook == "promote" && e.Phase == "end" && e.OK:
			ended[e.Token] = true
		case e.Hook == "leader-change" && e.Phase == "start" && !ended[e.Token]:
			return i
		}
	}
	return -1
}

// TestLeaderChangeHookWaitsForThePromote: a standby follows a new primary
// only once that primary's promote has ended, so a follow hook that asks
// the leader's /primary succeeds.
func TestLeaderChangeHookWaitsForThePromote(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	c := newCluster(t)
	// The promote takes a while: a hook fired at election time would
	// find the new primary not serving yet.
	slow := withPromote("sleep 1")
	follow := withFollowCmd(curl + ` -sf --noproxy '*' -o /dev/null "http://$LEADERD_LEADER_ADDR/primary"`)
	c.start("a", slow, follow, withServedAPI(t))
	first := c.tl.waitFor(t, "a's promote", match(0, event{ID: "a", Hook: "promote", Phase: "end"}))
	c.start("b", slow, follow, withServedAPI(t))
	c.start("c", slow, follow, withServedAPI(t))
	for _, id := range []string{"b", "c"} {
		e := c.tl.waitFor(t, id+" following a", match(0, event{ID: id, Hook: "leader-change", Phase: "end"}))
		if e.Token != first.Token || !e.OK {
			t.Fatalf("%s followed token %d (ok=%v), want a's %d", id, e.Token, e.OK, first.Token)
		}
	}
	evs, _ := c.tl.snapshot()
	if err := c.stop("a"); err != nil {
		t.Fatal(err)
	}
	next := c.tl.waitFor(t, "the next promote", match(len(evs), event{Hook: "promote", Phase: "start"}))
	other := map[string]string{"b": "c", "c": "b"}[next.ID]
	e := c.tl.waitFor(t, other+" following "+next.ID, func(evs []event) int {
		for i, e := range evs {
			if e.ID == other && e.Hook == "leader-change" && e.Phase == "end" && e.Token == next.Token {
				return i
			}
		}
		return -1
	})
	all, _ := c.tl.snapshot()
	if !e.OK {
		t.Errorf("%s's leader-change hook asking %s's /primary failed:\n%s", other, next.ID, formatEvents(all))
	}
	if i := followedTooEarly(all); i >= 0 {
		t.Errorf("%s started following before the promote of token %d ended:\n%s", all[i].ID, all[i].Token, formatEvents(all))
	}
}

// TestLeaderChangeHookCanceledWhenTheReplicaWins: a long leader-change hook
// on a standby does not hold up that standby's own promote when the
// primary goes: it is killed, and recorded as canceled.
func TestLeaderChangeHookCanceledWhenTheReplicaWins(t *testing.T) {
	c := newCluster(t)
	c.start("a")
	c.tl.waitFor(t, "a's promote", match(0, event{ID: "a", Hook: "promote", Phase: "end"}))
	// The hook would run a minute; without the cancel, b's promote would
	// wait for it.
	b := c.start("b", withFollowCmd("sleep 60"), withPromoteTimeout(time.Minute))
	c.tl.waitFor(t, "b following a", match(0, event{ID: "b", Hook: "leader-change", Phase: "start"}))
	evs, _ := c.tl.snapshot()
	stopped := time.Now()
	if err := c.stop("a"); err != nil {
		t.Fatal(err)
	}
	promote := c.tl.waitFor(t, "b's promote", match(len(evs), event{ID: "b", Hook: "promote", Phase: "start"}))
	t.Logf("a stopped to b's promote: %s", promote.At.Sub(stopped).Round(time.Millisecond))
	// Generous: a graceful hand-off takes well under a second.
	if d := promote.At.Sub(stopped); d > 5*time.Second {
		t.Errorf("b promoted %s after a stopped, want within 5s", d)
	}
	all, _ := c.tl.snapshot()
	ended := match(0, event{ID: "b", Hook: "leader-change", Phase: "end"})(all)
	if ended < 0 || all[ended].OK || ended > match(0, event{ID: "b", Hook: "promote", Phase: "start"})(all) {
		t.Fatalf("b's leader-change hook did not end, killed, before its promote:\n%s", formatEvents(all))
	}
	if h := b.sc.Status().Hooks["leader-change"]; !h.Canceled {
		t.Errorf("/status hooks[leader-change] = %+v, want canceled", h)
	}
}

// servingLeaderElector reports one member record, that of a primary whose
// promote has ended.
type servingLeaderElector struct {
	*fakeElector
	leader election.Member
}

func (e servingLeaderElector) WatchMember(ctx context.Context, id string, fn func(*election.Member, error)) {
	if id == e.leader.ID {
		m := e.leader
		fn(&m, nil)
	}
	<-ctx.Done()
}

// TestPromoteKillsARunningLeaderChangeHook: a promote (or demote) kills the
// leader-change hook holding the hook lock even while the leader it
// follows has not moved, instead of waiting for it to end.
func TestPromoteKillsARunningLeaderChangeHook(t *testing.T) {
	cl := newCalls()
	el := servingLeaderElector{
		fakeElector: &fakeElector{calls: cl, cands: make(chan *fakeCandidacy, 1)},
		leader:      election.Member{ID: "a", Role: role.Primary, Phase: role.PhasePrimary, FencingToken: 7},
	}
	promote := &fakeHook{calls: cl}
	cfg := DefaultConfig()
	cfg.Election, cfg.ID = "e", "me"
	s := newSidecar(cfg, slog.New(slog.DiscardHandler), el, promote, &fakeHook{calls: cl})
	s.follow = &fakeHook{calls: cl, block: make(chan struct{})} // ends only when killed
	s.state.setLeader([]election.Candidate{{CandidateValue: election.CandidateValue{ID: "a"}, CreateRevision: 7}})
	s.state.setPhase(role.PhaseCampaigning)

	ctx, cancel := context.WithCancel(context.Background())
	changed := make(chan struct{}, 1)
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		s.followLeader(ctx, el, changed)
	}()
	defer func() { cancel(); <-followed }()
	wake(changed)
	cl.waitFor(t, "leader-change elected token=7 leader=a", 1)

	ran := make(chan struct{})
	go func() {
		defer close(ran)
		s.runHook(context.Background(), hookRun{event: hooks.Promote, from: role.Standby, to: role.Primary, reason: role.ReasonElected, token: 8})
	}()
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("the promote waited behind the leader-change hook")
	}
	after(t, cl.waitFor(t, "promote elected", 1), "leader-change elected", "leader-change killed", "promote elected token=8")
	waitUntil(t, "the canceled run in /status", func() bool { return s.Status().Hooks["leader-change"].Canceled })
}

// TestLeaderChangeHookSkipsAFailedPromote: a primary whose promote fails is
// never followed; the one that then serves is.
func TestLeaderChangeHookSkipsAFailedPromote(t *testing.T) {
	c := newCluster(t)
	c.start("a", withPromote("false"), withFollow())
	failed := c.tl.waitFor(t, "a's failed promote", match(0, event{ID: "a", Hook: "promote", Phase: "end"}))
	if failed.OK {
		t.Fatalf("a's promote succeeded")
	}
	c.start("b", withFollow())
	next := c.tl.waitFor(t, "b's promote", match(0, event{ID: "b", Hook: "promote", Phase: "end"}))
	c.tl.waitFor(t, "a following b", func(evs []event) int {
		for i, e := range evs {
			if e.ID == "a" && e.Hook == "leader-change" && e.Phase == "end" && e.Token == next.Token {
				return i
			}
		}
		return -1
	})
	all, _ := c.tl.snapshot()
	if i := followedTooEarly(all); i >= 0 {
		t.Errorf("%s followed token %d, whose promote never succeeded (or had not yet):\n%s", all[i].ID, all[i].Token, formatEvents(all))
	}
}

// membersElector reports fixed member records by id.
type membersElector struct {
	*fakeElector
	records map[string]election.Member
}

func (e membersElector) WatchMember(ctx context.Context, id string, fn func(*election.Member, error)) {
	if m, ok := e.records[id]; ok {
		fn(&m, nil)
	}
	<-ctx.Done()
}

// startFollower runs only the follower of a standby sidecar with el's
// member records and a leader-change hook that ends only when killed.
func startFollower(t *testing.T, el elector, cl *calls, configure func(*Config)) (*Sidecar, chan struct{}) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Election, cfg.ID = "e", "me"
	if configure != nil {
		configure(&cfg)
	}
	s := newSidecar(cfg, slog.New(slog.DiscardHandler), el, &fakeHook{calls: cl}, &fakeHook{calls: cl})
	s.follow = &fakeHook{calls: cl, block: make(chan struct{})}
	s.state.setPhase(role.PhaseCampaigning)
	ctx, cancel := context.WithCancel(context.Background())
	changed := make(chan struct{}, 1)
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		s.followLeader(ctx, el, changed)
	}()
	t.Cleanup(func() { cancel(); <-followed })
	return s, changed
}

// TestLeaderChangeHookKilledWhenTheLeaderMoves: a leader-change hook still
// running when the leader it follows is replaced is killed, and the new
// leader is followed.
func TestLeaderChangeHookKilledWhenTheLeaderMoves(t *testing.T) {
	cl := newCalls()
	el := membersElector{
		fakeElector: &fakeElector{calls: cl, cands: make(chan *fakeCandidacy, 1)},
		records: map[string]election.Member{
			"a": {ID: "a", Role: role.Primary, Phase: role.PhasePrimary, FencingToken: 7},
			"b": {ID: "b", Role: role.Primary, Phase: role.PhasePrimary, FencingToken: 9},
		},
	}
	s, changed := startFollower(t, el, cl, nil)
	s.state.setLeader([]election.Candidate{{CandidateValue: election.CandidateValue{ID: "a"}, CreateRevision: 7}})
	wake(changed)
	cl.waitFor(t, "leader-change elected token=7 leader=a", 1)
	s.state.setLeader([]election.Candidate{{CandidateValue: election.CandidateValue{ID: "b"}, CreateRevision: 9}})
	wake(changed)
	log := cl.waitFor(t, "leader-change elected token=9 leader=b", 1)
	after(t, log, "leader-change elected token=7 leader=a", "leader-change killed", "leader-change elected token=9 leader=b")
}

// TestLeaderChangeHookFollowsAnOlderPrimary: a primary whose member record
// has no fencing token (a leaderd from before it was published) is still
// followed, once the wait for its promote's end has passed.
func TestLeaderChangeHookFollowsAnOlderPrimary(t *testing.T) {
	cl := newCalls()
	el := membersElector{
		fakeElector: &fakeElector{calls: cl, cands: make(chan *fakeCandidacy, 1)},
		records:     map[string]election.Member{"a": {ID: "a", Role: role.Primary, Phase: role.PhasePrimary}},
	}
	s, changed := startFollower(t, el, cl, func(c *Config) { c.PromoteTimeout = 100 * time.Millisecond })
	s.state.setLeader([]election.Candidate{{CandidateValue: election.CandidateValue{ID: "a"}, CreateRevision: 7}})
	wake(changed)
	cl.waitFor(t, "leader-change elected token=7 leader=a", 1)
}
