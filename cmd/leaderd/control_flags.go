package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/leaderd/leaderd/sidecar"
)

// controlOptions is what a control command parsed.
type controlOptions struct {
	Config  sidecar.Config
	To      string        // switchover only
	At      time.Time     // switchover --at; zero: at once
	Cancel  bool          // switchover --cancel
	Wait    time.Duration // resign, switchover: 0 = do not wait
	Timeout time.Duration // resign, switchover: the request's lifetime
}

// controlFlags are status's connection flags (parsed and validated by
// statusFlags.parse, so every command accepts and refuses the same input)
// plus, for resign and switchover, --wait and --timeout, and for
// switchover --to.
type controlFlags struct {
	status        statusFlags
	to, at        *boundFlag
	cancel        *boolFlag
	wait, timeout *boundFlag
	now           func() time.Time // for --at; time.Now
}

func newControlFlags(cmd, synopsis, about string, env lookupEnv) *controlFlags {
	s := newFlagSet(cmd, synopsis, about, env)
	f := &controlFlags{status: statusFlags{set: s}}
	f.status.conn = bindElection(s, sidecar.DefaultConfig())
	if cmd == "switchover" {
		f.to = s.str("to", "ID", "", "", "the standby to hand the primary role to; required")
		f.at = s.str("at", "TIME", "", "now",
			"hand over at TIME: RFC 3339 (2026-12-01T02:00:00Z) or +DURATION from now (+10m)")
		f.cancel = s.boolean("cancel", "cancel the pending switchover request (takes no --to or --at)")
	}
	if cmd == "resign" || cmd == "switchover" {
		wait, timeout := "wait for the new primary; 0: return once the request is stored",
			"the request expires after this long"
		if cmd == "switchover" {
			wait = "wait (from --at) until --to has promoted; 0: return once the request is stored"
			timeout = "the request expires this long after --at (or now)"
		}
		f.wait = s.str("wait", "DURATION", durationText(defaultControlWait), "", wait)
		f.timeout = s.str("timeout", "DURATION", durationText(defaultControlTimeout), "", timeout)
	}
	f.status.conn.bindTLSAuth(s)
	// The control commands print no JSON; statusFlags.parse reads this.
	f.status.json = &boolFlag{name: "json"}
	return f
}

// parse returns errHelp for --help. Errors name the flag.
func (f *controlFlags) parse(args []string) (controlOptions, error) {
	st, err := f.status.parse(args)
	if err != nil {
		return controlOptions{}, err
	}
	opts := controlOptions{Config: st.Config}
	if f.cancel != nil && f.cancel.value {
		// The environment twins are ignored: a LEADERD_TO kept in the
		// environment must not make --cancel fail.
		if f.to.source == fromFlag || f.at.source == fromFlag {
			return controlOptions{}, errors.New("--cancel: takes no --to or --at")
		}
		opts.Cancel = true
		return opts, nil
	}
	if f.to != nil {
		opts.To = strings.TrimSpace(f.to.value)
		if opts.To == "" {
			return controlOptions{}, errors.New("--to: required: the id of the standby to hand over to")
		}
		now := time.Now
		if f.now != nil {
			now = f.now
		}
		if opts.At, err = parseAt(f.at, now()); err != nil {
			return controlOptions{}, err
		}
	}
	if f.wait != nil {
		if opts.Wait, err = f.wait.duration(); err != nil {
			return controlOptions{}, err
		}
		if opts.Wait < 0 {
			return controlOptions{}, fmt.Errorf("%s: want 0 or more, got %q", f.wait.origin(), f.wait.value)
		}
		if opts.Timeout, err = f.timeout.duration(); err != nil {
			return controlOptions{}, err
		}
		if opts.Timeout <= 0 {
			return controlOptions{}, fmt.Errorf("%s: want more than 0, got %q", f.timeout.origin(), f.timeout.value)
		}
		// The request is stored as JSON, whose times end with the year
		// 9999: refuse here rather than fail at the put with exit 1.
		if !opts.At.IsZero() && opts.At.Add(opts.Timeout).UTC().Year() > 9999 {
			return controlOptions{}, fmt.Errorf("%s: the request would expire after the year 9999 (%s + --timeout %s)",
				f.at.origin(), f.at.value, f.timeout.value)
		}
	}
	return opts, nil
}

// parseAt reads --at: an RFC 3339 time, or +DURATION from now. It must be
// in the future; empty is zero (at once).
func parseAt(f *boundFlag, now time.Time) (time.Time, error) {
	v := strings.TrimSpace(f.value)
	if v == "" {
		return time.Time{}, nil
	}
	if rest, ok := strings.CutPrefix(v, "+"); ok {
		d, err := time.ParseDuration(rest)
		if err != nil {
			return time.Time{}, fmt.Errorf("%s: invalid duration %q: want +DURATION such as +10m", f.origin(), f.value)
		}
		if d <= 0 {
			return time.Time{}, fmt.Errorf("%s: want a duration more than 0, got %q", f.origin(), f.value)
		}
		return now.Add(d), nil
	}
	at, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: want an RFC 3339 time (2026-12-01T02:00:00Z) or +DURATION (+10m), got %q", f.origin(), f.value)
	}
	if !at.After(now) {
		return time.Time{}, fmt.Errorf("%s: %s is in the past (now %s)", f.origin(), v, now.UTC().Format(time.RFC3339))
	}
	return at, nil
}
