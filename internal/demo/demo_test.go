package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/leaderd/leaderd/internal/replicas"
	"github.com/leaderd/leaderd/internal/timeline"
)

// Bounds for the waits below.
const (
	// runBound caps a whole demo: start-up, a hand-off, a failover of at
	// most TTL plus slack, and the teardown; generous for a loaded machine.
	runBound = 90 * time.Second
	// cancelBound caps Run's return after its context is cancelled: the
	// replicas stop (a demote, a resign, a revoke, all local) and etcd closes.
	cancelBound = 10 * time.Second
)

// leaderdBin is the leaderd binary the replicas run, built once.
var leaderdBin string

func TestMain(m *testing.M) {
	bin, remove, err := replicas.BuildTemp()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	leaderdBin = bin
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		remove()
		os.Exit(code)
	}))
}

// output is a concurrency-safe writer that reports when a marker shows up.
type output struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	marker string
	seen   chan struct{}
	once   sync.Once
}

func newOutput(marker string) *output { return &output{marker: marker, seen: make(chan struct{})} }

func (o *output) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(b)
	if o.marker != "" && strings.Contains(o.buf.String(), o.marker) {
		o.once.Do(func() { close(o.seen) })
	}
	return len(b), nil
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// assertCleanedUp checks that the demo's directory is gone and that no
// process runs from it (replicas, hooks) or runs the leaderd binary.
func assertCleanedUp(t *testing.T, dir string) {
	t.Helper()
	if dir == "" {
		t.Fatal("the demo did not report its directory")
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("demo directory %s after Run: %v, want it removed", dir, err)
	}
	for _, p := range processesMentioning(t, dir, leaderdBin) {
		t.Errorf("process left behind: %s", p)
	}
}

// processesMentioning lists the processes whose command line contains any
// of needles.
func processesMentioning(t *testing.T, needles ...string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("listing processes: %v", err)
	}
	var found []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue // exited meanwhile
		}
		cmdline := strings.ReplaceAll(string(b), "\x00", " ")
		for _, n := range needles {
			if strings.Contains(cmdline, n) {
				found = append(found, fmt.Sprintf("pid %d: %s", pid, cmdline))
				break
			}
		}
	}
	return found
}

func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), runBound)
	defer cancel()
	out := newOutput("")
	var dir string
	start := time.Now()
	err := Run(ctx, out, Options{Binary: leaderdBin, onTempDir: func(d string) { dir = d }})
	t.Logf("Run took %v; output:\n%s", time.Since(start), out)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, want := range []string{
		"First primary:", "Hand-off:", "Failover:", "Hook timeline",
		"promote  start", "demote   end", "SIGKILL", "All checks passed.",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	assertCleanedUp(t, dir)
}

func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := newOutput("First primary:")
	dirc := make(chan string, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- Run(ctx, out, Options{Binary: leaderdBin, onTempDir: func(d string) { dirc <- d }})
	}()
	// Whatever happens below, Run ends before the test does.
	t.Cleanup(func() {
		cancel()
		select {
		case <-errc:
		case <-time.After(runBound):
			t.Error("Run did not return")
		}
	})

	select {
	case <-out.seen:
	case err := <-errc:
		errc <- err
		t.Fatalf("Run returned before the first primary: %v\n%s", err, out)
	case <-time.After(runBound):
		t.Fatalf("no first primary within %v:\n%s", runBound, out)
	}
	cancelled := time.Now()
	cancel()
	select {
	case err := <-errc:
		errc <- err // for the cleanup
		took := time.Since(cancelled)
		t.Logf("Run returned %v after the cancel; output:\n%s", took, out)
		if err != context.Canceled {
			t.Fatalf("Run after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(cancelBound):
		t.Fatalf("Run still running %v after the cancel:\n%s", cancelBound, out)
	}
	assertCleanedUp(t, <-dirc)
}

func TestOptionsValidated(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"lease guard", Options{TTL: 2 * time.Second, DemoteTimeout: time.Second}, "--ttl 2s is too short"},
		{"fractional ttl", Options{TTL: 2500 * time.Millisecond}, "--ttl: 2.5s must be whole seconds"},
		{"negative demote timeout", Options{DemoteTimeout: -time.Second}, "--demote-timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Binary = leaderdBin
			var out bytes.Buffer
			err := Run(context.Background(), &out, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run = %v, want an error containing %q", err, tc.want)
			}
			if out.Len() != 0 {
				t.Errorf("Run printed %q before rejecting its options", out.String())
			}
		})
	}
}

func TestChecks(t *testing.T) {
	at := func(ms int) time.Time { return time.Unix(0, 0).Add(time.Duration(ms) * time.Millisecond) }
	crashed := timeline.Event{ID: "app-1", Token: 15}
	tests := []struct {
		name        string
		tenures     []timeline.Tenure
		tokensOK    bool
		noOverlapOK bool
	}{
		{"hand-off then crash", []timeline.Tenure{
			{ID: "app-2", Token: 12, Start: at(0), End: at(100)},
			{ID: "app-1", Token: 15, Start: at(150)}, // crashed at 200
			{ID: "app-3", Token: 18, Start: at(3000), End: at(3100)},
		}, true, true},
		{"promote before the demote ended", []timeline.Tenure{
			{ID: "app-2", Token: 12, Start: at(0), End: at(100)},
			{ID: "app-1", Token: 15, Start: at(50), End: at(300)},
		}, true, false},
		{"promote during the crashed tenure", []timeline.Tenure{
			{ID: "app-1", Token: 15, Start: at(0)},
			{ID: "app-3", Token: 18, Start: at(100)},
		}, true, false},
		{"open tenure that did not crash", []timeline.Tenure{
			{ID: "app-2", Token: 12, Start: at(0)},
			{ID: "app-3", Token: 18, Start: at(5000)},
		}, true, false},
		{"token not increasing", []timeline.Tenure{
			{ID: "app-2", Token: 12, Start: at(0), End: at(100)},
			{ID: "app-3", Token: 12, Start: at(200), End: at(300)},
		}, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := checkTokens(tc.tenures); (err == nil) != tc.tokensOK {
				t.Errorf("checkTokens = %v, want ok=%v", err, tc.tokensOK)
			}
			if err := checkOverlap(tc.tenures, crashed, at(200)); (err == nil) != tc.noOverlapOK {
				t.Errorf("checkOverlap = %v, want ok=%v", err, tc.noOverlapOK)
			}
		})
	}
}
