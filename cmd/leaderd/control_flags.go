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
	Wait    time.Duration // resign, switchover: 0 = do not wait
	Timeout time.Duration // resign, switchover: the request's lifetime
}

// controlFlags are status's connection flags (parsed and validated by
// statusFlags.parse, so every command accepts and refuses the same input)
// plus, for resign and switchover, --wait and --timeout, and for
// switchover --to.
type controlFlags struct {
	status        statusFlags
	to            *boundFlag
	wait, timeout *boundFlag
}

func newControlFlags(cmd, synopsis, about string, env lookupEnv) *controlFlags {
	s := newFlagSet(cmd, synopsis, about, env)
	f := &controlFlags{status: statusFlags{set: s}}
	f.status.conn = bindElection(s, sidecar.DefaultConfig())
	if cmd == "switchover" {
		f.to = s.str("to", "ID", "", "", "the standby to hand the primary role to; required")
	}
	if cmd == "resign" || cmd == "switchover" {
		f.wait = s.str("wait", "DURATION", durationText(defaultControlWait), "",
			"wait for the new primary; 0: return once the request is stored")
		f.timeout = s.str("timeout", "DURATION", durationText(defaultControlTimeout), "",
			"the request expires after this long")
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
	if f.to != nil {
		opts.To = strings.TrimSpace(f.to.value)
		if opts.To == "" {
			return controlOptions{}, errors.New("--to: required: the id of the standby to hand over to")
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
	}
	return opts, nil
}
