package process

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/leaderd/leaderd/internal/timeline"
	"github.com/leaderd/leaderd/role"
	"github.com/leaderd/leaderd/sidecar"
)

// The exit code of a cancelled `switchover --wait` (cmd/leaderd).
const exitCancelled = 4

// background runs leaderd with args and returns a channel that yields its
// exit code, stdout and stderr once it ends.
type ran struct {
	code           int
	stdout, stderr string
}

func background(ctx context.Context, t *testing.T, args ...string) <-chan ran {
	t.Helper()
	cmd := exec.CommandContext(ctx, binary, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan ran, 1)
	go func() {
		err := cmd.Wait()
		code := 0
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			code = exit.ExitCode()
		case err != nil:
			code = -1
		}
		done <- ran{code: code, stdout: out.String(), stderr: errOut.String()}
	}()
	return done
}

func waitRan(ctx context.Context, t *testing.T, what string, ch <-chan ran) ran {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-ctx.Done():
		t.Fatalf("%s did not end: %v", what, ctx.Err())
	}
	return ran{}
}

// scheduledAt waits until `leaderd status --json` shows the switchover
// request and returns its at.
func (c *cluster) scheduledAt(ctx context.Context) time.Time {
	c.t.Helper()
	var rep struct {
		Switchover *struct {
			At    time.Time `json:"at"`
			State string    `json:"state"`
		} `json:"switchover"`
	}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		out, err := exec.CommandContext(ctx, binary, "status", "--endpoints", c.etcd.Endpoint(), "--election", "process-test", "--json").Output()
		if err != nil {
			c.t.Fatalf("leaderd status: %v", err)
		}
		if err := json.Unmarshal(out, &rep); err != nil {
			c.t.Fatalf("status --json: %v\n%s", err, out)
		}
		if rep.Switchover != nil {
			if rep.Switchover.State != "scheduled" || rep.Switchover.At.IsZero() {
				c.t.Fatalf("status shows the switchover %+v, want scheduled with an at", rep.Switchover)
			}
			return rep.Switchover.At
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("no switchover shown by status: %v", ctx.Err())
		case <-tick.C:
		}
	}
}

// TestScheduledSwitchoverCLI: `leaderd switchover --at +2s --wait 20s`
// hands the primary role to the target at TIME, not before, and returns
// once the target has promoted, printing its fencing token and the
// measured hand-off.
func TestScheduledSwitchoverCLI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c := newCluster(t, ttl, demoteTimeout)
	primary := c.startThree(ctx)
	order := c.candidateOrder(ctx)
	target := order[len(order)-1]
	from := len(c.timeline())

	asked := time.Now()
	cmd := background(ctx, t, "switchover", "--endpoints", c.etcd.Endpoint(), "--election", "process-test",
		"--to", target, "--at", "+2s", "--wait", "20s")
	at := c.scheduledAt(ctx)
	if at.Before(asked.Add(2*time.Second)) || at.After(asked.Add(3*time.Second)) {
		t.Fatalf("scheduled at %s, want 2s after %s", at, asked)
	}
	r := waitRan(ctx, t, "leaderd switchover --wait", cmd)
	t.Logf("leaderd switchover: exit %d, %q %q", r.code, r.stdout, r.stderr)
	returned := time.Now()

	demote := c.waitEvent(ctx, time.Second, from, timeline.Event{Hook: "demote", Phase: "start", ID: primary.ID, Reason: role.ReasonSwitchover}, nil)
	promoted := c.waitEvent(ctx, time.Second, from, timeline.Event{Hook: "promote", Phase: "end", ID: target}, nil)
	if demote.At.Before(at) {
		t.Errorf("%s began to demote %s before the switchover's at", primary.ID, at.Sub(demote.At))
	}
	if late := promoted.At.Sub(at); late > 2*time.Second {
		t.Errorf("%s promoted %s after the switchover's at", target, late)
	}
	if returned.Before(promoted.At) {
		t.Errorf("the command returned at %s, before %s's promote ended at %s", returned, target, promoted.At)
	}
	re := fmt.Sprintf(`^switched over: %s -> %s \(token %d\) in \S+; hand-off \S+ \(observed: [^)]+\)\n$`, primary.ID, target, promoted.Token)
	if r.code != 0 || r.stderr != "" || !regexp.MustCompile(re).MatchString(r.stdout) {
		t.Errorf("exit %d, stdout %q, stderr %q; want 0 and %s", r.code, r.stdout, r.stderr, re)
	}
	c.assertSafeTimeline(nil)
}

// TestScheduledSwitchoverCancelCLI: a scheduled switchover cancelled
// before its at changes nothing: the primary stays past TIME, and the
// waiting command fails with the cancelled exit code.
func TestScheduledSwitchoverCancelCLI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c := newCluster(t, ttl, demoteTimeout)
	primary := c.startThree(ctx)
	order := c.candidateOrder(ctx)
	target := order[len(order)-1]
	from := len(c.timeline())

	waiting := background(ctx, t, "switchover", "--endpoints", c.etcd.Endpoint(), "--election", "process-test",
		"--to", target, "--at", "+3s", "--wait", "20s")
	at := c.scheduledAt(ctx)
	out, err := exec.CommandContext(ctx, binary, "switchover", "--endpoints", c.etcd.Endpoint(), "--election", "process-test", "--cancel").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "cancelled switchover: "+primary.ID+" (token ") || !strings.HasSuffix(string(out), ": scheduled\n") {
		t.Fatalf("leaderd switchover --cancel: %v\n%s", err, out)
	}
	if time.Now().After(at) {
		t.Fatalf("cancelled only after the switchover's at %s: the test proves nothing", at)
	}
	r := waitRan(ctx, t, "leaderd switchover --wait", waiting)
	if r.code != exitCancelled || r.stdout != "" || !strings.HasPrefix(r.stderr, "leaderd switchover: the switchover request was cancelled") {
		t.Errorf("the waiting switchover: exit %d, stdout %q, stderr %q; want %d, cancelled", r.code, r.stdout, r.stderr, exitCancelled)
	}
	// Past TIME (and a second more) the primary is still serving, and no
	// hook ran.
	past := time.NewTimer(time.Until(at.Add(time.Second)))
	defer past.Stop()
	select {
	case <-past.C:
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	waitStatus(ctx, t, primary, "still the primary", func(st sidecar.Status) bool {
		return st.Role == role.Primary && st.Phase == role.PhasePrimary
	})
	if evs := c.timeline()[from:]; len(evs) > 0 {
		t.Fatalf("hooks ran after a cancelled switchover: %v", evs)
	}
	c.assertSafeTimeline(nil)
}
