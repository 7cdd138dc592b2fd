package process

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leaderd/leaderd/internal/replicas"
	"github.com/leaderd/leaderd/internal/timeline"
	"github.com/leaderd/leaderd/role"
	"github.com/leaderd/leaderd/sidecar"
)

// markFunc writes a hook event to the timeline in the example hooks'
// format; leader-change hooks write "follow-<phase>" (the timeline splits
// the event at its first dash).
const markFunc = `mark() {
	echo "$(date +%s%N) $1 $LEADERD_ID ${LEADERD_FENCING_TOKEN:--} $LEADERD_REASON" >>"$HOOK_TIMELINE"
}
`

// writeScript writes an executable shell script into dir.
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+markFunc+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// groupAlive reports whether a process of group pgid is still running
// (zombies, which are only waiting to be reaped, do not count).
func groupAlive(t *testing.T, pgid int) bool {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // exited meanwhile
		}
		// "pid (comm) state ppid pgrp ...": comm may hold spaces.
		fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(fields) >= 3 && fields[2] == strconv.Itoa(pgid) && fields[0] != "Z" {
			return true
		}
	}
	return false
}

// TestLongFollowHookDoesNotDelayPromote: a standby whose leader-change hook
// runs long does not wait for it when the primary goes. The hook's whole
// process group is killed, the standby promotes at once, and /status shows
// the hook run as canceled.
func TestLongFollowHookDoesNotDelayPromote(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c := newCluster(t, ttl, demoteTimeout)
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "follow.pid")
	// Runs a minute (within the default 60s --promote-timeout); only a kill
	// ends it sooner.
	follow := writeScript(t, dir, "follow.sh", fmt.Sprintf(`echo $$ >%q
mark follow-start
sleep 60
mark follow-end
`, pidFile))
	a := c.start("a")
	c.waitEvent(ctx, electedTimeout, 0, timeline.Event{Hook: "promote", Phase: "end", ID: "a"}, nil)
	b := c.start("b", "--on-leader-change", follow)
	c.waitEvent(ctx, electedTimeout, 0, timeline.Event{Hook: "follow", Phase: "start", ID: "b"}, nil)
	pidText, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pgid, err := strconv.Atoi(strings.TrimSpace(string(pidText)))
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	from := len(c.timeline())

	stopped := time.Now()
	if err := a.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	if _, err := a.Wait(exitTimeout); err != nil {
		t.Fatal(err)
	}
	// Without the kill, the promote would wait up to a minute.
	next := c.waitEvent(ctx, 10*time.Second, from, timeline.Event{Hook: "promote", Phase: "start", ID: "b"}, nil)
	t.Logf("SIGTERM to a, to b's promote: %s", next.At.Sub(stopped).Round(time.Millisecond))
	if d := next.At.Sub(stopped); d > 3*time.Second {
		t.Errorf("b promoted %s after a was stopped, want within 3s", d)
	}
	for deadline := time.Now().Add(5 * time.Second); groupAlive(t, pgid); {
		if time.Now().After(deadline) {
			t.Fatalf("the leader-change hook's process group %d still runs after b's promote", pgid)
		}
		time.Sleep(pollInterval)
	}
	if i := timeline.First(0, timeline.Event{Hook: "follow", Phase: "end"})(c.timeline()); i >= 0 {
		t.Errorf("the leader-change hook ran to its end; it should have been killed")
	}
	st := waitStatus(ctx, t, b, "primary serving", func(st sidecar.Status) bool { return st.Phase == role.PhasePrimary })
	if h := st.Hooks["leader-change"]; !h.Canceled {
		t.Errorf("/status hooks[leader-change] = %+v, want canceled", h)
	}
	// Expected, so not logged as an error.
	logText, err := os.ReadFile(filepath.Join(c.set.Dir, "b.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(logText), "\n") {
		if strings.Contains(line, "ERROR") && strings.Contains(line, "leader-change") {
			t.Errorf("the canceled leader-change hook was logged as an error: %s", line)
		}
	}
	c.assertSafeTimeline(nil)
}

// TestFollowHookFindsTheNewPrimaryServing: when a standby's leader-change
// hook runs, the new primary's promote has ended, so a hook that asks the
// leader's /primary succeeds, at start-up and after a failover alike.
func TestFollowHookFindsTheNewPrimaryServing(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c := newCluster(t, ttl, demoteTimeout)
	dir := t.TempDir()
	// A promote that takes a second: a hook fired at election time would
	// find the new primary not serving yet.
	promote := writeScript(t, dir, "promote.sh", `mark promote-start
sleep 1
mark promote-end
`)
	// The hook finds the leader's API through a file the test writes for
	// each replica.
	follow := writeScript(t, dir, "follow.sh", fmt.Sprintf(`mark follow-start
addr=$(cat %q/"$LEADERD_LEADER".addr)
if %s -sf --noproxy '*' -o /dev/null "http://$addr/primary"; then
	mark follow-end
else
	mark follow-failed
	exit 1
fi
`, dir, curl))
	start := func(id string) *replicas.Replica {
		r := c.start(id, "--on-promote", promote, "--on-leader-change", follow)
		if err := os.WriteFile(filepath.Join(dir, id+".addr"), []byte(r.APIAddr), 0o644); err != nil {
			t.Fatal(err)
		}
		return r
	}
	a := start("a")
	first := c.waitEvent(ctx, electedTimeout, 0, timeline.Event{Hook: "promote", Phase: "end", ID: "a"}, nil)
	start("b")
	start("c")
	for _, id := range []string{"b", "c"} {
		c.waitEvent(ctx, electedTimeout, 0, timeline.Event{Hook: "follow", Phase: "end", ID: id, Token: first.Token}, nil)
	}
	from := len(c.timeline())

	if err := a.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	if _, err := a.Wait(exitTimeout); err != nil {
		t.Fatal(err)
	}
	next := c.waitEvent(ctx, ttl+3*time.Second, from, timeline.Event{Hook: "promote", Phase: "end"}, otherThan("a"))
	other := map[string]string{"b": "c", "c": "b"}[next.ID]
	followed := c.waitEvent(ctx, 10*time.Second, from, timeline.Event{Hook: "follow", ID: other, Token: next.Token},
		func(e timeline.Event) bool { return e.Phase != "start" })
	t.Logf("%s's promote end to %s's follow hook end: %s", next.ID, other, followed.At.Sub(next.At).Round(time.Millisecond))

	evs := c.timeline()
	ended := map[int64]time.Time{} // promote ends by token
	for _, e := range evs {
		switch {
		case e.Hook == "promote" && e.Phase == "end":
			ended[e.Token] = e.At
		case e.Hook == "follow" && e.Phase == "start":
			if at, ok := ended[e.Token]; !ok || e.At.Before(at) {
				t.Errorf("%s started following token %d before that promote ended", e.ID, e.Token)
			}
		case e.Hook == "follow" && e.Phase == "failed":
			t.Errorf("%s's leader-change hook for token %d did not find the leader serving", e.ID, e.Token)
		}
	}
	c.assertSafeTimeline(nil)
}
