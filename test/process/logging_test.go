package process

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leaderd/leaderd/internal/etcdtest"
	"github.com/leaderd/leaderd/internal/replicas"
	"github.com/leaderd/leaderd/internal/timeline"
	"github.com/leaderd/leaderd/role"
	"github.com/leaderd/leaderd/sidecar"
)

// startWithOpts starts a replica behind a new proxy, as cluster.start
// does, wired as o says.
func (c *cluster) startWithOpts(o replicas.Options, id string, extra ...string) *replicas.Replica {
	c.t.Helper()
	p, err := etcdtest.NewProxy(c.etcd.Endpoint())
	if err != nil {
		c.t.Fatalf("proxy for %s: %v", id, err)
	}
	c.proxies[id] = p
	r, err := c.set.StartWith(o, id, p.Endpoint(), extra...)
	if err != nil {
		c.t.Fatalf("start %s: %v", id, err)
	}
	c.byID[id] = r
	return r
}

// stderrPipe returns the write end of a pipe for a replica's stderr. The
// parent's copy of the write end is closed once the replica has started
// (call the returned func); the read end is never read, and is closed at
// once when closeRead is set (a broken pipe), else at the test's end (a
// stalled one).
func stderrPipe(t *testing.T, closeRead bool) (w *os.File, started func()) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	if closeRead {
		r.Close()
	} else {
		t.Cleanup(func() { r.Close() })
	}
	return w, func() { w.Close() }
}

// metricValue reads one metric that has only the constant labels (election
// and id, the replica's) from the replica's /metrics.
func metricValue(ctx context.Context, t *testing.T, r *replicas.Replica, name string) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.APIAddr+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s /metrics: %v", r.ID, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 1<<20))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), name+"{")
		if !ok {
			continue
		}
		labels, v, ok := strings.Cut(rest, "} ")
		if !ok || strings.Count(labels, "=") != 2 || !strings.Contains(labels, `id="`+r.ID+`"`) {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("%s: %q: %v", name, sc.Text(), err)
		}
		return f
	}
	t.Fatalf("%s /metrics has no %s", r.ID, name)
	return 0
}

// noisyPromote is a promote hook that prints 5000 short lines on stdout and
// as many on stderr, then runs the example promote hook. Each of its pipes
// takes its output whole (about 24 KiB of 64), so the hook itself never
// waits on leaderd; leaderd's log of those 10000 lines (over 1 MiB) is more
// than a stalled stderr pipe and the log sink hold.
func noisyPromote(dir string) string {
	return fmt.Sprintf("seq 5000; seq 5000 >&2; exec %s", filepath.Join(dir, "promote.sh"))
}

// TestStalledStderrPrimaryDemotes: a primary whose stderr is a full pipe
// nobody reads still demotes on its own safe deadline when cut off from
// etcd, before another replica promotes. Its logging drops lines instead
// of blocking, counted in leaderd_log_lines_dropped_total, and a SIGTERM
// still stops it promptly.
func TestStalledStderrPrimaryDemotes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c := newCluster(t, ttl, demoteTimeout)
	stderr, started := stderrPipe(t, false)
	a := c.startWithOpts(replicas.Options{Stderr: stderr}, "a", "--on-promote", noisyPromote(c.set.Dir))
	started()
	c.waitEvent(ctx, electedTimeout, 0, timeline.Event{Hook: "promote", Phase: "end", ID: "a"}, nil)
	b := c.start("b")
	waitStatus(ctx, t, b, "standby campaigning on a lease", isCampaigningStandby)
	from := len(c.timeline())

	cut := time.Now()
	c.proxies["a"].CutOff()
	next := c.waitEvent(ctx, ttl+3*time.Second, from, timeline.Event{Hook: "promote", Phase: "start", ID: "b"}, nil)
	var demoted *timeline.Event
	for _, e := range c.timeline()[from:] {
		if e.ID == "a" && e.Hook == "demote" && e.Phase == "end" {
			demoted = &e
			break
		}
	}
	switch {
	case demoted == nil:
		t.Fatalf("b promoted %s after the cut, and a (stderr stalled) had not demoted", next.At.Sub(cut).Round(time.Millisecond))
	case !demoted.At.Before(next.At):
		t.Errorf("b's promote started at %s, before a's demote ended at %s", next.At.Format("15:04:05.000"), demoted.At.Format("15:04:05.000"))
	default:
		t.Logf("cut-off to a's demote end %s; to b's promote %s", demoted.At.Sub(cut).Round(time.Millisecond), next.At.Sub(cut).Round(time.Millisecond))
	}
	if n := metricValue(ctx, t, a, "leaderd_log_lines_dropped_total"); n <= 0 {
		t.Errorf("leaderd_log_lines_dropped_total = %v with stderr stalled, want > 0", n)
	}

	// Healed, so the stop is not slowed by etcd; stderr is still stalled.
	c.proxies["a"].Heal()
	if err := a.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, err := a.Wait(exitTimeout)
	if err != nil {
		t.Fatalf("with stderr stalled: %v", err)
	}
	if code != 0 {
		t.Errorf("a exited %d after SIGTERM with stderr stalled, want 0", code)
	}
	c.assertSafeTimeline(nil)
}

// TestSIGHUPPrimaryStaysPrimary: SIGHUP does not stop a primary or make it
// step down; it is logged as ignored. SIGTERM afterwards still stops it
// gracefully: exit 0, demote before the next promote.
func TestSIGHUPPrimaryStaysPrimary(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c := newCluster(t, ttl, demoteTimeout)
	c.start("a")
	ev := c.waitEvent(ctx, electedTimeout, 0, timeline.Event{Hook: "promote", Phase: "end"}, nil)
	primary := c.byID[ev.ID]
	c.start("b")
	waitStatus(ctx, t, c.byID["b"], "standby campaigning on a lease", isCampaigningStandby)
	waitStatus(ctx, t, primary, "primary serving", func(st sidecar.Status) bool {
		return st.Role == role.Primary && st.Phase == role.PhasePrimary
	})
	from := len(c.timeline())

	if err := primary.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// Wait for the log line, or see it die (exit 129 without the fix).
	logPath := filepath.Join(c.set.Dir, primary.ID+".log")
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for deadline := time.After(5 * time.Second); ; {
		if data, err := os.ReadFile(logPath); err == nil && strings.Contains(string(data), "SIGHUP ignored") {
			break
		}
		select {
		case <-primary.Done():
			code, _ := primary.Wait(0)
			t.Fatalf("%s died after SIGHUP (exit code %d; -1: killed by a signal)", primary.ID, code)
		case <-deadline:
			t.Fatalf("%s did not log SIGHUP as ignored within 5s", primary.ID)
		case <-tick.C:
		}
	}
	if code, err := primary.Get(ctx, "/primary"); err != nil || code != http.StatusOK {
		t.Errorf("/primary after SIGHUP: %d, %v; want 200", code, err)
	}
	if evs := c.timeline()[from:]; len(evs) != 0 {
		t.Errorf("hooks ran after SIGHUP: %v", evs)
	}

	if err := primary.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, err := primary.Wait(exitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Errorf("%s exited %d after SIGTERM, want 0", primary.ID, code)
	}
	demoted := c.waitEvent(ctx, time.Second, from, timeline.Event{Hook: "demote", Phase: "end", ID: primary.ID, Reason: role.ReasonShutdown}, nil)
	next := c.waitEvent(ctx, ttl+2*time.Second, from, timeline.Event{Hook: "promote", Phase: "start"}, otherThan(primary.ID))
	if !demoted.At.Before(next.At) {
		t.Errorf("%s's promote started at %s, before %s's demote ended at %s", next.ID, next.At.Format("15:04:05.000"), primary.ID, demoted.At.Format("15:04:05.000"))
	}
	c.assertSafeTimeline(nil)
}

// TestBrokenStderrKeepsRunning: a replica whose stderr is a pipe with no
// reader (every write EPIPE, SIGPIPE by default) keeps running and serving;
// its lost lines are counted, and SIGTERM still stops it gracefully.
func TestBrokenStderrKeepsRunning(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c := newCluster(t, ttl, demoteTimeout)
	stderr, started := stderrPipe(t, true)
	a := c.startWithOpts(replicas.Options{Stderr: stderr}, "a")
	started()
	c.waitEvent(ctx, electedTimeout, 0, timeline.Event{Hook: "promote", Phase: "end", ID: "a"}, nil)
	waitStatus(ctx, t, a, "primary serving", func(st sidecar.Status) bool {
		return st.Role == role.Primary && st.Phase == role.PhasePrimary
	})
	if code, err := a.Get(ctx, "/primary"); err != nil || code != http.StatusOK {
		t.Errorf("/primary: %d, %v; want 200", code, err)
	}
	if n := metricValue(ctx, t, a, "leaderd_log_lines_dropped_total"); n <= 0 {
		t.Errorf("leaderd_log_lines_dropped_total = %v with stderr broken, want > 0", n)
	}
	from := len(c.timeline())

	if err := a.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, err := a.Wait(exitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Errorf("a exited %d after SIGTERM with stderr broken, want 0", code)
	}
	c.waitEvent(ctx, time.Second, from, timeline.Event{Hook: "demote", Phase: "end", ID: "a", Reason: role.ReasonShutdown}, nil)
}

// TestHooksGetNoConfigAndLogsNoCommands: leaderd's own LEADERD_* settings
// (here the API token) do not reach its hooks, and a hook's command line,
// which may hold a credential, appears nowhere in its log.
func TestHooksGetNoConfigAndLogsNoCommands(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c := newCluster(t, ttl, demoteTimeout)
	const secret, token = "sk-canary-cmdline", "tok-canary-env"
	envFile := filepath.Join(c.set.Dir, "promote.env")
	promote := fmt.Sprintf("HOOK_SECRET=%s; env > %s; exec %s", secret, envFile, filepath.Join(c.set.Dir, "promote.sh"))
	a := c.startWithOpts(replicas.Options{Env: []string{"LEADERD_API_TOKEN=" + token, "LEADERD_ON_PROMOTE=ignored " + secret}},
		"a", "--on-promote", promote)
	c.waitEvent(ctx, electedTimeout, 0, timeline.Event{Hook: "promote", Phase: "end", ID: "a"}, nil)
	if err := a.Stop(exitTimeout); err != nil {
		t.Fatal(err)
	}

	env, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"LEADERD_API_TOKEN", token, "LEADERD_ON_PROMOTE", secret} {
		if strings.Contains(string(env), bad) {
			t.Errorf("the promote hook's environment holds %s", bad)
		}
	}
	if !strings.Contains(string(env), "LEADERD_FENCING_TOKEN=") {
		t.Errorf("the promote hook's environment lacks the hook contract: %s", env)
	}
	log, err := os.ReadFile(filepath.Join(c.set.Dir, "a.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "hook started") {
		t.Fatalf("a's log has no hook start: the check proves nothing:\n%s", log)
	}
	for _, bad := range []string{secret, token} {
		if strings.Contains(string(log), bad) {
			t.Errorf("a's log shows %s", bad)
		}
	}
}
