// Command chaos runs leaderd's randomized fault campaign: a real
// three-member etcd cluster behind TCP fault proxies, `leaderd run`
// replicas built from this tree, a fenced store and a writer, faults drawn
// from -seed, and a checker that judges the record. It prints a report and
// exits 1 if the checker found a violation. See RELIABILITY.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/leaderd/leaderd/internal/chaos"
	"github.com/leaderd/leaderd/internal/replicas"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := chaos.Options{}
	fs.Int64Var(&o.Seed, "seed", time.Now().UnixNano()%1_000_000, "seed of the fault draw; the report prints it for a replay")
	fs.IntVar(&o.Faults, "faults", 500, "faults to inject")
	fs.IntVar(&o.Replicas, "replicas", 5, "leaderd replicas, 3 to 5")
	fs.Float64Var(&o.Overlap, "overlap", 0.3, "chance that a second fault starts while one is held")
	fs.DurationVar(&o.TTL, "ttl", 3*time.Second, "the replicas' --ttl")
	fs.DurationVar(&o.DemoteTimeout, "demote-timeout", time.Second, "the replicas' --demote-timeout")
	fs.DurationVar(&o.PromoteTimeout, "promote-timeout", 2*time.Second, "the replicas' --promote-timeout")
	fs.BoolVar(&o.Priorities, "priorities", false, "start the replicas with distinct --priority values drawn from the seed (its fault draws stay the same)")
	fs.DurationVar(&o.Failback, "failback", 0, "with -priorities: the replicas' --failback after=DURATION (0: off)")
	dir := fs.String("dir", "", "working directory, kept (default: a temporary one, removed after a pass)")
	recordPath := fs.String("record", "", "also write the whole record as JSON to this file")
	verbose := fs.Bool("v", false, "log each fault as it is injected")
	judge := fs.String("judge", "", "judge the record a run saved with -record (no run): the checker again, e.g. after changing it")
	race := fs.Bool("race", false, "build leaderd with the race detector; a data race ends the replica and fails the run")
	soakFor := fs.Duration("soak", 0, "run the soak for this long instead of the campaign: churn (switchovers, SIGKILLs, health flaps) while sampling each leaderd's RSS, goroutines and descriptors and etcd's leases")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "chaos: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if err := o.Validate(); err != nil {
		fmt.Fprintln(stderr, "chaos:", err)
		return 2
	}
	if *judge != "" {
		return rejudge(*judge, stdout, stderr)
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	o.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	keep := *dir != ""
	if !keep {
		d, err := os.MkdirTemp("", "leaderd-chaos-*")
		if err != nil {
			fmt.Fprintln(stderr, "chaos:", err)
			return 1
		}
		*dir = d
	} else if err := os.MkdirAll(*dir, 0o755); err != nil {
		fmt.Fprintln(stderr, "chaos:", err)
		return 1
	}
	o.Dir = *dir

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The tree the replicas are built from, read before the build: a commit
	// may land during a long campaign.
	rev := revision()
	// The deployable build, as operators run it.
	build := replicas.Build
	if *race {
		build = replicas.BuildRace
	}
	bin, err := build(ctx, *dir, "nodemo")
	if err != nil {
		fmt.Fprintln(stderr, "chaos:", err)
		return 1
	}
	o.Binary = bin
	if *soakFor > 0 {
		return runSoak(ctx, chaos.DefaultSoak(o, *soakFor), *dir, keep, *recordPath, *race, rev, stdout, stderr)
	}
	fmt.Fprintf(stdout, "chaos: seed %d, %d faults, %d replicas, working in %s\n", o.Seed, o.Faults, o.Replicas, *dir)

	rec, err := chaos.Run(ctx, o)
	if err != nil && rec == nil {
		fmt.Fprintln(stderr, "chaos:", err)
		fmt.Fprintf(stderr, "chaos: working directory kept for inspection: %s\n", *dir)
		return 1
	}
	rec.Revision, rec.Replay = rev, replay(o, *race)
	if *recordPath != "" {
		if b, err := json.Marshal(rec); err == nil {
			_ = os.WriteFile(*recordPath, b, 0o644)
		}
	}
	v := chaos.Check(rec)
	if werr := chaos.WriteReport(stdout, rec, v, rec.Replay); werr != nil {
		fmt.Fprintln(stderr, "chaos: writing the report:", werr)
	}
	if err != nil {
		fmt.Fprintln(stderr, "chaos: interrupted:", err)
		fmt.Fprintf(stderr, "chaos: working directory kept for inspection: %s\n", *dir)
		return 1
	}
	if !v.OK() {
		fmt.Fprintf(stderr, "chaos: working directory kept for inspection: %s\n", *dir)
		return 1
	}
	if !keep {
		_ = os.RemoveAll(*dir)
	}
	return 0
}

// replay is the command that draws the same faults again.
func replay(o chaos.Options, race bool) string {
	args := []string{"go run ./chaos",
		fmt.Sprintf("-seed %d", o.Seed), fmt.Sprintf("-faults %d", o.Faults),
		fmt.Sprintf("-replicas %d", o.Replicas), fmt.Sprintf("-overlap %g", o.Overlap),
		"-ttl " + o.TTL.String(), "-demote-timeout " + o.DemoteTimeout.String(),
		"-promote-timeout " + o.PromoteTimeout.String()}
	args = append(args, priorityFlags(o)...)
	if race {
		args = append(args, "-race")
	}
	return strings.Join(args, " ")
}

// priorityFlags are -priorities and -failback as given (none when off).
func priorityFlags(o chaos.Options) []string {
	var out []string
	if o.Priorities {
		out = append(out, "-priorities")
	}
	if o.Failback > 0 {
		out = append(out, "-failback "+o.Failback.String())
	}
	return out
}

// runSoak runs the soak, prints its report and says whether it passed.
func runSoak(ctx context.Context, so chaos.SoakOptions, dir string, keep bool, recordPath string, race bool, rev string, stdout, stderr io.Writer) int {
	if err := so.Validate(); err != nil {
		fmt.Fprintln(stderr, "chaos:", err)
		return 2
	}
	fmt.Fprintf(stdout, "chaos: soak for %s, seed %d, %d replicas, working in %s\n", so.Duration, so.Seed, so.Replicas, dir)
	res, err := chaos.Soak(ctx, so)
	if err != nil && res == nil {
		fmt.Fprintln(stderr, "chaos:", err)
		return 1
	}
	if res.Record != nil {
		res.Record.Revision = rev
	}
	if recordPath != "" {
		if b, err := json.Marshal(res); err == nil {
			_ = os.WriteFile(recordPath, b, 0o644)
		}
	}
	replay := fmt.Sprintf("go run ./chaos -soak %s -seed %d -replicas %d -ttl %s -demote-timeout %s -promote-timeout %s",
		so.Duration, so.Seed, so.Replicas, so.TTL, so.DemoteTimeout, so.PromoteTimeout)
	if f := priorityFlags(so.Options); len(f) > 0 {
		replay += " " + strings.Join(f, " ")
	}
	if race {
		replay += " -race"
	}
	chaos.WriteSoakReport(stdout, res, replay)
	if !res.Verdict.OK() {
		// The checker's full report has the timeline around each violation.
		path := filepath.Join(dir, "safety-report.md")
		if f, err := os.Create(path); err == nil {
			_ = chaos.WriteReport(f, res.Record, res.Verdict, replay)
			f.Close()
			fmt.Fprintf(stderr, "chaos: the checker's full report: %s\n", path)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "chaos: interrupted:", err)
		return 1
	}
	if !res.OK() {
		fmt.Fprintf(stderr, "chaos: working directory kept for inspection: %s\n", dir)
		return 1
	}
	if !keep {
		_ = os.RemoveAll(dir)
	}
	return 0
}

// revision names the tree the replicas were built from (a seed replays the
// same faults only with the same fault catalogue).
func revision() string {
	out, err := exec.Command("git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// rejudge checks a saved record again and prints the report.
func rejudge(path string, stdout, stderr io.Writer) int {
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(stderr, "chaos:", err)
		return 2
	}
	var rec chaos.Record
	if err := json.Unmarshal(b, &rec); err != nil {
		fmt.Fprintf(stderr, "chaos: -judge %s: %v\n", path, err)
		return 2
	}
	v := chaos.Check(&rec)
	if err := chaos.WriteReport(stdout, &rec, v, rec.Replay); err != nil {
		fmt.Fprintln(stderr, "chaos: writing the report:", err)
	}
	if !v.OK() {
		return 1
	}
	return 0
}
