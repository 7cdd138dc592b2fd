package health

import (
	"log/slog"
	"testing"
	"time"
)

// manualClock tells the real time, but its ticker ticks only when the test
// says so: the checks stay real (a command, an HTTP request, their
// timeouts), and no test waits out an Interval.
type manualClock struct {
	ticks chan time.Time // unbuffered: only a Run waiting for its next check takes a tick
}

func (m *manualClock) Now() time.Time                 { return time.Now() }
func (m *manualClock) NewTicker(time.Duration) ticker { return manualTicker{m.ticks} }

type manualTicker struct{ c chan time.Time }

func (t manualTicker) C() <-chan time.Time { return t.c }
func (manualTicker) Stop()                 {}

// newTicked returns a Checker for cfg whose checks after the first are due
// only when the test ticks the returned clock.
func newTicked(cfg Config, logger *slog.Logger) (*Checker, *manualClock) {
	c := NewChecker(cfg, logger)
	clk := &manualClock{ticks: make(chan time.Time)}
	c.clock = clk
	return c, clk
}

// tick makes the next check due. It returns once Run has taken the tick,
// so the check before has been recorded.
func (m *manualClock) tick(t *testing.T) {
	t.Helper()
	select {
	case m.ticks <- time.Now():
	case <-time.After(within):
		t.Fatalf("Run did not take a tick within %s", within)
	}
}

// tickUntil ticks whenever Run waits for one (never with a nil clk), until
// Changes delivers want. Other values may come first when a check fails by
// accident (say a slow machine); they are skipped.
func tickUntil(t *testing.T, c *Checker, clk *manualClock, want bool) {
	t.Helper()
	var ticks chan time.Time // nil: never ready
	if clk != nil {
		ticks = clk.ticks
	}
	timeout := time.After(within)
	for {
		select {
		case got := <-c.Changes():
			if got == want {
				if c.Healthy() != want {
					t.Fatalf("Changes delivered %v but Healthy() = %v", want, !want)
				}
				return
			}
		case ticks <- time.Now():
		case <-timeout:
			t.Fatalf("Changes did not deliver %v within %s (last check: %+v)", want, within, c.Last())
		}
	}
}

// TestRealClockPacesChecks: on the real clock the first check runs at once
// and the next ones an Interval apart, not back to back.
func TestRealClockPacesChecks(t *testing.T) {
	cfg := valid()
	cfg.Interval, cfg.Timeout = 50*time.Millisecond, 50*time.Millisecond
	app := newURLApp(t, cfg)
	c := NewChecker(app.config(), discard())
	begin := time.Now()
	stop := run(t, c)
	deadline := begin.Add(within)
	for app.hits() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d checks within %s, want 3 at an interval of %s", app.hits(), within, cfg.Interval)
		}
		time.Sleep(time.Millisecond)
	}
	if took := time.Since(begin); took < 2*cfg.Interval {
		t.Errorf("3 checks took %s, want at least 2 intervals (%s): the first at once, the others on the ticker", took, 2*cfg.Interval)
	}
	stop()
	if !c.Healthy() {
		t.Errorf("Healthy() = false after passing checks; last: %+v", c.Last())
	}
}
