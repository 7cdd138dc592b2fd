package process

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/leaderd/leaderd/internal/replicas"
	"github.com/leaderd/leaderd/internal/timeline"
	"github.com/leaderd/leaderd/role"
	"github.com/leaderd/leaderd/sidecar"
)

// Priority and failback with real processes: see README.md, "Priority and
// failback".

func prio(n string, extra ...string) []string { return append([]string{"--priority", n}, extra...) }

// startPrimaryThen starts first alone and waits until it serves as
// primary, then starts the others in order, each campaigning before the
// next starts (so the campaign order is theirs). It returns the primary.
func (c *cluster) startPrimaryThen(ctx context.Context, first string, firstFlags []string, others ...replicaFlags) *replicas.Replica {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, electedTimeout+time.Duration(len(others))*electedTimeout)
	defer cancel()
	primary := c.start(first, firstFlags...)
	waitStatus(ctx, c.t, primary, "primary serving", func(st sidecar.Status) bool {
		return st.Role == role.Primary && st.Phase == role.PhasePrimary
	})
	for _, o := range others {
		r := c.start(o.id, o.flags...)
		waitStatus(ctx, c.t, r, "standby campaigning on a lease", isCampaigningStandby)
	}
	return primary
}

// replicaFlags is a replica to start, with its extra flags.
type replicaFlags struct {
	id    string
	flags []string
}

// promotes counts the promote starts of id (any id when empty) at or after
// index from.
func promotes(evs []timeline.Event, from int, id string) int {
	n := 0
	for _, e := range evs[from:] {
		if e.Is("promote", timeline.PhaseStart) && (id == "" || e.ID == id) {
			n++
		}
	}
	return n
}

// TestPriorityHighestWinsAfterSIGKILL: the primary crashes; b is next in
// campaign order but c has the higher priority: b yields without
// promoting and c takes over.
func TestPriorityHighestWinsAfterSIGKILL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c := newCluster(t, ttl, demoteTimeout)
	primary := c.startPrimaryThen(ctx, "a", prio("100"),
		replicaFlags{"b", prio("100")}, replicaFlags{"c", prio("200")})
	from := len(c.timeline())

	killed := time.Now()
	if err := primary.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL: %v", err)
	}
	if _, err := primary.Wait(exitTimeout); err != nil {
		t.Fatal(err)
	}
	next := c.waitEvent(ctx, ttl+5*time.Second, from, timeline.Event{Hook: "promote", Phase: "end"}, otherThan("a"))
	if next.ID != "c" {
		t.Fatalf("%s promoted after the crash, want c (priority 200)", next.ID)
	}
	waitStatus(ctx, t, c.byID["c"], "primary serving", func(st sidecar.Status) bool { return st.Phase == role.PhasePrimary })
	if n := promotes(c.timeline(), from, "b"); n != 0 {
		t.Errorf("b ran its promote %d times; it must yield to c without promoting", n)
	}
	if st := waitStatus(ctx, t, c.byID["b"], "a campaigning standby", isCampaigningStandby); st.Priority != 100 {
		t.Errorf("b's /status priority %d, want 100", st.Priority)
	}
	t.Logf("crash to c's promote end: %s", next.At.Sub(killed).Round(time.Millisecond))
	c.assertSafeTimeline(map[string]time.Time{"a": killed})
}

// TestPriorityFlappingReplicaNoSwitchoverStorm: a higher-priority replica
// that keeps crashing and restarting while a lower one is primary (with
// failback on) never lives as long as the failback duration, so nothing
// is handed over; once it stays up, exactly one switchover hands it the
// role.
func TestPriorityFlappingReplicaNoSwitchoverStorm(t *testing.T) {
	// c lives 2s at a time, less than the failback duration, then stays
	// dead for 1.5s; its killed lease lingers up to a TTL, so each dead key
	// and its record come due while still in etcd: only the lease, no
	// longer renewed, tells it is dead.
	const after = 3 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 2*testTimeout)
	defer cancel()
	c := newCluster(t, ttl, demoteTimeout)
	failback := []string{"--failback", "after=" + after.String()}
	c.startPrimaryThen(ctx, "a", prio("50", failback...), replicaFlags{"b", prio("50", failback...)})
	from := len(c.timeline())

	const flaps = 5
	for i := range flaps {
		var r *replicas.Replica
		if i == 0 {
			r = c.start("c", prio("200", failback...)...)
		} else {
			r = c.restart("c", prio("200", failback...)...)
		}
		time.Sleep(2 * time.Second)
		if err := r.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("SIGKILL c: %v", err)
		}
		if _, err := r.Wait(exitTimeout); err != nil {
			t.Fatal(err)
		}
		// Dead for a while: its key and record stay, and come due.
		time.Sleep(1500 * time.Millisecond)
	}
	evs := c.timeline()
	if n := promotes(evs, from, ""); n != 0 {
		t.Fatalf("%d promotes while c flapped, want none", n)
	}
	// c stays up: one switchover hands it the role, after the duration.
	up := time.Now()
	c.restart("c", prio("200", failback...)...)
	demote := c.waitEvent(ctx, after+3*ttl+5*time.Second, from, timeline.Event{Hook: "demote", Phase: "start", ID: "a", Reason: role.ReasonSwitchover}, nil)
	if d := demote.At.Sub(up); d < after {
		t.Errorf("a handed over %s after c came up for good, before --failback after=%s", d, after)
	}
	c.waitEvent(ctx, 2*ttl, from, timeline.Event{Hook: "promote", Phase: "end", ID: "c"}, nil)
	waitStatus(ctx, t, c.byID["c"], "primary serving", func(st sidecar.Status) bool { return st.Phase == role.PhasePrimary })
	// A settling window: no further role change follows.
	time.Sleep(after)
	evs = c.timeline()
	if n := promotes(evs, from, ""); n != 1 {
		t.Errorf("%d promotes in all, want exactly c's one", n)
	}
	c.assertSafeTimeline(nil)
}

// TestFailbackOnlyAfterItsDuration: with --failback off a lower-priority
// primary keeps the role however long a higher one campaigns; with
// after=D it hands over by a switchover, no sooner than D after the
// higher one started.
func TestFailbackOnlyAfterItsDuration(t *testing.T) {
	const after = 3 * time.Second
	t.Run("off", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		c := newCluster(t, ttl, demoteTimeout)
		c.startPrimaryThen(ctx, "a", prio("50"), replicaFlags{"c", prio("200")})
		from := len(c.timeline())
		// A negative claim needs a window: twice the duration the other
		// case hands over after.
		time.Sleep(2 * after)
		if n := promotes(c.timeline(), from, ""); n != 0 {
			t.Fatalf("%d promotes with --failback off, want none", n)
		}
		waitStatus(ctx, t, c.byID["a"], "still primary", func(st sidecar.Status) bool { return st.Phase == role.PhasePrimary })
	})
	t.Run("after", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		c := newCluster(t, ttl, demoteTimeout)
		failback := []string{"--failback", "after=" + after.String()}
		c.startPrimaryThen(ctx, "a", prio("50", failback...))
		from := len(c.timeline())
		started := time.Now()
		c.start("c", prio("200", failback...)...)
		demote := c.waitEvent(ctx, after+3*ttl+5*time.Second, from, timeline.Event{Hook: "demote", Phase: "end", ID: "a", Reason: role.ReasonSwitchover}, nil)
		promote := c.waitEvent(ctx, 2*ttl, from, timeline.Event{Hook: "promote", Phase: "start", ID: "c"}, nil)
		if d := demote.At.Sub(started); d < after {
			t.Errorf("a handed over %s after c started, before --failback after=%s", d, after)
		}
		if !demote.At.Before(promote.At) {
			t.Errorf("c's promote started at %s, before a's demote ended at %s", promote.At.Format("15:04:05.000"), demote.At.Format("15:04:05.000"))
		}
		waitStatus(ctx, t, c.byID["c"], "primary serving", func(st sidecar.Status) bool { return st.Phase == role.PhasePrimary })
		c.assertSafeTimeline(nil)
	})
}

// restart starts id again behind its proxy, after it exited.
func (c *cluster) restart(id string, extra ...string) *replicas.Replica {
	c.t.Helper()
	r, err := c.set.Start(id, c.proxies[id].Endpoint(), extra...)
	if err != nil {
		c.t.Fatalf("restart %s: %v", id, err)
	}
	c.byID[id] = r
	return r
}
