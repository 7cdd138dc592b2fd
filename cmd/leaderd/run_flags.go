package main

import (
	"fmt"
	"log/slog"
	"slices"

	"github.com/leaderd/leaderd/health"
	"github.com/leaderd/leaderd/sidecar"
)

// runOptions is everything `leaderd run` parsed: the sidecar's Config and
// how to log.
type runOptions struct {
	Config    sidecar.Config
	LogFormat string     // text or json
	LogLevel  slog.Level // debug, info, warn or error
	// PasswordFile is where Config.Password was read from, for the
	// start-up log; empty when it came from LEADERD_PASSWORD or is unset.
	PasswordFile string
	// Failback is --failback as given (off or after=DURATION), for --help
	// and the start-up log; Config.FailbackAfter holds its value.
	Failback string
}

// defaultRunOptions are what a flag not given keeps.
func defaultRunOptions() runOptions {
	return runOptions{Config: sidecar.DefaultConfig(), LogFormat: "text", LogLevel: slog.LevelInfo, Failback: "off"}
}

// runOptionTable is the flag table of `leaderd run`, in --help order: the
// election's flags, then this replica's, then TLS and auth. def gives the
// rules --help prints for the defaults that follow a related flag.
func runOptionTable(def runOptions) []option {
	c := def.Config
	own := []option{
		{name: "id", arg: "NAME", usage: "this replica's name, unique in the election",
			defText: "the hostname (" + orUnknown(c.ID) + ")",
			field:   func(o *runOptions) any { return &o.Config.ID }},
		{name: "ttl", arg: "DURATION", usage: "lease TTL, whole seconds, at least 2s",
			defText: "max(" + durationText(c.TTL) + ", ceil(2.5 x --demote-timeout))",
			field:   func(o *runOptions) any { return &o.Config.TTL },
			follows: "demote-timeout",
			derive:  func(o *runOptions) { o.Config.TTL = sidecar.TTLFor(o.Config.DemoteTimeout) }},
		{name: "on-promote", arg: "CMD", usage: "promote hook, run as /bin/sh -c CMD", secret: true,
			field: func(o *runOptions) any { return &o.Config.OnPromote }},
		{name: "on-demote", arg: "CMD", usage: "demote hook, run as /bin/sh -c CMD, also at start", secret: true,
			field: func(o *runOptions) any { return &o.Config.OnDemote }},
		{name: "on-leader-change", arg: "CMD", usage: "on a standby, once a new primary has promoted", secret: true,
			field: func(o *runOptions) any { return &o.Config.OnLeaderChange }},
		{name: "promote-timeout", arg: "DURATION", usage: "kill the promote hook after this long",
			field: func(o *runOptions) any { return &o.Config.PromoteTimeout }},
		{name: "demote-timeout", arg: "DURATION", usage: "kill the demote hook after this long",
			defText: "min(" + durationText(c.DemoteTimeout) + ", --ttl/2 - max(500ms, --ttl/10))",
			field:   func(o *runOptions) any { return &o.Config.DemoteTimeout },
			follows: "ttl",
			derive:  func(o *runOptions) { o.Config.DemoteTimeout = sidecar.DemoteTimeoutFor(o.Config.TTL) }},
		{name: "health-cmd", arg: "CMD", usage: "app health check command; exit 0 = healthy", secret: true,
			field: func(o *runOptions) any { return &o.Config.Health.Command }},
		// Secret too: a URL may carry a user and password, or a token in
		// its query.
		{name: "health-url", arg: "URL", usage: "app health check by HTTP GET; 2xx = healthy", secret: true,
			field: func(o *runOptions) any { return &o.Config.Health.URL }},
		{name: "health-interval", arg: "DURATION", usage: "time between health checks",
			defText: "max(" + durationText(c.Health.Interval) + ", --health-timeout)",
			field:   func(o *runOptions) any { return &o.Config.Health.Interval },
			follows: "health-timeout",
			derive:  func(o *runOptions) { o.Config.Health.Interval = health.IntervalFor(o.Config.Health.Timeout) }},
		{name: "health-timeout", arg: "DURATION", usage: "a check not answered by then failed",
			defText: "min(" + durationText(c.Health.Timeout) + ", --health-interval)",
			field:   func(o *runOptions) any { return &o.Config.Health.Timeout },
			follows: "health-interval",
			derive:  func(o *runOptions) { o.Config.Health.Timeout = health.TimeoutFor(o.Config.Health.Interval) }},
		{name: "health-failures", arg: "N", usage: "consecutive failed checks to turn unhealthy",
			field: func(o *runOptions) any { return &o.Config.Health.Failures }},
		{name: "health-successes", arg: "N", usage: "consecutive good checks to turn healthy again",
			field: func(o *runOptions) any { return &o.Config.Health.Successes }},
		{name: "listen", arg: "ADDR", usage: "HTTP API address host:port, or off",
			field: func(o *runOptions) any { return &o.Config.Listen }},
		{name: "no-failover", usage: "a member that never campaigns (follows only)",
			field: func(o *runOptions) any { return &o.Config.NoFailover }},
		{name: "api-token", arg: "TOKEN", usage: "bearer token that allows POST /resign", secret: true,
			field: func(o *runOptions) any { return &o.Config.APIToken }},
		{name: "priority", arg: "N", usage: "failover rank: a higher one campaigning wins",
			field: func(o *runOptions) any { return &o.Config.Priority }},
		{name: "failback", arg: "MODE", usage: "off, or after=DURATION: hand over to a higher one",
			field: func(o *runOptions) any { return &o.Failback },
			set: func(o *runOptions, f *boundFlag) error {
				d, err := sidecar.ParseFailback(f.value)
				if err != nil {
					return fmt.Errorf("%s: %v", f.origin(), err)
				}
				o.Config.FailbackAfter, o.Failback = d, sidecar.FailbackText(d)
				return nil
			}},
		{name: "advertise", arg: "ADDR", usage: "app address to publish in the member record",
			field: func(o *runOptions) any { return &o.Config.Advertise }},
		{name: "log-format", arg: "FORMAT", usage: "log format: text or json",
			field: func(o *runOptions) any { return &o.LogFormat },
			set: func(o *runOptions, f *boundFlag) (err error) {
				o.LogFormat, err = parseLogFormat(f)
				return err
			}},
		{name: "log-level", arg: "LEVEL", usage: "log level: debug, info, warn or error",
			field: func(o *runOptions) any { return &o.LogLevel },
			set: func(o *runOptions, f *boundFlag) (err error) {
				o.LogLevel, err = parseLogLevel(f)
				return err
			}},
	}
	return slices.Concat(electionOptions(), own, tlsAuthOptions())
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown here"
	}
	return s
}

// runFlags is the flag set of `leaderd run`, bound from runOptionTable.
type runFlags struct {
	set     *flagSet
	options boundOptions
}

func newRunFlags(env lookupEnv) *runFlags {
	return newRunOptionFlags("run", "--election NAME [flags]",
		"Campaign for the election beside this replica and run the promote and demote\n"+
			"hooks when its role changes. SIGTERM or SIGINT stops gracefully (demote,\n"+
			"resign, revoke the lease); a second signal cuts the etcd clean-up short\n"+
			"but never a running demote hook. SIGHUP is logged and ignored (there is no\n"+
			"configuration reload: restart to apply changes); a closed stdout or stderr\n"+
			"does not stop it.\n\n"+
			"Exit status: 0 after a graceful stop, 1 on a runtime error, 2 on bad input.", env)
}

// newRunOptionFlags binds runOptionTable to the flag set of cmd: `leaderd
// run`, and `leaderd check`, which takes the very same flags.
func newRunOptionFlags(cmd, synopsis, about string, env lookupEnv) *runFlags {
	s := newFlagSet(cmd, synopsis, about, env)
	def := defaultRunOptions()
	return &runFlags{set: s, options: bindOptions(s, def, runOptionTable(def))}
}

// parseRun turns `leaderd run` arguments and the environment into validated
// options without starting anything. It returns errHelp for --help. Other
// errors are one line that names the flag or environment variable.
func parseRun(args []string, env lookupEnv) (runOptions, error) {
	return newRunFlags(env).parse(args)
}

func (f *runFlags) parse(args []string) (runOptions, error) {
	if err := f.set.parse(args); err != nil {
		return runOptions{}, err
	}
	opts := defaultRunOptions()
	opts.Config.Version = versionString()
	if err := f.options.apply(&opts); err != nil {
		return runOptions{}, err
	}
	if err := opts.Config.Validate(); err != nil {
		return runOptions{}, f.set.explain(err)
	}
	return opts, nil
}
