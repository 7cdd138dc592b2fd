package health

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// within bounds every wait in these tests.
const within = 10 * time.Second

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// valid is a valid config with a check; each Validate case mutates one field.
func valid() Config {
	return Config{
		Command:   "true",
		Interval:  20 * time.Millisecond,
		Timeout:   20 * time.Millisecond,
		Failures:  3,
		Successes: 1,
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string // "" = valid; else the flag the error must name
	}{
		{"valid", func(*Config) {}, ""},
		{"url instead of command", func(c *Config) { c.Command, c.URL = "", "http://127.0.0.1:8080/healthz" }, ""},
		{"https url", func(c *Config) { c.Command, c.URL = "", "https://app.local/ready" }, ""},
		{"no check", func(c *Config) { c.Command = "" }, ""},
		{"timeout equal to interval", func(c *Config) { c.Timeout = c.Interval }, ""},
		{"both command and url", func(c *Config) { c.URL = "http://127.0.0.1:8080/" }, "--health-cmd and --health-url"},
		{"blank command", func(c *Config) { c.Command = "  " }, "--health-cmd"},
		{"url not http", func(c *Config) { c.Command, c.URL = "", "ftp://host/x" }, "--health-url"},
		{"url without scheme", func(c *Config) { c.Command, c.URL = "", "127.0.0.1:8080/healthz" }, "--health-url"},
		{"url without host", func(c *Config) { c.Command, c.URL = "", "http:///healthz" }, "--health-url"},
		{"url unparsable", func(c *Config) { c.Command, c.URL = "", "http://[::1/" }, "--health-url"},
		{"zero interval", func(c *Config) { c.Interval = 0 }, "--health-interval"},
		{"negative interval", func(c *Config) { c.Interval = -time.Second }, "--health-interval"},
		{"zero timeout", func(c *Config) { c.Timeout = 0 }, "--health-timeout"},
		{"timeout longer than interval", func(c *Config) { c.Timeout = c.Interval + time.Millisecond }, "--health-timeout"},
		{"zero failures", func(c *Config) { c.Failures = 0 }, "--health-failures"},
		{"zero successes", func(c *Config) { c.Successes = 0 }, "--health-successes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid()
			tt.mutate(&cfg)
			err := cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("Validate() = nil, want an error naming %s", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("Validate() = %q, want it to name %s", err, tt.wantErr)
			}
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
	if cfg.Enabled() {
		t.Error("DefaultConfig().Enabled() = true, want false: no check unless asked for")
	}
	want := Config{Interval: 2 * time.Second, Timeout: time.Second, Failures: 3, Successes: 1}
	if cfg != want {
		t.Errorf("DefaultConfig() = %+v, want %+v", cfg, want)
	}
}

func TestNewCheckerPanicsOnInvalidConfig(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "--health-failures") {
			t.Errorf("recover() = %v, want a panic naming --health-failures", r)
		}
	}()
	cfg := valid()
	cfg.Failures = 0
	NewChecker(cfg, discard())
}

// run runs c until the test ends, and checks that Run returns promptly.
// It returns a function that stops Run and waits for it.
func run(t *testing.T, c *Checker) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	stop = sync.OnceFunc(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(within):
			t.Errorf("Run did not return within %s of cancel", within)
		}
	})
	t.Cleanup(stop)
	return stop
}

// waitState waits for Changes to deliver want, on the real clock.
func waitState(t *testing.T, c *Checker, want bool) {
	t.Helper()
	tickUntil(t, c, nil, want)
}

// noChange fails if Changes holds a value.
func noChange(t *testing.T, c *Checker) {
	t.Helper()
	select {
	case v := <-c.Changes():
		t.Fatalf("Changes delivered %v, want no transition (last check: %+v)", v, c.Last())
	default:
	}
}

func TestNoCheckIsHealthy(t *testing.T) {
	c := NewChecker(DefaultConfig(), nil)
	if !c.Healthy() {
		t.Fatal("Healthy() = false before Run with no check configured")
	}
	stop := run(t, c)
	if !c.Healthy() {
		t.Fatal("Healthy() = false during Run with no check configured")
	}
	stop() // fails the test if Run does not return on cancel
	if !c.Healthy() {
		t.Fatal("Healthy() = false after Run with no check configured")
	}
	noChange(t, c)
	if got := c.Last(); got != (Result{}) {
		t.Errorf("Last() = %+v, want the zero Result: no check ran", got)
	}
}

func TestUnhealthyUntilFirstCheck(t *testing.T) {
	c := NewChecker(valid(), discard())
	if c.Healthy() {
		t.Fatal("Healthy() = true before the first check: an unknown app must not count as healthy")
	}
}

// answer is what the next check meets.
type answer string

const (
	pass answer = "ok"
	fail answer = "fail"
	hang answer = "hang"
)

// backend is an app whose health check the test drives, counting the checks.
type backend interface {
	set(answer)
	hits() int        // checks that reached the app
	config() Config   // a valid config that checks this app
	failText() string // what a failed check's error says
}

// cmdApp is checked by a command that reads the answer from a file and
// appends a line to a counter file.
type cmdApp struct {
	t             *testing.T
	answer, count string
	cfg           Config
}

func newCmdApp(t *testing.T, cfg Config) *cmdApp {
	dir := t.TempDir()
	a := &cmdApp{t: t, answer: filepath.Join(dir, "answer"), count: filepath.Join(dir, "count"), cfg: cfg}
	a.cfg.URL = ""
	a.cfg.Command = fmt.Sprintf(`echo check >> '%s'
case "$(cat '%s')" in
ok) echo fine; exit 0 ;;
hang) exec sleep 30 ;;
*) echo "app says no" >&2; exit 1 ;;
esac`, a.count, a.answer)
	a.set(pass)
	return a
}

func (a *cmdApp) set(ans answer) {
	if err := os.WriteFile(a.answer, []byte(ans), 0o600); err != nil {
		a.t.Fatal(err)
	}
}

func (a *cmdApp) hits() int {
	f, err := os.Open(a.count)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		a.t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for s := bufio.NewScanner(f); s.Scan(); {
		n++
	}
	return n
}

func (a *cmdApp) config() Config { return a.cfg }

// urlApp is checked over HTTP; the handler's answer is flipped by the test.
type urlApp struct {
	srv     *httptest.Server
	answer  atomic.Value // answer
	count   atomic.Int64
	release chan struct{} // closed at the end: hanging handlers return
	cfg     Config
}

func newURLApp(t *testing.T, cfg Config) *urlApp {
	a := &urlApp{release: make(chan struct{}), cfg: cfg}
	a.set(pass)
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.count.Add(1)
		switch a.answer.Load().(answer) {
		case pass:
			w.WriteHeader(http.StatusNoContent)
		case hang:
			select {
			case <-r.Context().Done():
			case <-a.release:
			}
		default:
			http.Error(w, "app says no", http.StatusInternalServerError)
		}
	}))
	// Cleanups run last-in first-out: this one runs after the Checker's.
	t.Cleanup(func() {
		close(a.release)
		a.srv.Close()
	})
	a.cfg.Command = ""
	a.cfg.URL = a.srv.URL + "/healthz"
	return a
}

func (a *urlApp) set(ans answer)   { a.answer.Store(ans) }
func (a *urlApp) hits() int        { return int(a.count.Load()) }
func (a *urlApp) config() Config   { return a.cfg }
func (a *urlApp) failText() string { return "500 Internal Server Error" }
func (a *cmdApp) failText() string { return "app says no" }

// backends runs f once with a command-checked app and once with a
// URL-checked one.
func backends(t *testing.T, cfg Config, f func(t *testing.T, app backend)) {
	t.Run("cmd", func(t *testing.T) { f(t, newCmdApp(t, cfg)) })
	t.Run("url", func(t *testing.T) { f(t, newURLApp(t, cfg)) })
}

// stepper runs a Checker one check at a time: the test sets the answer,
// lets exactly one check run, and asserts the state before the next. The
// checks are real (command or HTTP); only the clock is ticked by hand.
type stepper struct {
	t      *testing.T
	c      *Checker
	clock  *manualClock
	app    backend
	stop   func() // stops Run and waits for it; set by the first step
	checks int
}

func startStepped(t *testing.T, app backend, logger *slog.Logger) *stepper {
	t.Helper()
	if logger == nil {
		logger = discard()
	}
	c, clk := newTicked(app.config(), logger)
	return &stepper{t: t, c: c, clock: clk, app: app}
}

// step runs one check that meets ans, and waits until it has been recorded.
func (s *stepper) step(ans answer) Result {
	s.t.Helper()
	s.app.set(ans)
	if s.checks == 0 {
		s.stop = run(s.t, s.c) // the first check runs at once
	} else {
		s.clock.tick(s.t)
	}
	s.checks++
	last := s.awaitRecorded()
	if got := s.app.hits(); got != s.checks {
		s.t.Fatalf("the app saw %d checks, want %d", got, s.checks)
	}
	return last
}

// awaitRecorded polls Last until the current check has been recorded.
func (s *stepper) awaitRecorded() Result {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		last := s.c.Last()
		switch {
		case last.Checks == s.checks:
			return last
		case last.Checks > s.checks:
			s.t.Fatalf("Run has done %d checks, want %d", last.Checks, s.checks)
		case time.Now().After(deadline):
			s.t.Fatalf("check %d not recorded within %s", s.checks, within)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestThresholds(t *testing.T) {
	// in: one check per character, + passes, - fails. want: the state after
	// each check, H healthy, u unhealthy. A transition on Changes is expected
	// exactly where want changes (the state before the first check is u).
	tests := []struct {
		name                string
		failures, successes int
		in, want            string
	}{
		{"first success turns healthy", 3, 1, "+", "H"},
		{"failures=3: two failures then a success stay healthy", 3, 1,
			"+--+--+-+---", "HHHHHHHHHHHu"},
		{"failures=1: one failure turns unhealthy", 1, 1, "+-+", "HuH"},
		{"successes=2: needs two in a row", 1, 2, "+-++-+-++", "uuuHuuuuH"},
		{"successes=3 at start", 3, 3, "+-+++", "uuuuH"},
		{"failing from start stays unhealthy", 3, 1, "----+", "uuuuH"},
		{"flapping with failures=2 successes=2 never transitions", 2, 2,
			"-+-+-+-" + "++" + "-+-+-+-+" + "--", "uuuuuuu" + "uH" + "HHHHHHHH" + "Hu"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.in) != len(tt.want) {
				t.Fatalf("bad case: in %q and want %q differ in length", tt.in, tt.want)
			}
			cfg := valid()
			// The stepper ticks the clock, so the interval is not waited
			// for; a generous timeout keeps a slow machine from failing
			// a check that should pass.
			cfg.Interval, cfg.Timeout = 5*time.Second, 5*time.Second
			cfg.Failures, cfg.Successes = tt.failures, tt.successes
			backends(t, cfg, func(t *testing.T, app backend) {
				s := startStepped(t, app, nil)
				healthy := false
				for i := range len(tt.in) {
					ans := pass
					if tt.in[i] == '-' {
						ans = fail
					}
					last := s.step(ans)
					want := tt.want[i] == 'H'
					if got := s.c.Healthy(); got != want {
						t.Fatalf("after check %d (%s of %q): Healthy() = %v, want %v; last: %+v", i+1, ans, tt.in, got, want, last)
					}
					if last.Healthy != want || last.OK != (ans == pass) {
						t.Fatalf("after check %d: Last() = %+v, want OK=%v Healthy=%v", i+1, last, ans == pass, want)
					}
					if want != healthy {
						select {
						case got := <-s.c.Changes():
							if got != want {
								t.Fatalf("after check %d: Changes delivered %v, want %v", i+1, got, want)
							}
						default:
							t.Fatalf("after check %d: no value on Changes, want %v", i+1, want)
						}
					} else {
						noChange(t, s.c)
					}
					healthy = want
				}
			})
		})
	}
}

func TestLastCountsConsecutive(t *testing.T) {
	cfg := valid()
	cfg.Interval, cfg.Timeout = 5*time.Second, 5*time.Second
	backends(t, cfg, func(t *testing.T, app backend) {
		s := startStepped(t, app, nil)
		s.step(pass)
		s.step(pass)
		if last := s.step(pass); last.Successes != 3 || last.Failures != 0 || last.Err != "" {
			t.Errorf("after +++: Last() = %+v, want Successes 3, Failures 0, no error", last)
		}
		s.step(fail)
		last := s.step(fail)
		if last.Successes != 0 || last.Failures != 2 || last.OK {
			t.Errorf("after +++--: Last() = %+v, want Successes 0, Failures 2, not OK", last)
		}
		if !strings.Contains(last.Err, app.failText()) {
			t.Errorf("Last().Err = %q, want it to say why (%q)", last.Err, app.failText())
		}
		if last.Time.IsZero() || last.Duration <= 0 {
			t.Errorf("Last() = %+v, want its time and duration", last)
		}
	})
}

func TestChangesLatestWins(t *testing.T) {
	cfg := valid()
	cfg.Interval, cfg.Timeout = 5*time.Second, 5*time.Second
	cfg.Failures, cfg.Successes = 1, 1
	s := startStepped(t, newURLApp(t, cfg), nil)
	// Three transitions (true, false, true) while nobody reads: the reader
	// then sees only the latest, the current state.
	s.step(pass)
	s.step(fail)
	s.step(pass)
	select {
	case got := <-s.c.Changes():
		if !got {
			t.Fatal("Changes delivered false, want the latest state, true")
		}
	default:
		t.Fatal("no value on Changes after three transitions")
	}
	noChange(t, s.c)
	s.step(fail)
	waitState(t, s.c, false)
}

// TestCommandCheck: a flipped answer is seen at the next check, a failure
// with the command's exit status and last output line.
func TestCommandCheck(t *testing.T) {
	cfg := valid()
	// SIGTERM comes at Timeout - min(500ms, Timeout/2): leave room for a
	// shell's start on a loaded machine.
	cfg.Interval, cfg.Timeout = 200*time.Millisecond, 200*time.Millisecond
	cfg.Failures, cfg.Successes = 1, 1
	app := newCmdApp(t, cfg)
	c, clk := newTicked(app.config(), discard())
	run(t, c)

	tickUntil(t, c, clk, true)
	if last := c.Last(); !last.OK || last.Err != "" {
		t.Errorf("Last() = %+v after a passing check", last)
	}
	app.set(fail)
	tickUntil(t, c, clk, false)
	last := c.Last()
	if !strings.Contains(last.Err, "exit status 1") || !strings.Contains(last.Err, "app says no") {
		t.Errorf("Last().Err = %q, want the exit status and the last output line", last.Err)
	}
	app.set(pass)
	tickUntil(t, c, clk, true)
}

func TestURLCheck(t *testing.T) {
	cfg := valid()
	cfg.Interval, cfg.Timeout = 100*time.Millisecond, 100*time.Millisecond
	cfg.Failures, cfg.Successes = 1, 1
	app := newURLApp(t, cfg)
	c, clk := newTicked(app.config(), discard())
	run(t, c)

	tickUntil(t, c, clk, true) // 204
	app.set(fail)
	tickUntil(t, c, clk, false) // 500
	if last := c.Last(); !strings.Contains(last.Err, "500 Internal Server Error") {
		t.Errorf("Last().Err = %q, want the status", last.Err)
	}
	app.set(pass)
	tickUntil(t, c, clk, true)
	app.set(hang)
	tickUntil(t, c, clk, false) // timed out, on the real clock
	last := c.Last()
	if !strings.Contains(last.Err, "Timeout") && !strings.Contains(last.Err, "deadline exceeded") {
		t.Errorf("Last().Err = %q, want a timeout", last.Err)
	}
	if last.Duration > cfg.Timeout+time.Second {
		t.Errorf("a hanging check took %s, want about the timeout %s", last.Duration, cfg.Timeout)
	}
}

// TestCheckTimeout: a check that hangs fails at its timeout, and the
// hanging command's process group is killed (goleak and the runner's reaping
// would notice otherwise).
func TestCheckTimeout(t *testing.T) {
	cfg := valid()
	cfg.Failures, cfg.Successes = 1, 1
	// A command needs room for a shell's start before its SIGTERM at
	// Timeout/2; an HTTP request on loopback does not.
	cmdCfg, urlCfg := cfg, cfg
	cmdCfg.Interval, cmdCfg.Timeout = 500*time.Millisecond, 500*time.Millisecond
	urlCfg.Interval, urlCfg.Timeout = 200*time.Millisecond, 200*time.Millisecond
	test := func(t *testing.T, app backend) {
		cfg := app.config()
		s := startStepped(t, app, nil)
		s.step(pass)
		waitState(t, s.c, true)
		last := s.step(hang)
		if last.OK || s.c.Healthy() {
			t.Fatalf("after a hanging check: Last() = %+v, Healthy() = %v; want failed and unhealthy", last, s.c.Healthy())
		}
		waitState(t, s.c, false)
		// hooks.Runner returns by Timeout + 2 x WaitDelay; the HTTP client by Timeout.
		if last.Duration < cfg.Timeout/4 || last.Duration > cfg.Timeout+time.Second {
			t.Errorf("a hanging check took %s, want about the timeout %s", last.Duration, cfg.Timeout)
		}
		if !strings.Contains(last.Err, "timed out") && !strings.Contains(last.Err, "Timeout") {
			t.Errorf("Last().Err = %q, want a timeout", last.Err)
		}
	}
	t.Run("cmd", func(t *testing.T) { test(t, newCmdApp(t, cmdCfg)) })
	t.Run("url", func(t *testing.T) { test(t, newURLApp(t, urlCfg)) })
}

// TestRunReturnsWhileCommandHangs: cancelling Run while a command check
// hangs (far from its timeout) kills the command and returns at once, and
// the cut-short check is not counted.
func TestRunReturnsWhileCommandHangs(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "started")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// Opened read-write, the fifo neither blocks this open nor the
	// command's write; reads go through the poller, so they take a deadline.
	started, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer started.Close()

	cfg := valid()
	cfg.Interval, cfg.Timeout = time.Minute, time.Minute
	cfg.Command = fmt.Sprintf("echo started > '%s'; exec sleep 60", fifo)
	c := NewChecker(cfg, discard())
	stop := run(t, c)

	if err := started.SetReadDeadline(time.Now().Add(within)); err != nil {
		t.Fatal(err)
	}
	if _, err := started.Read(make([]byte, 16)); err != nil {
		t.Fatalf("the check command did not start: %v", err)
	}
	begin := time.Now()
	stop()
	if took := time.Since(begin); took > 2*time.Second {
		t.Errorf("Run took %s to return after cancel while a check hung", took)
	}
	if last := c.Last(); last.Checks != 0 {
		t.Errorf("Last() = %+v, want no check counted: the cut-short one says nothing about the app", last)
	}
	if c.Healthy() {
		t.Error("Healthy() = true, want false: no check has passed")
	}
}

// record is one captured log record.
type record struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

// capture is a slog.Handler that keeps every record, from debug up.
type capture struct {
	mu      sync.Mutex
	records []record
}

func (h *capture) Enabled(context.Context, slog.Level) bool { return true }
func (h *capture) Handle(_ context.Context, r slog.Record) error {
	rec := record{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	h.records = append(h.records, rec)
	h.mu.Unlock()
	return nil
}
func (h *capture) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *capture) WithGroup(string) slog.Handler      { return h }

func (h *capture) all() []record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]record(nil), h.records...)
}

func TestLogsTransitionsOnce(t *testing.T) {
	cfg := valid()
	cfg.Interval, cfg.Timeout = 5*time.Second, 5*time.Second
	cfg.Failures, cfg.Successes = 2, 1
	backends(t, cfg, func(t *testing.T, app backend) {
		h := &capture{}
		s := startStepped(t, app, slog.New(h))
		in := "--" + "-" + "+" + "+-" + "+" + "---" + "+"
		for _, ch := range in {
			if ch == '+' {
				s.step(pass)
			} else {
				s.step(fail)
			}
		}
		s.stop() // the last check's lines are logged once Run has returned
		// Above debug: the start, the unhealthy state once settled at
		// start, then each transition once. Per-check lines (the checker's
		// and the hook runner's) are debug.
		want := []struct {
			level slog.Level
			msg   string
		}{
			{slog.LevelInfo, "health checks started"},
			{slog.LevelWarn, "app unhealthy"},
			{slog.LevelInfo, "app healthy"},
			{slog.LevelWarn, "app unhealthy"},
			{slog.LevelInfo, "app healthy"},
		}
		var got []record
		checks := 0
		for _, r := range h.all() {
			if r.msg == "health check" {
				checks++
			}
			if r.level > slog.LevelDebug {
				got = append(got, r)
			}
		}
		if checks != len(in) {
			t.Errorf("%d debug lines per check, want %d", checks, len(in))
		}
		if len(got) != len(want) {
			t.Fatalf("logged above debug: %+v, want %+v", got, want)
		}
		for i, w := range want {
			if got[i].level != w.level || got[i].msg != w.msg {
				t.Errorf("record %d: %s %q, want %s %q", i, got[i].level, got[i].msg, w.level, w.msg)
			}
		}
		fail := app.failText()
		for _, i := range []int{1, 3} {
			if !strings.Contains(got[i].attrs["err"], fail) {
				t.Errorf("%q logged with err %q, want the last check's error (%q)", got[i].msg, got[i].attrs["err"], fail)
			}
		}
	})
}
