package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"

	"google.golang.org/grpc/grpclog"

	"github.com/leaderd/leaderd/health"
	"github.com/leaderd/leaderd/sidecar"
)

// runOptions is everything `leaderd run` parsed: the sidecar's Config and
// how to log.
type runOptions struct {
	Config    sidecar.Config
	LogFormat string     // text or json
	LogLevel  slog.Level // debug, info, warn or error
}

// runFlags is the flag set of `leaderd run`: DESIGN.md's flag table. Usage
// lists the election flags, then this replica's, then TLS and auth.
type runFlags struct {
	set                           *flagSet
	conn                          connFlags
	id, ttl                       *boundFlag
	onPromote, onDemote           *boundFlag
	onLeaderChange                *boundFlag
	promoteTimeout, demoteTimeout *boundFlag
	listen, logFormat, logLevel   *boundFlag
	advertise, apiToken           *boundFlag
	noFailover                    *boundFlag
	healthCmd, healthURL          *boundFlag
	healthInterval, healthTimeout *boundFlag
	healthFailures, healthSuccess *boundFlag
}

func newRunFlags(env lookupEnv) *runFlags {
	def := sidecar.DefaultConfig()
	s := newFlagSet("run", "--election NAME [flags]",
		"Campaign for the election beside this replica and run the promote and demote\n"+
			"hooks when its role changes. SIGTERM or SIGINT stops gracefully (demote,\n"+
			"resign, revoke the lease); a second signal cuts the etcd clean-up short\n"+
			"but never a running demote hook. SIGHUP is logged and ignored (there is no\n"+
			"configuration reload: restart to apply changes); a closed stdout or stderr\n"+
			"does not stop it.\n\n"+
			"Exit status: 0 after a graceful stop, 1 on a runtime error, 2 on bad input.", env)
	f := &runFlags{set: s}
	f.conn = bindElection(s, def)
	f.id = s.str("id", "NAME", def.ID, "the hostname ("+orUnknown(def.ID)+")", "this replica's name, unique in the election")
	// Each default of a related pair follows the other flag when only that
	// one is set, so a default never makes a valid choice invalid; usage
	// shows the rule.
	f.ttl = s.str("ttl", "DURATION", durationText(def.TTL),
		"max("+durationText(def.TTL)+", ceil(2.5 x --demote-timeout))", "lease TTL, whole seconds, at least 2s")
	f.onPromote = s.str("on-promote", "CMD", "", "", "promote hook, run as /bin/sh -c CMD")
	f.onDemote = s.str("on-demote", "CMD", "", "", "demote hook, run as /bin/sh -c CMD, also at start")
	f.onLeaderChange = s.str("on-leader-change", "CMD", "", "", "on a standby, once a new primary has promoted")
	f.promoteTimeout = s.str("promote-timeout", "DURATION", durationText(def.PromoteTimeout), "", "kill the promote hook after this long")
	f.demoteTimeout = s.str("demote-timeout", "DURATION", durationText(def.DemoteTimeout),
		"min("+durationText(def.DemoteTimeout)+", --ttl/2 - max(500ms, --ttl/10))", "kill the demote hook after this long")
	f.healthCmd = s.str("health-cmd", "CMD", "", "", "app health check command; exit 0 = healthy")
	f.healthURL = s.str("health-url", "URL", "", "", "app health check by HTTP GET; 2xx = healthy")
	f.healthInterval = s.str("health-interval", "DURATION", durationText(def.Health.Interval),
		"max("+durationText(def.Health.Interval)+", --health-timeout)", "time between health checks")
	f.healthTimeout = s.str("health-timeout", "DURATION", durationText(def.Health.Timeout),
		"min("+durationText(def.Health.Timeout)+", --health-interval)", "a check not answered by then failed")
	f.healthFailures = s.str("health-failures", "N", strconv.Itoa(def.Health.Failures), "", "consecutive failed checks to turn unhealthy")
	f.healthSuccess = s.str("health-successes", "N", strconv.Itoa(def.Health.Successes), "", "consecutive good checks to turn healthy again")
	f.listen = s.str("listen", "ADDR", def.Listen, "", "HTTP API address host:port, or off")
	f.noFailover = s.switchFlag("no-failover", "a member that never campaigns (follows only)")
	f.apiToken = s.str("api-token", "TOKEN", "", "", "bearer token that allows POST /resign")
	f.advertise = s.str("advertise", "ADDR", "", "", "app address to publish in the member record")
	f.logFormat = s.str("log-format", "FORMAT", "text", "", "log format: text or json")
	f.logLevel = s.str("log-level", "LEVEL", "info", "", "log level: debug, info, warn or error")
	f.conn.bindTLSAuth(s)
	return f
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown here"
	}
	return s
}

// parseRun turns `leaderd run` arguments and the environment into validated
// options without starting anything. It returns errHelp for --help. Other
// errors are one line that names the flag or environment variable.
func parseRun(args []string, env lookupEnv) (runOptions, error) {
	f := newRunFlags(env)
	return f.parse(args)
}

func (f *runFlags) parse(args []string) (runOptions, error) {
	if err := f.set.parse(args); err != nil {
		return runOptions{}, err
	}
	cfg := sidecar.DefaultConfig()
	if err := f.conn.apply(&cfg); err != nil {
		return runOptions{}, err
	}
	if f.id.isSet() {
		cfg.ID = f.id.value
	}
	cfg.OnPromote, cfg.OnDemote = f.onPromote.value, f.onDemote.value
	cfg.OnLeaderChange = f.onLeaderChange.value
	cfg.Listen = f.listen.value
	cfg.Advertise = f.advertise.value
	cfg.APIToken = f.apiToken.value
	var err error
	if cfg.NoFailover, err = f.noFailover.on(); err != nil {
		return runOptions{}, err
	}
	cfg.Version = versionString()
	if cfg.TTL, err = f.ttl.duration(); err != nil {
		return runOptions{}, err
	}
	if cfg.PromoteTimeout, err = f.promoteTimeout.duration(); err != nil {
		return runOptions{}, err
	}
	if cfg.DemoteTimeout, err = f.demoteTimeout.duration(); err != nil {
		return runOptions{}, err
	}
	// Only one of the pair set: the other's default follows it. Both set
	// and in conflict: Validate names both.
	switch {
	case f.ttl.isSet() && !f.demoteTimeout.isSet():
		cfg.DemoteTimeout = sidecar.DemoteTimeoutFor(cfg.TTL)
	case f.demoteTimeout.isSet() && !f.ttl.isSet():
		cfg.TTL = sidecar.TTLFor(cfg.DemoteTimeout)
	}
	if err := f.applyHealth(&cfg); err != nil {
		return runOptions{}, err
	}
	opts := runOptions{Config: cfg}
	if opts.LogFormat, err = parseLogFormat(f.logFormat); err != nil {
		return runOptions{}, err
	}
	if opts.LogLevel, err = parseLogLevel(f.logLevel); err != nil {
		return runOptions{}, err
	}
	if err := cfg.Validate(); err != nil {
		return runOptions{}, f.set.explain(err)
	}
	return opts, nil
}

func (f *runFlags) applyHealth(cfg *sidecar.Config) error {
	h := &cfg.Health
	h.Command, h.URL = f.healthCmd.value, f.healthURL.value
	var err error
	if h.Interval, err = f.healthInterval.duration(); err != nil {
		return err
	}
	if h.Timeout, err = f.healthTimeout.duration(); err != nil {
		return err
	}
	switch { // as for --ttl and --demote-timeout
	case f.healthInterval.isSet() && !f.healthTimeout.isSet():
		h.Timeout = health.TimeoutFor(h.Interval)
	case f.healthTimeout.isSet() && !f.healthInterval.isSet():
		h.Interval = health.IntervalFor(h.Timeout)
	}
	if h.Failures, err = f.healthFailures.count(); err != nil {
		return err
	}
	h.Successes, err = f.healthSuccess.count()
	return err
}

// stopper is what runUntilSignalled needs of a *sidecar.Sidecar.
type stopper interface {
	Run(ctx context.Context) error
	Abort()
}

// runCommand is `leaderd run`.
func runCommand(args []string, env lookupEnv, stdout, stderr io.Writer) int {
	f := newRunFlags(env)
	opts, err := f.parse(args)
	if errors.Is(err, errHelp) {
		f.set.usage(stdout)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "leaderd run: %s\n", oneLine(err.Error()))
		return exitBadInput
	}
	surviveBrokenPipes()
	// Every log line goes through a sink that never blocks: nothing on the
	// step-down path may wait on stderr.
	sink := newLogSink(stderr, opts.LogFormat)
	defer sink.Close(logFlushTimeout)
	if stderr == os.Stderr {
		// gRPC (errors) and net/http write to the process's stderr by
		// themselves; route them through the sink too. Before any gRPC use.
		grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, io.Discard, sink))
		log.SetOutput(sink)
	}
	opts.Config.LogLinesDropped = sink.Dropped
	logger := newLogger(sink, opts.LogFormat, opts.LogLevel)
	sc, err := sidecar.New(opts.Config, logger)
	if err != nil { // Validate already passed; New may check more.
		fmt.Fprintf(stderr, "leaderd run: %s\n", oneLine(err.Error()))
		return exitBadInput
	}
	logStarting(logger, opts)

	signals, stop := notifySignals()
	defer stop()
	if err := runUntilSignalled(sc, signals, logger); err != nil {
		logger.Error("stopped with an error", "err", err)
		return exitError
	}
	logger.Info("stopped")
	return exitOK
}

// runUntilSignalled runs sc until it returns. The first termination signal
// cancels its context (graceful stop); the second calls Abort to cut the etcd
// clean-up short. Later signals are only logged: the stop is already as fast
// as it can be without skipping a demote hook. SIGHUP is logged and ignored.
func runUntilSignalled(sc stopper, signals <-chan os.Signal, logger *slog.Logger) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- sc.Run(ctx) }()
	received := 0
	for {
		select {
		case err := <-done:
			return err
		case sig := <-signals:
			if sig == syscall.SIGHUP {
				logger.Info(hangupIgnored, "signal", sig.String())
				continue
			}
			received++
			switch received {
			case 1:
				logger.Info("stopping gracefully; send the signal again to cut etcd clean-up short", "signal", sig.String())
				cancel()
			case 2:
				logger.Warn("second signal: cutting etcd clean-up short", "signal", sig.String())
				sc.Abort()
			default:
				logger.Warn("already stopping; a running demote hook is never interrupted", "signal", sig.String())
			}
		}
	}
}

// logStarting logs the effective configuration, never a secret: not the
// password, and not the hook and health check command lines (they may hold
// credentials), only whether each is set.
func logStarting(logger *slog.Logger, opts runOptions) {
	c := opts.Config
	logger.Info("starting",
		"version", versionString(),
		"id", c.ID,
		"election", c.Election,
		"endpoints", strings.Join(c.Endpoints, ","),
		"prefix", c.Prefix,
		"ttl", c.TTL.String(),
		"renew_interval", c.RenewInterval().String(),
		"step_down_lead", c.StepDownLead().String(),
		"on_promote_set", c.OnPromote != "",
		"on_demote_set", c.OnDemote != "",
		"on_leader_change_set", c.OnLeaderChange != "",
		"health_cmd_set", c.Health.Command != "",
		"promote_timeout", c.PromoteTimeout.String(),
		"demote_timeout", c.DemoteTimeout.String(),
		"listen", c.Listen,
		"cacert", c.CACert,
		"cert", c.Cert,
		"key", c.Key,
		"user", c.User,
		"password_set", c.Password != "",
		"log_level", opts.LogLevel.String(),
		"pid", os.Getpid(),
	)
}
