package process

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/leaderd/leaderd/internal/replicas"
	"github.com/leaderd/leaderd/internal/timeline"
	"github.com/leaderd/leaderd/role"
	"github.com/leaderd/leaderd/sidecar"
)

// startThreeWith starts a, b and c with extra flags per replica, waits for
// a primary and two campaigning standbys, and returns the primary.
func (c *cluster) startThreeWith(ctx context.Context, extra func(id string) []string) *replicas.Replica {
	c.t.Helper()
	for _, id := range []string{"a", "b", "c"} {
		c.start(id, extra(id)...)
	}
	ctx, cancel := context.WithTimeout(ctx, electedTimeout)
	defer cancel()
	ev, err := c.set.WaitFor(ctx, timeline.First(0, timeline.Event{Hook: "promote", Phase: "end"}))
	if err != nil {
		c.t.Fatalf("no primary: %v", err)
	}
	for id, r := range c.byID {
		if id != ev.ID {
			waitStatus(ctx, c.t, r, "standby campaigning on a lease", isCampaigningStandby)
		}
	}
	return c.byID[ev.ID]
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestHealthGating: the primary's app turns unhealthy; its sidecar demotes
// (reason unhealthy) before another replica promotes, and it stays out of
// the election until its app is healthy again.
func TestHealthGating(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c := newCluster(t, ttl, demoteTimeout)
	health := func(id string) string { return filepath.Join(c.set.Dir, id+".health") }
	for _, id := range []string{"a", "b", "c"} {
		writeFile(t, health(id), "ok")
	}
	primary := c.startThreeWith(ctx, func(id string) []string {
		return []string{"--health-cmd", "grep -qx ok " + health(id),
			"--health-interval", "200ms", "--health-timeout", "200ms", "--health-failures", "2"}
	})
	from := len(c.timeline())

	sick := time.Now()
	writeFile(t, health(primary.ID), "sick")
	demoted := c.waitEvent(ctx, 5*time.Second, from, timeline.Event{Hook: "demote", Phase: "end", ID: primary.ID, Reason: role.ReasonUnhealthy}, nil)
	next := c.waitEvent(ctx, 5*time.Second, from, timeline.Event{Hook: "promote", Phase: "start"}, otherThan(primary.ID))
	t.Logf("sick -> demote end %s -> %s's promote %s", demoted.At.Sub(sick).Round(time.Millisecond), next.ID, next.At.Sub(sick).Round(time.Millisecond))
	if !demoted.At.Before(next.At) {
		t.Errorf("%s promoted before the unhealthy primary's demote ended", next.ID)
	}
	waitStatus(ctx, t, primary, "the sick replica out of the election", func(st sidecar.Status) bool {
		return st.Phase == role.PhaseUnhealthy && !st.AppHealthy
	})
	writeFile(t, health(primary.ID), "ok")
	waitStatus(ctx, t, primary, "the healed replica campaigning", isCampaigningStandby)
	c.assertSafeTimeline(nil)
}

// TestSwitchoverCLI: `leaderd switchover --to` hands the primary to the
// named replica, past the standby in front of it, with no overlap.
func TestSwitchoverCLI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c := newCluster(t, ttl, demoteTimeout)
	primary := c.startThree(ctx)
	// The target is the last in campaign order, so the switchover must
	// skip the standby in front of it.
	order := c.candidateOrder(ctx)
	target := order[len(order)-1]
	skipped := order[1]
	from := len(c.timeline())

	asked := time.Now()
	cmd := exec.CommandContext(ctx, binary, "switchover", "--endpoints", c.etcd.Endpoint(), "--election", "process-test", "--to", target)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("leaderd switchover: %v\n%s", err, out)
	}
	t.Logf("leaderd switchover: %s", out)
	promoted := c.waitEvent(ctx, 5*time.Second, from, timeline.Event{Hook: "promote", Phase: "start", ID: target}, nil)
	demoted := c.waitEvent(ctx, time.Second, from, timeline.Event{Hook: "demote", Phase: "end", ID: primary.ID, Reason: role.ReasonSwitchover}, nil)
	if took := promoted.At.Sub(asked); took > time.Second+500*time.Millisecond {
		t.Errorf("switchover took %s (including the command's start)", took)
	}
	if !demoted.At.Before(promoted.At) {
		t.Errorf("%s promoted before %s's demote ended", target, primary.ID)
	}
	for _, e := range c.timeline()[from:] {
		if e.ID == skipped && e.Hook == "promote" {
			t.Fatalf("%s, not the target, promoted", skipped)
		}
	}
	c.assertSafeTimeline(nil)
}

// candidateOrder reads the campaign order through `leaderd status --json`,
// once all three replicas have published their member records (every
// 0.5s), as switchover checks the target against them.
func (c *cluster) candidateOrder(ctx context.Context) []string {
	c.t.Helper()
	var rep struct {
		Candidates []struct {
			ID string `json:"id"`
		} `json:"candidates"`
		Members []struct {
			ID string `json:"id"`
		} `json:"members"`
	}
	deadline := time.Now().Add(electedTimeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		out, err := exec.CommandContext(ctx, binary, "status", "--endpoints", c.etcd.Endpoint(), "--election", "process-test", "--json").Output()
		if err != nil {
			c.t.Fatalf("leaderd status: %v", err)
		}
		if err := json.Unmarshal(out, &rep); err != nil {
			c.t.Fatalf("status --json: %v\n%s", err, out)
		}
		if len(rep.Candidates) == 3 && len(rep.Members) == 3 {
			break
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("want three candidates and members, have:\n%s", out)
		}
		<-tick.C
	}
	var ids []string
	for _, cand := range rep.Candidates {
		ids = append(ids, cand.ID)
	}
	if slices.Contains(ids, "") {
		c.t.Fatalf("candidates %v", ids)
	}
	return ids
}
