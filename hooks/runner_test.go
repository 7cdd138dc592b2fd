package hooks

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testEnv is a promote at election, with every variable set.
func testEnv() Env {
	return Env{
		Event:        "promote",
		Role:         "primary",
		PreviousRole: "standby",
		Reason:       "elected",
		ID:           "app-1",
		Election:     "db",
		Leader:       "app-1",
		FencingToken: 42,
		LeaseID:      0x694d7f1a2b3c4d5e,
	}
}

// runBounded runs r and fails the test if Run does not return within bound.
func runBounded(t *testing.T, ctx context.Context, r *Runner, env Env, bound time.Duration) Result {
	t.Helper()
	ch := make(chan Result, 1)
	go func() { ch <- r.Run(ctx, env) }()
	select {
	case res := <-ch:
		return res
	case <-time.After(bound):
		t.Fatalf("Run did not return within %s", bound)
		return Result{}
	}
}

// waitFile polls, with a bound, until path exists and is not empty.
func waitFile(t *testing.T, path string, bound time.Duration) []byte {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		b, err := os.ReadFile(path)
		if err == nil && len(b) > 0 {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within %s (err %v)", path, bound, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimSpace(string(waitFile(t, path, 5*time.Second))))
	if err != nil {
		t.Fatalf("pid file %s: %v", path, err)
	}
	return pid
}

// processGone reports whether pid no longer runs: it does not exist, or it is
// a zombie waiting for init (or a subreaper) to reap it.
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	// pid (comm) S ...: the state follows the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// waitGone polls, with a bound, until pid is gone.
func waitGone(t *testing.T, pid int, bound time.Duration) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !processGone(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL) // do not leave it behind
			t.Fatalf("process %d still running %s after Run returned", pid, bound)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for the log handler and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// records decodes the JSON log lines written so far.
func (b *syncBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		out = append(out, rec)
	}
	return out
}

func jsonLogger() (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// outputLines returns the "hook output" records as "LEVEL stream hook line".
func outputLines(t *testing.T, buf *syncBuffer) []string {
	t.Helper()
	var out []string
	for _, rec := range buf.records(t) {
		if rec["msg"] == "hook output" {
			out = append(out, fmt.Sprintf("%v %v %v %v", rec["level"], rec["stream"], rec["hook"], rec["line"]))
		}
	}
	return out
}

// contractVars are the variables of the hook contract: exactly Env.Vars.
func contractVars() map[string]bool {
	out := map[string]bool{}
	for _, kv := range testEnv().Vars() {
		k, _, _ := strings.Cut(kv, "=")
		out[k] = true
	}
	return out
}

func TestRunEnv(t *testing.T) {
	// leaderd's own configuration, inherited from its environment: none of
	// it may reach a hook.
	t.Setenv("LEADERD_PASSWORD", "s3cret")
	t.Setenv("LEADERD_API_TOKEN", "tok-s3cret")
	t.Setenv("LEADERD_ON_PROMOTE", "promote --password s3cret")
	t.Setenv("LEADERD_PASSWORD_FILE", "/etc/leaderd/password")
	t.Setenv("LEADERD_HEALTH_CMD", "check")
	t.Setenv("LEADERD_FUTURE_FLAG", "x")
	t.Setenv("LEADERD_ID", "stale-inherited-id") // Env's value must win
	t.Setenv("HOOK_TEST_INHERITED", "yes")
	contract := contractVars()

	startup := Env{Event: "demote", Role: "standby", PreviousRole: "standby", Reason: "startup", ID: "app-2", Election: "db"}
	tests := []struct {
		name string
		env  Env
		want map[string]string
	}{
		{"promote", testEnv(), map[string]string{
			"LEADERD_EVENT":         "promote",
			"LEADERD_ROLE":          "primary",
			"LEADERD_PREVIOUS_ROLE": "standby",
			"LEADERD_REASON":        "elected",
			"LEADERD_ID":            "app-1",
			"LEADERD_ELECTION":      "db",
			"LEADERD_LEADER":        "app-1",
			"LEADERD_FENCING_TOKEN": "42",
			"LEADERD_LEASE_ID":      "694d7f1a2b3c4d5e",
			"HOOK_TEST_INHERITED":   "yes",
		}},
		{"startup demote, zero token and lease are empty", startup, map[string]string{
			"LEADERD_EVENT":         "demote",
			"LEADERD_ROLE":          "standby",
			"LEADERD_PREVIOUS_ROLE": "standby",
			"LEADERD_REASON":        "startup",
			"LEADERD_ID":            "app-2",
			"LEADERD_ELECTION":      "db",
			"LEADERD_LEADER":        "",
			"LEADERD_FENCING_TOKEN": "",
			"LEADERD_LEASE_ID":      "",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			r := &Runner{Name: string(tc.env.Event), Command: "env > env.txt", Timeout: 10 * time.Second, Dir: dir}
			res := runBounded(t, t.Context(), r, tc.env, 15*time.Second)
			if !res.OK() {
				t.Fatalf("Run: %v", res.Err)
			}
			got := map[string][]string{}
			b, err := os.ReadFile(filepath.Join(dir, "env.txt"))
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(string(b), "\n") {
				if k, v, ok := strings.Cut(line, "="); ok {
					got[k] = append(got[k], v)
				}
			}
			for k, want := range tc.want {
				if vs := got[k]; len(vs) != 1 || vs[0] != want {
					t.Errorf("%s = %q, want exactly one %q", k, vs, want)
				}
			}
			for k, v := range got {
				if strings.HasPrefix(k, "LEADERD_") && !contract[k] {
					t.Errorf("%s=%q reached the hook; only the hook contract may", k, v)
				}
			}
		})
	}
}

func TestHookEnvKeepsOnlyTheContract(t *testing.T) {
	got := hookEnv([]string{"PATH=/bin", "LEADERD_PASSWORD=x", "LEADERD_REASON=old", "LEADERD_PASSWORD_FILE=/f",
		"LEADERD_API_TOKEN=tok", "LEADERD_ON_DEMOTE=d", "LEADERD_=odd", "XLEADERD_KEEP=1"}, Env{Reason: "new"})
	joined := strings.Join(got, " ")
	for _, bad := range []string{"LEADERD_PASSWORD", "LEADERD_REASON=old", "LEADERD_API_TOKEN", "LEADERD_ON_DEMOTE", "LEADERD_=odd"} {
		if strings.Contains(joined, bad) {
			t.Errorf("hookEnv kept %s: %v", bad, got)
		}
	}
	for _, want := range []string{"PATH=/bin", "LEADERD_REASON=new", "XLEADERD_KEEP=1"} {
		if !strings.Contains(joined, want) {
			t.Errorf("hookEnv lost %s: %v", want, got)
		}
	}
	contract := contractVars()
	for _, kv := range got {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "LEADERD_") && !contract[k] {
			t.Errorf("hookEnv passes %s, not in the contract", kv)
		}
	}
}

// TestRunNeverLogsTheCommand: a command line may hold a credential; it is
// logged nowhere, whether the hook succeeds, fails or times out.
func TestRunNeverLogsTheCommand(t *testing.T) {
	const secret = "sk-canary-9f2e"
	for _, tc := range []struct{ name, command string }{
		{"success", "echo fine # token=" + secret},
		{"failure", "exit 3 # token=" + secret},
		{"timeout", "sleep 5 # token=" + secret},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log, buf := jsonLogger()
			r := &Runner{Name: "promote", Command: tc.command, Timeout: 300 * time.Millisecond, Logger: log}
			res := runBounded(t, t.Context(), r, testEnv(), 5*time.Second)
			if res.Err != nil && strings.Contains(res.Err.Error(), secret) {
				t.Errorf("Result.Err shows the command line: %v", res.Err)
			}
			buf.mu.Lock()
			out := buf.buf.String()
			buf.mu.Unlock()
			if !strings.Contains(out, "hook started") || !strings.Contains(out, `"hook":"promote"`) {
				t.Errorf("log lacks the hook's start and name: %s", out)
			}
			if strings.Contains(out, secret) {
				t.Errorf("log shows the command line: %s", out)
			}
		})
	}
}

// stallingHandler blocks the "hook started" record until release is
// closed, like a logger writing to a full stderr pipe; it hands over the
// hook's pid first.
type stallingHandler struct {
	slog.Handler
	pid     chan int
	release chan struct{}
}

func (h *stallingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "hook started" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "pid" {
				h.pid <- int(a.Value.Int64())
			}
			return true
		})
		<-h.release
	}
	return h.Handler.Handle(ctx, r)
}

// TestRunKillsOnTimeWhileLoggingStalls: the timeout's signals do not wait
// for the logger. With "hook started" stuck, the hook is still killed at
// its timeout.
func TestRunKillsOnTimeWhileLoggingStalls(t *testing.T) {
	h := &stallingHandler{Handler: slog.NewTextHandler(io.Discard, nil), pid: make(chan int, 1), release: make(chan struct{})}
	r := &Runner{Name: "demote", Command: "sleep 300", Timeout: 500 * time.Millisecond, Logger: slog.New(h)}
	done := make(chan Result, 1)
	go func() { done <- r.Run(t.Context(), testEnv()) }()
	defer func() {
		close(h.release)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return once logging moved again")
		}
	}()
	var pid int
	select {
	case pid = <-h.pid:
	case <-time.After(5 * time.Second):
		t.Fatal("the hook never started")
	}
	deadline := time.Now().Add(5 * time.Second) // the timeout is 500ms
	for !processGone(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("hook %d still running 5s after start while its log line was stuck; timeout 500ms", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRunExitCodes(t *testing.T) {
	tests := []struct {
		command  string
		wantCode int
		wantErr  string // "" = success
	}{
		{"exit 0", 0, ""},
		{"true", 0, ""},
		{"exit 3", 3, "hook promote: exit status 3"},
		{"false", 1, "hook promote: exit status 1"},
		{"kill -KILL $$", -1, "hook promote: signal: killed"},
		{"no-such-command-leaderd", 127, "hook promote: exit status 127"},
	}
	for _, tc := range tests {
		t.Run(tc.command, func(t *testing.T) {
			r := &Runner{Name: "promote", Command: tc.command, Timeout: 10 * time.Second}
			res := runBounded(t, t.Context(), r, testEnv(), 15*time.Second)
			if res.ExitCode != tc.wantCode {
				t.Errorf("ExitCode = %d, want %d", res.ExitCode, tc.wantCode)
			}
			if tc.wantErr == "" {
				if !res.OK() {
					t.Errorf("Err = %v, want nil", res.Err)
				}
			} else if res.Err == nil || res.Err.Error() != tc.wantErr {
				t.Errorf("Err = %v, want %q", res.Err, tc.wantErr)
			}
			if res.TimedOut || res.Canceled {
				t.Errorf("TimedOut=%v Canceled=%v, want false", res.TimedOut, res.Canceled)
			}
			if res.Hook != "promote" || res.Reason != "elected" {
				t.Errorf("Hook, Reason = %q, %q", res.Hook, res.Reason)
			}
			if res.Start.IsZero() || res.End.Before(res.Start) || res.Duration != res.End.Sub(res.Start) {
				t.Errorf("Start %v End %v Duration %v inconsistent", res.Start, res.End, res.Duration)
			}
		})
	}
}

func TestRunTimeoutKillsGroup(t *testing.T) {
	const timeout = time.Second
	// One plain grandchild and one that ignores SIGTERM, so only SIGKILL ends it.
	command := `sleep 300 & echo $! > plain.pid
sh -c 'trap "" TERM; echo $$ > stubborn.pid; exec sleep 300' &
wait`
	dir := t.TempDir()
	r := &Runner{Name: "demote", Command: command, Timeout: timeout, Dir: dir}
	begin := time.Now()
	res := runBounded(t, t.Context(), r, testEnv(), timeout+5*time.Second)
	elapsed := time.Since(begin)

	if elapsed > timeout+time.Second {
		t.Errorf("Run took %s, want <= timeout+1s", elapsed)
	}
	if elapsed < timeout {
		// The stubborn grandchild ignores SIGTERM, so only SIGKILL at the
		// timeout ends the group, even though the shell died at SIGTERM.
		t.Errorf("Run took %s, returned before the SIGKILL at the timeout", elapsed)
	}
	if !res.TimedOut || res.Canceled || !errors.Is(res.Err, ErrTimeout) {
		t.Errorf("TimedOut=%v Canceled=%v Err=%v, want timed out", res.TimedOut, res.Canceled, res.Err)
	}
	if res.Err != nil && !strings.Contains(res.Err.Error(), "timed out after 1s") {
		t.Errorf("Err = %q, want it to name the timeout", res.Err)
	}
	if res.ExitCode != -1 {
		t.Errorf("ExitCode = %d, want -1 (killed)", res.ExitCode)
	}
	for _, name := range []string{"plain.pid", "stubborn.pid"} {
		waitGone(t, readPID(t, filepath.Join(dir, name)), 2*time.Second)
	}
}

func TestRunTimeoutSendsTermFirst(t *testing.T) {
	tests := []struct {
		name     string
		command  string
		wantExit int
	}{
		// The trap runs only on SIGTERM; its exit 0 shows it was not SIGKILLed.
		{"shell traps TERM", `trap 'echo term > term.marker; exit 0' TERM
sleep 300 &
wait`, 0},
		// The shell dies of SIGTERM at once; its child still gets the rest of
		// the grace to clean up before the group is SIGKILLed.
		{"child cleans up after the shell died", `sh -c 'trap "sleep 0.2; echo term > term.marker; exit 0" TERM; sleep 300 & wait'`, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			r := &Runner{Name: "demote", Command: tc.command, Timeout: time.Second, Dir: dir}
			res := runBounded(t, t.Context(), r, testEnv(), 5*time.Second)
			if _, err := os.Stat(filepath.Join(dir, "term.marker")); err != nil {
				t.Errorf("marker: %v; the hook did not get SIGTERM and its grace", err)
			}
			if res.ExitCode != tc.wantExit {
				t.Errorf("ExitCode = %d, want %d", res.ExitCode, tc.wantExit)
			}
			// Ending in the grace period is still a timeout: the hook's work was cut short.
			if !res.TimedOut || !errors.Is(res.Err, ErrTimeout) {
				t.Errorf("TimedOut=%v Err=%v, want timed out", res.TimedOut, res.Err)
			}
			if res.Duration >= time.Second {
				t.Errorf("Duration = %s, want the group gone before the SIGKILL at 1s", res.Duration)
			}
		})
	}
}

func TestKillGrace(t *testing.T) {
	tests := []struct{ timeout, want time.Duration }{
		{60 * time.Second, KillGrace},
		{time.Second, KillGrace},
		{600 * time.Millisecond, 300 * time.Millisecond},
		{10 * time.Millisecond, 5 * time.Millisecond},
	}
	for _, tc := range tests {
		if got := killGrace(tc.timeout); got != tc.want {
			t.Errorf("killGrace(%s) = %s, want %s", tc.timeout, got, tc.want)
		}
	}
}

func TestRunCanceled(t *testing.T) {
	t.Run("while running", func(t *testing.T) {
		dir := t.TempDir()
		r := &Runner{Name: "promote", Command: "sleep 300 & echo $! > bg.pid; wait", Timeout: time.Minute, Dir: dir}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		ch := make(chan Result, 1)
		go func() { ch <- r.Run(ctx, testEnv()) }()
		pid := readPID(t, filepath.Join(dir, "bg.pid"))

		cancel()
		canceledAt := time.Now()
		var res Result
		select {
		case res = <-ch:
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
		if d := time.Since(canceledAt); d > time.Second {
			t.Errorf("Run returned %s after cancel, want < 1s", d)
		}
		if !res.Canceled || res.TimedOut || !errors.Is(res.Err, ErrCanceled) || !errors.Is(res.Err, context.Canceled) {
			t.Errorf("Canceled=%v TimedOut=%v Err=%v, want canceled", res.Canceled, res.TimedOut, res.Err)
		}
		if res.ExitCode != -1 {
			t.Errorf("ExitCode = %d, want -1", res.ExitCode)
		}
		waitGone(t, pid, 2*time.Second)
	})

	t.Run("before start", func(t *testing.T) {
		dir := t.TempDir()
		r := &Runner{Name: "promote", Command: "touch started", Timeout: time.Minute, Dir: dir}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		res := runBounded(t, ctx, r, testEnv(), 5*time.Second)
		if !res.Canceled || !errors.Is(res.Err, ErrCanceled) || res.ExitCode != -1 {
			t.Errorf("Canceled=%v Err=%v ExitCode=%d, want canceled, not started", res.Canceled, res.Err, res.ExitCode)
		}
		if _, err := os.Stat(filepath.Join(dir, "started")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("hook ran although ctx was done (stat: %v)", err)
		}
	})
}

func TestRunLogsOutputLines(t *testing.T) {
	log, buf := jsonLogger()
	var (
		mu    sync.Mutex
		given []string // by Output, from both streams' readers
	)
	output := func(line string) {
		mu.Lock()
		defer mu.Unlock()
		given = append(given, line)
	}
	r := &Runner{Name: "promote", Command: "echo one; echo two; echo oops >&2; printf 'last\\r\\n'; printf 'unterminated'", Timeout: 10 * time.Second, Logger: log, Output: output}
	res := runBounded(t, t.Context(), r, testEnv(), 15*time.Second)
	if !res.OK() {
		t.Fatalf("Run: %v", res.Err)
	}
	// Every Output call has returned with Run; the order across streams is not fixed.
	mu.Lock()
	slices.Sort(given)
	if want := []string{"last", "one", "oops", "two", "unterminated"}; !slices.Equal(given, want) {
		t.Errorf("Output was given %q, want %q in any order", given, want)
	}
	mu.Unlock()
	got := outputLines(t, buf)
	want := []string{
		"INFO stdout promote one",
		"INFO stdout promote two",
		"INFO stdout promote last",
		"INFO stdout promote unterminated",
		"WARN stderr promote oops",
	}
	// Streams are read concurrently: compare per stream, order kept within one.
	var stdout, stderr []string
	for _, l := range got {
		if strings.Contains(l, " stderr ") {
			stderr = append(stderr, l)
		} else {
			stdout = append(stdout, l)
		}
	}
	if fmt.Sprint(append(stdout, stderr...)) != fmt.Sprint(want) {
		t.Errorf("output lines:\n got %q\nwant %q", append(stdout, stderr...), want)
	}

	msgs := map[string]map[string]any{}
	for _, rec := range buf.records(t) {
		msgs[rec["msg"].(string)] = rec
	}
	if s := msgs["hook started"]; s == nil || s["hook"] != "promote" || s["reason"] != "elected" || s["pid"] == nil {
		t.Errorf("hook started record = %v", s)
	}
	if e := msgs["hook ended"]; e == nil || e["hook"] != "promote" || e["reason"] != "elected" || e["exit_code"] != float64(0) || e["duration"] == nil {
		t.Errorf("hook ended record = %v", e)
	}
}

func TestRunTruncatesLongLines(t *testing.T) {
	log, buf := jsonLogger()
	// 200000 x's on one line, then a normal line.
	r := &Runner{Name: "demote", Command: "head -c 200000 /dev/zero | tr '\\0' x; echo; echo after", Timeout: 10 * time.Second, Logger: log}
	res := runBounded(t, t.Context(), r, testEnv(), 15*time.Second)
	if !res.OK() {
		t.Fatalf("Run: %v", res.Err)
	}
	var lines []map[string]any
	for _, rec := range buf.records(t) {
		if rec["msg"] == "hook output" {
			lines = append(lines, rec)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("got %d output records, want 2 (truncated line, after)", len(lines))
	}
	if l := lines[0]["line"].(string); len(l) != MaxLineBytes || lines[0]["truncated"] != true {
		t.Errorf("first line: %d bytes truncated=%v, want %d bytes truncated=true", len(l), lines[0]["truncated"], MaxLineBytes)
	}
	if lines[1]["line"] != "after" {
		t.Errorf("second line = %q, want after", lines[1]["line"])
	}
}

func TestRunEmptyCommand(t *testing.T) {
	r := &Runner{Name: "promote"}
	res := runBounded(t, t.Context(), r, testEnv(), time.Second)
	if !res.OK() || res.ExitCode != 0 || res.Hook != "promote" || res.Reason != "elected" {
		t.Errorf("Result = %+v, want success", res)
	}
	if res.Duration > 100*time.Millisecond {
		t.Errorf("Duration = %s, want immediate", res.Duration)
	}
}

// A shell that exits 0 while a background child still holds its stdout:
// Run does not wait for the child; it kills the rest of the group and
// reports the shell's own success (a warning is logged).
func TestRunKillsLeftoversAfterExit(t *testing.T) {
	dir := t.TempDir()
	log, buf := jsonLogger()
	r := &Runner{Name: "promote", Command: "sleep 300 & echo $! > bg.pid; exit 0", Timeout: time.Minute, Dir: dir, Logger: log}
	begin := time.Now()
	res := runBounded(t, t.Context(), r, testEnv(), 5*time.Second)
	if d := time.Since(begin); d > time.Second {
		t.Errorf("Run took %s, want prompt", d)
	}
	if !res.OK() || res.ExitCode != 0 {
		t.Errorf("Err=%v ExitCode=%d, want the shell's success", res.Err, res.ExitCode)
	}
	waitGone(t, readPID(t, filepath.Join(dir, "bg.pid")), 2*time.Second)
	found := false
	for _, rec := range buf.records(t) {
		found = found || rec["msg"] == "hook left processes running in its group; killing them"
	}
	if !found {
		t.Error("no warning about processes left behind")
	}
}

// A process that escapes the group (setsid) cannot be killed by Run, but it
// must not keep Run waiting on the pipe it holds either.
func TestRunEscapedProcessDoesNotBlock(t *testing.T) {
	dir := t.TempDir()
	command := `setsid sh -c 'echo $$ > esc.pid; exec sleep 300' &
while [ ! -s esc.pid ]; do sleep 0.01; done
exit 0`
	r := &Runner{Name: "promote", Command: command, Timeout: 10 * time.Second, Dir: dir}
	begin := time.Now()
	res := runBounded(t, t.Context(), r, testEnv(), 5*time.Second)
	elapsed := time.Since(begin)
	pid := readPID(t, filepath.Join(dir, "esc.pid"))
	_ = syscall.Kill(pid, syscall.SIGKILL) // Run cannot reach it; the test cleans up
	if elapsed > time.Second {
		t.Errorf("Run took %s, want bounded by WaitDelay", elapsed)
	}
	if !res.OK() {
		t.Errorf("Err = %v, want the shell's success", res.Err)
	}
}

func TestRunStartFailure(t *testing.T) {
	r := &Runner{Name: "promote", Command: "true", Timeout: time.Second, Dir: filepath.Join(t.TempDir(), "missing")}
	res := runBounded(t, t.Context(), r, testEnv(), 5*time.Second)
	if res.OK() || res.ExitCode != -1 || !strings.Contains(res.Err.Error(), "hook promote: start") {
		t.Errorf("Err=%v ExitCode=%d, want a start error", res.Err, res.ExitCode)
	}
}

func TestRunRejectsNonPositiveTimeout(t *testing.T) {
	r := &Runner{Name: "demote", Command: "true"}
	res := runBounded(t, t.Context(), r, testEnv(), 5*time.Second)
	if res.OK() || res.ExitCode != -1 {
		t.Errorf("Err=%v ExitCode=%d, want refused", res.Err, res.ExitCode)
	}
}

func TestRunAgain(t *testing.T) {
	r := &Runner{Name: "promote", Command: `test "$LEADERD_REASON" = elected`, Timeout: 10 * time.Second}
	startup := testEnv()
	startup.Reason = "startup"
	for i, tc := range []struct {
		env  Env
		want int
	}{{startup, 1}, {testEnv(), 0}, {startup, 1}} {
		if res := runBounded(t, t.Context(), r, tc.env, 15*time.Second); res.ExitCode != tc.want || res.OK() != (tc.want == 0) {
			t.Errorf("run %d: ExitCode=%d Err=%v, want %d", i, res.ExitCode, res.Err, tc.want)
		}
	}
}
