// Command bench measures leaderd's failover timings and footprint on an
// embedded etcd with three real `leaderd run` processes, each reaching etcd
// through its own fault proxy:
//
//   - graceful hand-off: SIGTERM the primary; old demote end -> new promote start.
//   - crash failover: SIGKILL the primary; kill -> new promote start, and its
//     excess over the lease time the primary had left at the kill.
//   - cut-off: blackhole the primary's proxy; new promote start - old demote
//     end must be positive in every round.
//   - footprint: RSS and CPU of idle replicas (a standby and the primary).
//   - metrics: GET /metrics on the primary and a standby, sequentially;
//     latency, body size, and the replica's CPU per scrape.
//   - switchover: a switchover request to the standby last in campaign
//     order; request -> new promote start. Only the target may promote,
//     after the old demote ended.
//
// With -scale it runs the scale bench instead (scale*.go): N elections × 3
// sidecars in this process on a 3-member etcd cluster of etcdmember
// processes; start, steady-state cost, hand-off and a mass failover per N.
//
// Run it from the module root (it compiles leaderd): `go run ./bench`. It is
// not a test: it prints a table with the targets beside each figure and
// exits non-zero when a round failed or a safety check did not hold.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/leaderd/leaderd/internal/replicas"
	"github.com/leaderd/leaderd/sidecar"
)

// Exit codes.
const (
	exitOK       = 0
	exitFailed   = 1 // a round failed, a safety check did not hold, or interrupted
	exitBadInput = 2
)

// phaseNames are the phases in the order they run.
var phaseNames = []string{"footprint", "metrics", "graceful", "crash", "cutoff", "switchover"}

type options struct {
	rounds        int
	ttl           time.Duration
	demoteTimeout time.Duration
	idle          time.Duration
	scrapes       int
	out           string
	phases        map[string]bool
	keep          bool
	// stepDownLead is demote-timeout + max(0.5s, TTL/10): how long before
	// the earliest server-side lease expiry the safe deadline lies.
	stepDownLead time.Duration
	// scale runs the scale bench (scale_*.go) instead of the phases.
	scale     bool
	scaleOpts scaleOptions
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	opts, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return exitBadInput
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if opts.scale {
		return runScaleReport(ctx, args, opts, stdout, stderr)
	}

	rep := &report{
		Command: command(args),
		Date:    time.Now(),
		Machine: readMachine(),
		Opts:    opts,
	}
	execute(ctx, opts, rep, stderr)
	rep.Interrupted = ctx.Err() != nil
	rep.LoadAfter = readLoadAvg()
	return emitReport(rep.markdown(), rep.ok(), opts, stdout, stderr)
}

// emitReport prints the markdown report md, writes it to -out if given,
// and returns the exit status: failed unless ok.
func emitReport(md string, ok bool, opts options, stdout, stderr io.Writer) int {
	fmt.Fprint(stdout, md)
	if opts.out != "" {
		if err := os.WriteFile(opts.out, []byte(md), 0o644); err != nil {
			fmt.Fprintf(stderr, "bench: -out: %v\n", err)
			return exitFailed
		}
	}
	if !ok {
		return exitFailed
	}
	return exitOK
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var phases string
	fs.IntVar(&o.rounds, "rounds", 30, "rounds of each failover kind (and of switchover)")
	fs.IntVar(&o.scrapes, "scrapes", 200, "GET /metrics per replica in the metrics phase")
	fs.DurationVar(&o.ttl, "ttl", 4*time.Second, "lease TTL given to every replica (--ttl)")
	fs.DurationVar(&o.demoteTimeout, "demote-timeout", time.Second, "demote hook timeout given to every replica (--demote-timeout)")
	fs.DurationVar(&o.idle, "idle", 30*time.Second, "idle window over which CPU use is measured")
	fs.StringVar(&o.out, "out", "", "also write the markdown result to this path")
	fs.StringVar(&phases, "phases", strings.Join(phaseNames, ","), "phases to run, comma-separated")
	fs.BoolVar(&o.keep, "keep", false, "keep the working directory (hook timeline, replica logs)")
	var ns string
	fs.BoolVar(&o.scale, "scale", false, "run the scale bench instead: N elections × 3 in-process sidecars on a 3-process etcd cluster")
	fs.StringVar(&ns, "scale-n", "100,300,1000", "-scale: election counts to run, comma-separated, each on a fresh etcd cluster")
	fs.DurationVar(&o.scaleOpts.ttl, "scale-ttl", sidecar.DefaultConfig().TTL, "-scale: lease TTL of every sidecar (leaderd's default)")
	fs.DurationVar(&o.scaleOpts.window, "scale-window", 30*time.Second, "-scale: steady-state window over which requests and CPU are measured")
	fs.DurationVar(&o.scaleOpts.settle, "scale-settle", 10*time.Second, "-scale: wait after every election is steady before the window")
	fs.IntVar(&o.scaleOpts.handoffs, "scale-handoffs", 30, "-scale: elections whose primary is stopped gracefully, one at a time")
	fs.Float64Var(&o.scaleOpts.ramp, "scale-ramp", 25, "-scale: sidecars started per second, an election's three together; 0 starts all at once")
	fs.StringVar(&o.scaleOpts.pprofDir, "scale-pprof", "", "-scale: write CPU profiles of the sidecars' process and of each etcd member over the window to this directory")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./bench [flags]   (from the module root)\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.scale {
		return o, o.scaleOpts.complete(ns, o.keep)
	}
	if o.rounds < 1 {
		return o, fmt.Errorf("-rounds: %d must be at least 1", o.rounds)
	}
	if o.scrapes < 1 {
		return o, fmt.Errorf("-scrapes: %d must be at least 1", o.scrapes)
	}
	if o.idle < time.Second {
		return o, fmt.Errorf("-idle: %s must be at least 1s", o.idle)
	}
	o.phases = map[string]bool{}
	for _, p := range strings.Split(phases, ",") {
		p = strings.TrimSpace(p)
		if !contains(phaseNames, p) {
			return o, fmt.Errorf("-phases: unknown phase %q (want some of %s)", p, strings.Join(phaseNames, ","))
		}
		o.phases[p] = true
	}
	// Refuse what leaderd itself would refuse, with its own message.
	cfg := sidecar.DefaultConfig()
	cfg.Election, cfg.ID, cfg.Listen = electionName, "bench", "off"
	cfg.TTL, cfg.DemoteTimeout = o.ttl, o.demoteTimeout
	if err := cfg.Validate(); err != nil {
		return o, fmt.Errorf("-ttl/-demote-timeout: %v", err)
	}
	o.stepDownLead = cfg.StepDownLead()
	return o, nil
}

// execute runs the phases into rep. Everything it starts is stopped and
// removed before it returns, also on Ctrl-C.
func execute(ctx context.Context, o options, rep *report, stderr io.Writer) {
	dir, err := os.MkdirTemp("", "leaderd-bench-*")
	if err != nil {
		rep.fatal("work dir: %v", err)
		return
	}
	if o.keep {
		fmt.Fprintf(stderr, "bench: working directory %s (kept)\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	fmt.Fprintf(stderr, "bench: building leaderd\n")
	binary, err := replicas.BuildRelease(ctx, dir) // the binary users run: footprint depends on the build
	if err != nil {
		rep.fatal("build leaderd (run from the module root): %v", err)
		return
	}
	c, err := newCluster(ctx, dir, binary, o)
	if err != nil {
		rep.fatal("%v", err)
		return
	}
	defer c.close()
	fmt.Fprintf(stderr, "bench: etcd at %s, replicas %s\n", c.srv.Endpoint(), strings.Join(c.ids, ","))

	b := &bench{c: c, o: o, log: stderr}
	if o.phases["footprint"] && ctx.Err() == nil {
		rep.Footprint, err = b.footprint(ctx)
		if err != nil {
			rep.Failures = append(rep.Failures, "footprint: "+err.Error())
			fmt.Fprintf(stderr, "bench: footprint: FAILED: %v\n", err)
			if err := c.recover(ctx); err != nil {
				rep.fatal("recover after footprint: %v", err)
				return
			}
		}
	}
	if o.phases["metrics"] && ctx.Err() == nil {
		rep.Metrics, err = b.metrics(ctx)
		if err != nil {
			rep.Failures = append(rep.Failures, "metrics: "+err.Error())
			fmt.Fprintf(stderr, "bench: metrics: FAILED: %v\n", err)
			if err := c.recover(ctx); err != nil {
				rep.fatal("recover after metrics: %v", err)
				return
			}
		}
	}
	for _, ph := range []struct {
		name  string
		title string
		round func(context.Context, *phase) error
		dists []*dist
	}{
		{"graceful", "graceful hand-off", b.gracefulRound, b.gracefulDists()},
		{"crash", "crash failover", b.crashRound, b.crashDists()},
		{"cutoff", "cut-off", b.cutoffRound, b.cutoffDists()},
		{"switchover", "switchover", b.switchoverRound, b.switchoverDists()},
	} {
		if !o.phases[ph.name] || ctx.Err() != nil {
			continue
		}
		p := &phase{Name: ph.title, Dists: ph.dists}
		rep.Phases = append(rep.Phases, p)
		if err := b.runPhase(ctx, p, ph.round); err != nil {
			rep.fatal("%s: %v", ph.name, err)
			return
		}
	}
	if ctx.Err() == nil {
		evs, err := c.set.Timeline()
		if err != nil {
			rep.fatal("read the timeline: %v", err)
			return
		}
		rep.Safety = checkTimeline(evs)
	}
	if o.keep {
		rep.WorkDir = dir
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// command is how this run was invoked, for the report.
func command(args []string) string {
	parts := []string{"go", "run", "./bench"}
	for _, a := range args {
		if strings.ContainsAny(a, " \t'\"$") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}
