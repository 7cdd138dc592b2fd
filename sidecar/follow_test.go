package sidecar

import (
	"testing"
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
	if st := a.sc.Status(); st.Leader == nil || st.Leader.Addr != "10.0.0.1:5432" {
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
