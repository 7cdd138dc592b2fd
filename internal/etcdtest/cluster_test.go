package etcdtest

import (
	"context"
	"testing"
	"time"
)

// An isolated member loses its leader while the others keep one and
// serve writes; rejoined, it follows the leader again.
func TestClusterIsolateAndRejoin(t *testing.T) {
	c := StartCluster(t, 3)
	lead := waitFor(t, "a leader all members agree on", func() int {
		l := c.Leader(0)
		if l >= 0 && c.Leader(1) == l && c.Leader(2) == l {
			return l
		}
		return -1
	})
	iso := (lead + 1) % 3
	c.Isolate(iso)
	waitFor(t, "the isolated member to lose its leader", func() int {
		if c.Leader(iso) == -1 {
			return 0
		}
		return -1
	})
	cli := NewClient(t, c.Endpoint(lead))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatalf("the majority does not serve writes: %v", err)
	}
	c.Rejoin(iso)
	waitFor(t, "the rejoined member to follow a leader", func() int {
		if l := c.Leader(iso); l >= 0 {
			return l
		}
		return -1
	})
}

// waitFor polls cond (bounded) until it returns a value >= 0.
func waitFor(t *testing.T, what string, cond func() int) int {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(20 * time.Millisecond) // raft state has no event to wait on here
	defer tick.Stop()
	for {
		if v := cond(); v >= 0 {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}
