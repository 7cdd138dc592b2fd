package health

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Config says how the local app's health is checked. Field comments give the
// default that DefaultConfig sets and the flag a user types. With neither
// Command nor URL set, no check runs and the app counts as healthy.
type Config struct {
	// Command is a shell command line run as /bin/sh -c (--health-cmd);
	// exit 0 means healthy. It runs supervised like a hook: its own process
	// group, killed at Timeout, output logged (at debug level). Default: none.
	Command string
	// URL is fetched with GET (--health-url); a 2xx answer means healthy.
	// http or https only; no proxy, no keep-alive. At most one of Command
	// and URL. Default: none.
	URL string
	// Interval is the time between the starts of two checks
	// (--health-interval). Default: 2s, or IntervalFor(Timeout) when only
	// the timeout is set.
	Interval time.Duration
	// Timeout bounds one check (--health-timeout); a check that has not
	// answered by then has failed. At most Interval, so that checks never
	// overlap and the thresholds count in real time. Default: 1s, or
	// TimeoutFor(Interval) when only the interval is set.
	Timeout time.Duration
	// Failures is how many consecutive failed checks turn a healthy app
	// unhealthy (--health-failures). Default: 3.
	Failures int
	// Successes is how many consecutive successful checks turn an unhealthy
	// app healthy, and an app healthy at start (--health-successes).
	// Default: 1.
	Successes int
}

// Defaults. With them an app that stops answering is unhealthy within
// Failures x Interval + Timeout = 7s, and one failed check is forgiven twice.
const (
	DefaultInterval  = 2 * time.Second
	DefaultTimeout   = time.Second
	DefaultFailures  = 3
	DefaultSuccesses = 1
)

// DefaultConfig returns the documented defaults, with no check configured.
func DefaultConfig() Config {
	return Config{
		Interval:  DefaultInterval,
		Timeout:   DefaultTimeout,
		Failures:  DefaultFailures,
		Successes: DefaultSuccesses,
	}
}

// TimeoutFor is the default --health-timeout for an interval the user
// chose: min(DefaultTimeout, interval), so that a short interval alone
// never makes the default timeout invalid.
func TimeoutFor(interval time.Duration) time.Duration { return min(DefaultTimeout, interval) }

// IntervalFor is the default --health-interval for a timeout the user
// chose: max(DefaultInterval, timeout), for the same reason.
func IntervalFor(timeout time.Duration) time.Duration { return max(DefaultInterval, timeout) }

// Enabled reports whether a check is configured.
func (c Config) Enabled() bool { return c.Command != "" || c.URL != "" }

// Validate checks every field and the relations between them, whether or not
// a check is configured (the flags always carry a value, and a bad one is bad
// input either way). Its errors name the flag the user typed.
func (c Config) Validate() error {
	if c.Command != "" && c.URL != "" {
		return errors.New("--health-cmd and --health-url: set one, not both")
	}
	if c.Command != "" && strings.TrimSpace(c.Command) == "" {
		return errors.New("--health-cmd: must not be blank")
	}
	if c.URL != "" {
		if err := validateURL(c.URL); err != nil {
			return fmt.Errorf("--health-url: %q: %v", c.URL, err)
		}
	}
	if c.Interval <= 0 {
		return fmt.Errorf("--health-interval: %s must be positive", c.Interval)
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("--health-timeout: %s must be positive", c.Timeout)
	}
	if c.Timeout > c.Interval {
		return fmt.Errorf("--health-timeout %s must not be longer than --health-interval %s", c.Timeout, c.Interval)
	}
	if c.Failures < 1 {
		return fmt.Errorf("--health-failures: %d must be at least 1", c.Failures)
	}
	if c.Successes < 1 {
		return fmt.Errorf("--health-successes: %d must be at least 1", c.Successes)
	}
	return nil
}

func validateURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("want http://host[:port]/path or https://host[:port]/path")
	}
	return nil
}
