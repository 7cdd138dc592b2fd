package election

import (
	"sync"
	"testing"
	"time"
)

// jumpClock runs with the real clock, but a test can move it forward at
// once: timers due by then fire at once, the others are re-armed for the
// time left. Renewals keep going to a real etcd in real time, so the
// server holds the lease while a test jumps the guard to its deadline.
type jumpClock struct {
	mu    sync.Mutex
	ahead time.Duration // of the real clock
	armed map[*jumpTimer]struct{}
}

func newJumpClock() *jumpClock {
	return &jumpClock{armed: map[*jumpTimer]struct{}{}}
}

func (c *jumpClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.ahead)
}

func (c *jumpClock) NewTimer(d time.Duration) timer {
	t := &jumpTimer{clock: c, c: make(chan time.Time, 1)}
	t.Reset(d)
	return t
}

func (c *jumpClock) AfterFunc(d time.Duration, f func()) timer {
	t := &jumpTimer{clock: c, f: f}
	t.Reset(d)
	return t
}

// jump moves the clock d forward.
func (c *jumpClock) jump(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ahead += d
	for t := range c.armed {
		t.armLocked()
	}
}

// jumpTo moves the clock forward to at, if it is not past it already.
func (c *jumpClock) jumpTo(at time.Time) {
	if d := at.Sub(c.Now()); d > 0 {
		c.jump(d)
	}
}

// jumpTimer is due at a time on its clock; a real timer fires it.
type jumpTimer struct {
	clock *jumpClock
	c     chan time.Time // nil for an AfterFunc timer
	f     func()

	// Guarded by clock.mu.
	at   time.Time
	real *time.Timer
	gen  int // of the real timer armed last: an older one does nothing
}

func (t *jumpTimer) C() <-chan time.Time { return t.c }

func (t *jumpTimer) Reset(d time.Duration) bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	_, active := t.clock.armed[t]
	t.drainLocked()
	t.at = time.Now().Add(t.clock.ahead + d)
	t.clock.armed[t] = struct{}{}
	t.armLocked()
	return active
}

func (t *jumpTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	_, active := t.clock.armed[t]
	delete(t.clock.armed, t)
	t.gen++
	if t.real != nil {
		t.real.Stop()
	}
	t.drainLocked()
	return active
}

// drainLocked drops a tick not taken, as a time.Timer's Reset and Stop do.
func (t *jumpTimer) drainLocked() {
	if t.c == nil {
		return
	}
	select {
	case <-t.c:
	default:
	}
}

// armLocked (re)starts the real timer for the time left until t.at.
func (t *jumpTimer) armLocked() {
	if t.real != nil {
		t.real.Stop()
	}
	t.gen++
	gen := t.gen
	left := t.at.Sub(time.Now().Add(t.clock.ahead))
	t.real = time.AfterFunc(max(0, left), func() { t.fire(gen) })
}

func (t *jumpTimer) fire(gen int) {
	t.clock.mu.Lock()
	if gen != t.gen {
		t.clock.mu.Unlock()
		return
	}
	delete(t.clock.armed, t)
	at := t.at
	t.clock.mu.Unlock()
	if t.c == nil {
		t.f()
		return
	}
	select {
	case t.c <- at:
	default:
	}
}

// leaseOn is opts with the lease's time read off clk.
func leaseOn(opts LeaseOptions, clk *jumpClock) LeaseOptions {
	opts.clock = clk
	return opts
}

// jumpToRenewal moves l's clock to its next renewal and waits (bounded)
// until that renewal succeeded.
func jumpToRenewal(t *testing.T, l *Lease, clk *jumpClock) {
	t.Helper()
	renewed := l.renewal()
	clk.jump(l.untilRenewal())
	select {
	case <-renewed:
	case <-l.Lost():
		t.Fatalf("lease lost instead of renewed: %v", l.Err())
	case <-time.After(bound):
		t.Fatalf("no renewal within %s", bound)
	}
}

// A timer on the jump clock fires when a jump passes its time, and not
// before; one stopped, or reset to later, does not.
func TestJumpClockFiresTimersAJumpPasses(t *testing.T) {
	clk := newJumpClock()
	fired := make(chan struct{})
	clk.AfterFunc(time.Hour, func() { close(fired) })
	stopped := clk.NewTimer(time.Hour)
	stopped.Stop()
	later := clk.NewTimer(time.Hour)
	later.Reset(3 * time.Hour)
	due := clk.NewTimer(2 * time.Hour)

	clk.jump(time.Hour - time.Minute)
	select {
	case <-fired:
		t.Fatal("fired a minute early")
	case <-time.After(20 * time.Millisecond):
	}
	clk.jump(time.Minute)
	waitClosed(t, fired, "the AfterFunc timer")
	clk.jumpTo(clk.Now().Add(time.Hour))
	select {
	case <-due.C():
	case <-time.After(bound):
		t.Fatal("the timer due at 2h did not fire")
	}
	select {
	case <-stopped.C():
		t.Fatal("a stopped timer fired")
	case <-later.C():
		t.Fatal("a timer reset to 3h fired at 2h")
	case <-time.After(20 * time.Millisecond):
	}
}
