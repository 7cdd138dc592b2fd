// Package health checks the local app's health for leaderd's health-gated
// candidacy: a shell command (exit 0) or an HTTP URL (2xx), run every
// Interval, with hysteresis (Failures consecutive failures to turn
// unhealthy, Successes consecutive successes to turn healthy again), so a
// replica's role cannot flap faster than the thresholds allow.
//
// Initial state: with no check configured the app is healthy, always. With a
// check configured it starts unhealthy and turns healthy after its first
// Successes consecutive successful checks; the first check runs as soon as
// Run starts. An app whose health is not known yet must not be promoted (the
// conservative choice Patroni makes too): a replica that won the election
// before its app had answered would run promote on an app that may be
// down, and then step down again at once. Waiting costs little: with the
// default Successes=1 it is one check's duration.
package health

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"
)

// Result is the outcome of the last check, and the counters after it.
type Result struct {
	Time      time.Time     `json:"time"`      // when the check started
	Duration  time.Duration `json:"-"`         // how long it took
	OK        bool          `json:"ok"`        // the check passed
	Err       string        `json:"error"`     // why it failed; empty when OK
	Successes int           `json:"successes"` // consecutive successful checks, this one included
	Failures  int           `json:"failures"`  // consecutive failed checks, this one included
	Checks    int           `json:"checks"`    // checks done since Run started
	Healthy   bool          `json:"healthy"`   // the state after this check
}

// Checker runs the configured check and keeps the app's health state.
// Healthy, Changes and Last are safe to call from any goroutine, also before
// and after Run.
type Checker struct {
	cfg     Config
	log     *slog.Logger
	probe   probe      // nil when no check is configured
	changes chan bool  // buffered 1: the latest transition
	mu      sync.Mutex // guards the fields below
	healthy bool       // the state Healthy reports
	logged  bool       // the current state has been logged; false only before the first one is settled
	last    Result     // the last check done

	clock clock // paces the checks and times them; realClock but in tests
}

// NewChecker returns a Checker for cfg. cfg must be valid (see
// Config.Validate); NewChecker panics otherwise, as that is a programming
// error: user input is validated at start-up. A nil logger discards.
func NewChecker(cfg Config, logger *slog.Logger) *Checker {
	if err := cfg.Validate(); err != nil {
		panic(fmt.Sprintf("health: NewChecker: invalid config: %v", err))
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Checker{
		cfg:     cfg,
		log:     logger.With("component", "health"),
		changes: make(chan bool, 1),
		healthy: !cfg.Enabled(),
		logged:  !cfg.Enabled(),
		clock:   realClock{},
	}
	switch {
	case cfg.Command != "":
		c.probe = &commandProbe{command: cfg.Command, timeout: cfg.Timeout, log: c.log}
	case cfg.URL != "":
		c.probe = newURLProbe(cfg.URL, cfg.Timeout)
	}
	return c
}

// Run checks every Interval until ctx ends; the first check runs at once.
// A check cut short by ctx is not counted. Run returns soon after ctx ends,
// also while a check hangs (a command's process group is killed). With no
// check configured Run just waits for ctx. Call Run once.
func (c *Checker) Run(ctx context.Context) {
	if c.probe == nil {
		<-ctx.Done()
		return
	}
	defer c.probe.close()
	// Never the command line: it may hold credentials. A URL is logged
	// with its password masked.
	what := []any{"check", "command"}
	if c.cfg.URL != "" {
		what = []any{"check", "url", "url", redactedURL(c.cfg.URL)}
	}
	c.log.Info("health checks started", append(what, "interval", c.cfg.Interval, "timeout", c.cfg.Timeout,
		"failures", c.cfg.Failures, "successes", c.cfg.Successes)...)

	// A ticker keeps the checks' starts Interval apart; as Timeout <=
	// Interval they do not overlap (a tick missed by a slow check is dropped).
	tick := c.clock.NewTicker(c.cfg.Interval)
	defer tick.Stop()
	for done := 0; c.due(ctx, done, tick.C()); done++ {
		start := c.clock.Now()
		err := c.probe.check(ctx)
		if ctx.Err() != nil {
			return // cut short by shutdown: says nothing about the app
		}
		c.record(start, c.clock.Now().Sub(start), err)
	}
}

// due waits until check number done+1 is due: the first at once, the others
// at the next tick. It reports false when ctx has ended.
func (c *Checker) due(ctx context.Context, done int, tick <-chan time.Time) bool {
	if done == 0 {
		return ctx.Err() == nil
	}
	select {
	case <-ctx.Done():
		return false
	case <-tick:
		return ctx.Err() == nil
	}
}

// record applies one check's outcome to the state and logs a transition.
func (c *Checker) record(start time.Time, took time.Duration, err error) {
	c.mu.Lock()
	res := Result{
		Time:      start,
		Duration:  took,
		OK:        err == nil,
		Successes: c.last.Successes,
		Failures:  c.last.Failures,
		Checks:    c.last.Checks + 1,
	}
	if err == nil {
		res.Successes++
		res.Failures = 0
	} else {
		res.Err = err.Error()
		res.Failures++
		res.Successes = 0
	}
	was := c.healthy
	switch {
	case res.OK && !c.healthy && res.Successes >= c.cfg.Successes:
		c.healthy = true
	case !res.OK && c.healthy && res.Failures >= c.cfg.Failures:
		c.healthy = false
	}
	res.Healthy = c.healthy
	c.last = res
	changed := c.healthy != was
	if changed {
		// Latest wins: replace an unread value. Only record sends, under
		// mu, so the buffer is empty after the drain and the send never
		// blocks.
		select {
		case <-c.changes:
		default:
		}
		c.changes <- c.healthy
	}
	// Log a transition, and the first settled state when it is unhealthy (an
	// app that never came up is worth a warning, though Healthy did not change).
	logIt := changed || (!c.logged && !res.OK && res.Failures >= c.cfg.Failures)
	if logIt {
		c.logged = true
	}
	c.mu.Unlock()

	c.log.Debug("health check", "ok", res.OK, "duration", res.Duration, "err", res.Err,
		"successes", res.Successes, "failures", res.Failures)
	switch {
	case !logIt:
	case res.Healthy:
		c.log.Info("app healthy", "successes", res.Successes, "checks", res.Checks)
	default:
		c.log.Warn("app unhealthy", "err", res.Err, "failures", res.Failures, "checks", res.Checks)
	}
}

// Healthy reports the app's current state.
func (c *Checker) Healthy() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.healthy
}

// Changes returns a channel that receives the new state on every transition
// of Healthy. It is buffered 1 and the latest value wins: a value not read
// yet is replaced by a newer one, so a reader that falls behind sees the
// current state, never a stale one (it may miss an intermediate flip). One
// reader; the channel is never closed. With no check configured nothing is
// ever sent.
func (c *Checker) Changes() <-chan bool { return c.changes }

// Last returns the last check's outcome; its zero value before the first
// check has ended.
func (c *Checker) Last() Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// redactedURL is raw with any password replaced by "xxxxx".
func redactedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	return u.Redacted()
}
