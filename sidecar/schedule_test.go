package sidecar

import (
	"slices"
	"testing"
	"time"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/role"
)

// schedule stores a switchover from the tenure from to to, due at at.
func (c *cluster) schedule(t *testing.T, from event, to string, at, expires time.Time) {
	t.Helper()
	cli, ctx := c.client(t)
	r := election.Request{From: from.ID, FencingToken: from.Token, To: to, Requested: time.Now(), At: at, Expires: expires}
	if err := election.NewStore(cli, "/leaderd", "test").PutRequest(ctx, r); err != nil {
		t.Fatal(err)
	}
}

// startInOrder starts a, b and c one after another (campaign order a, b,
// c) and returns a's promote.
func startInOrder(t *testing.T, c *cluster) event {
	t.Helper()
	c.start("a")
	a := c.tl.waitFor(t, "a's promote", match(0, event{ID: "a", Hook: "promote", Phase: "end"}))
	c.start("b")
	waitUntil(t, "b campaigning", func() bool { return c.replica("b").sc.Status().Lease != nil })
	c.start("c")
	waitUntil(t, "c campaigning", func() bool {
		return slices.Equal(c.replica("a").sc.state.candidatesSnapshot(), []string{"a", "b", "c"}) &&
			c.replica("c").sc.Status().Phase == role.PhaseCampaigning
	})
	return a
}

// holdsUntil fails unless every replica keeps the phase given until
// the deadline (checked every 20ms) and no hook starts meanwhile.
func (c *cluster) holdsUntil(t *testing.T, deadline time.Time, phases map[string]role.Phase) {
	t.Helper()
	evs, _ := c.tl.snapshot()
	from := len(evs)
	for time.Now().Before(deadline) {
		for id, want := range phases {
			if got := c.replica(id).sc.Status().Phase; got != want {
				t.Fatalf("%s is %s before the switchover is due, want %s", id, got, want)
			}
		}
		if evs, _ := c.tl.snapshot(); len(evs) > from {
			t.Fatalf("a hook ran before the switchover was due:\n%s", formatEvents(evs[from:]))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A scheduled switchover changes nothing before its at: the primary
// serves, the bystander campaigns. At its at it takes effect with nothing
// changing in etcd then, so only the replicas' timers can have woken them
// (no polling): the primary steps down and the target, past the bystander,
// promotes, soon after at and not before.
func TestScheduledSwitchoverTakesEffectAtItsTime(t *testing.T) {
	c := newCluster(t)
	a := startInOrder(t, c)
	at := time.Now().Add(1500 * time.Millisecond)
	c.schedule(t, a, "c", at, at.Add(30*time.Second))
	c.holdsUntil(t, at.Add(-100*time.Millisecond), map[string]role.Phase{
		"a": role.PhasePrimary, "b": role.PhaseCampaigning, "c": role.PhaseCampaigning,
	})

	demote := c.tl.waitFor(t, "a's demote", match(0, event{ID: "a", Hook: "demote", Phase: "start", Reason: role.ReasonSwitchover}))
	promote := c.tl.waitFor(t, "c's promote", match(0, event{ID: "c", Hook: "promote", Phase: "start"}))
	if demote.At.Before(at) {
		t.Fatalf("a's demote began %s before the switchover's at", at.Sub(demote.At))
	}
	if late := promote.At.Sub(at); late < 0 || late > time.Second {
		t.Fatalf("c promoted %s after the switchover's at, want within 1s and not before", late)
	}
	c.waitRequestCleared(t)
	evs, _ := c.tl.snapshot()
	for _, e := range evs {
		if e.ID == "b" && e.Hook == "promote" {
			t.Fatalf("b promoted during a switchover to c:\n%s", formatEvents(evs))
		}
	}
	assertNoOverlap(t, evs)
}

// A request scheduled for the year 9999, for the tenure that leads, does
// nothing at all: nobody yields, and when the primary goes the next
// replica takes over at once.
func TestFarScheduledSwitchoverDoesNothing(t *testing.T) {
	c := newCluster(t)
	a := startInOrder(t, c)
	far := time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	c.schedule(t, a, "c", far, far.Add(time.Hour))
	// The replicas have read the request: the control watch woke them.
	waitUntil(t, "the request read by all", func() bool {
		for _, id := range []string{"a", "b", "c"} {
			if c.replica(id).sc.controlState().Switchover == nil {
				return false
			}
		}
		return true
	})
	c.holdsUntil(t, time.Now().Add(500*time.Millisecond), map[string]role.Phase{
		"a": role.PhasePrimary, "b": role.PhaseCampaigning, "c": role.PhaseCampaigning,
	})
	stopped := time.Now()
	if err := c.stop("a"); err != nil {
		t.Fatal(err)
	}
	next := c.tl.waitFor(t, "b's promote", match(0, event{ID: "b", Hook: "promote", Phase: "start"}))
	if took := next.At.Sub(stopped); took > 2*testTTL {
		t.Fatalf("b promoted %s after the primary stopped, want within 2 TTLs", took)
	}
}

// A resign request with an at (written by another tool: the CLI schedules
// only switchovers) is answered at its at and not before: the primary's
// serve loop wakes on its own timer.
func TestScheduledResignWaitsForItsTime(t *testing.T) {
	c := newCluster(t)
	a := startInOrder(t, c)
	at := time.Now().Add(time.Second)
	c.schedule(t, a, "", at, at.Add(30*time.Second))
	c.holdsUntil(t, at.Add(-100*time.Millisecond), map[string]role.Phase{"a": role.PhasePrimary})
	demote := c.tl.waitFor(t, "a's demote", match(0, event{ID: "a", Hook: "demote", Phase: "start", Reason: role.ReasonResigned}))
	if late := demote.At.Sub(at); late < 0 || late > time.Second {
		t.Fatalf("a's demote began %s after the resign's at, want within 1s and not before", late)
	}
	c.waitRequestCleared(t)
}
