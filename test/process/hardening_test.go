package process

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/internal/etcdtest"
	"github.com/leaderd/leaderd/internal/replicas"
	"github.com/leaderd/leaderd/internal/timeline"
	"github.com/leaderd/leaderd/role"
	"github.com/leaderd/leaderd/sidecar"
)

// waitLog waits until the replica's log holds msg, bounded by ctx.
func (c *cluster) waitLog(ctx context.Context, r *replicas.Replica, msg string) {
	c.t.Helper()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		data, err := os.ReadFile(filepath.Join(c.set.Dir, r.ID+".log"))
		if err == nil && bytes.Contains(data, []byte(msg)) {
			return
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("%s never logged %q: %v", r.ID, msg, ctx.Err())
		case <-tick.C:
		}
	}
}

// TestFailingPromoteBacksOff: a promote that always fails is retried with
// a growing back-off, not every quarter second for ever (each cycle costs
// a lease, two hooks, a resign, a revoke and two history records).
func TestFailingPromoteBacksOff(t *testing.T) {
	t.Parallel() // it mostly waits out back-offs; its own etcd and replica
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c := newCluster(t, ttl, demoteTimeout)
	c.start("a", "--on-promote", filepath.Join(c.set.Dir, "promote.sh")+"; exit 1")
	const attempts = 8
	wctx, wcancel := context.WithTimeout(ctx, 45*time.Second)
	defer wcancel()
	_, err := c.set.WaitFor(wctx, func(evs []timeline.Event) int {
		n := 0
		for i, e := range evs {
			if e.Hook == "promote" && e.Phase == "start" {
				if n++; n == attempts {
					return i
				}
			}
		}
		return -1
	})
	if err != nil {
		t.Fatalf("waiting for %d promote attempts: %v", attempts, err)
	}
	// The wait before each attempt: from the failed attempt's demote end to
	// the next promote start (the back-off, plus a grant and a campaign).
	var waits []time.Duration
	var demoted time.Time
	for _, e := range c.timeline() {
		switch {
		case e.Hook == "demote" && e.Phase == "end" && e.Reason == role.ReasonPromoteFailed:
			demoted = e.At
		case e.Hook == "promote" && e.Phase == "start" && !demoted.IsZero():
			waits = append(waits, e.At.Sub(demoted))
		}
	}
	if len(waits) < attempts-1 {
		t.Fatalf("%d waits between %d attempts", len(waits), attempts)
	}
	first, last := waits[0], waits[len(waits)-1]
	t.Logf("waits before each new attempt: %v", waits)
	// Exponential back-off from 250ms by 1.5 with ±50% jitter: the 7th wait
	// is at least 1.4s and the first at most 0.375s; without growth every
	// wait stays under 0.375s.
	if last < 2*first || last < time.Second {
		t.Fatalf("the back-off did not grow: first wait %s, last wait %s", first, last)
	}
}

// TestPausedElectionIgnoresResign: while the election is paused, POST
// /resign answers 409 and a resign request stored in etcd (past the CLI's
// own check) is ignored; once resumed, a live request is honoured.
func TestPausedElectionIgnoresResign(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c := newCluster(t, ttl, demoteTimeout)
	const token = "s3cret-api-token"
	primary := c.startThreeWith(ctx, func(string) []string { return []string{"--api-token", token} })
	st := waitStatus(ctx, t, primary, "primary serving", func(st sidecar.Status) bool { return st.Phase == role.PhasePrimary })
	from := len(c.timeline())

	out, err := exec.CommandContext(ctx, binary, "pause", "--endpoints", c.etcd.Endpoint(), "--election", "process-test").CombinedOutput()
	if err != nil {
		t.Fatalf("leaderd pause: %v\n%s", err, out)
	}
	waitStatus(ctx, t, primary, "paused", func(st sidecar.Status) bool { return st.Paused })

	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+primary.APIAddr+"/resign", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("POST /resign while paused = %d, want 409", resp.StatusCode)
	}

	cli := etcdtest.NewClient(t, c.etcd.Endpoint())
	now := time.Now()
	r := election.Request{From: primary.ID, FencingToken: st.FencingToken, Requested: now, Expires: now.Add(time.Minute)}
	if err := election.NewStore(cli, "/leaderd", "process-test").PutRequest(ctx, r); err != nil {
		t.Fatal(err)
	}
	c.waitLog(ctx, primary, "request ignored: the election is paused")
	if code, err := primary.Get(ctx, "/primary"); err != nil || code != http.StatusOK {
		t.Fatalf("/primary = %d, %v while paused with a resign request", code, err)
	}
	for _, e := range c.timeline()[from:] {
		if e.Hook == "demote" {
			t.Fatalf("%s demoted while the election was paused: %s", e.ID, e)
		}
	}

	out, err = exec.CommandContext(ctx, binary, "resume", "--endpoints", c.etcd.Endpoint(), "--election", "process-test").CombinedOutput()
	if err != nil {
		t.Fatalf("leaderd resume: %v\n%s", err, out)
	}
	demoted := c.waitEvent(ctx, 5*time.Second, from, timeline.Event{Hook: "demote", Phase: "end", ID: primary.ID, Reason: role.ReasonResigned}, nil)
	next := c.waitEvent(ctx, 5*time.Second, from, timeline.Event{Hook: "promote", Phase: "start"}, otherThan(primary.ID))
	if !demoted.At.Before(next.At) {
		t.Fatalf("%s promoted before %s's demote ended", next.ID, primary.ID)
	}
	c.assertSafeTimeline(nil)
}
