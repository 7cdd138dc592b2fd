package main

import (
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/leaderd/leaderd/sidecar"
)

// `leaderd check` validates a `leaderd run` configuration (the same flags
// and environment) and prints the timing budget it buys, without
// connecting to etcd or running a hook. The arithmetic is sidecar.Budget's,
// which `leaderd run` logs and GET /status shows.

// checkFlags are run's flags and --json.
type checkFlags struct {
	*runFlags
	json *boolFlag
}

func newCheckFlags(env lookupEnv) *checkFlags {
	f := newRunOptionFlags("check", "--election NAME [flags] [--json]",
		"Validate a `leaderd run` configuration, given as the same flags and\n"+
			"LEADERD_* variables, and print the timing budget it buys: the lease guard\n"+
			"(renew interval, safe deadline, margin), the worst-case crash failover and\n"+
			"graceful hand-off, and how long two replicas' roles can overlap. It does\n"+
			"not connect to etcd or run a hook. etcd's election timeout and lease revoke\n"+
			"tick are server settings leaderd cannot see: etcd's defaults are assumed.\n\n"+
			"Exit status: 0 valid, 2 bad input (one line naming the flag).", env)
	return &checkFlags{runFlags: f, json: f.set.boolean("json", "print the budget as one JSON object (as GET /status's budget)")}
}

// checkCommand is `leaderd check`.
func checkCommand(args []string, env lookupEnv, stdout, stderr io.Writer) int {
	f := newCheckFlags(env)
	opts, err := f.parse(args)
	if errors.Is(err, errHelp) {
		f.set.usage(stdout)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "leaderd check: %s\n", oneLine(err.Error()))
		return exitBadInput
	}
	b := opts.Config.Budget(0)
	if f.json.value {
		if err := printJSON(stdout, b); err != nil {
			fmt.Fprintf(stderr, "leaderd check: %s\n", oneLine(err.Error()))
			return exitError
		}
		return exitOK
	}
	printBudget(stdout, opts.Config, b)
	return exitOK
}

// printBudget writes the budget as text, within 80 columns: each figure
// with where it comes from.
func printBudget(w io.Writer, c sidecar.Config, b sidecar.Budget) {
	d := durationText
	fmt.Fprintf(w, "Configuration valid: election %s, id %s.\n", c.Election, c.ID)
	var tw *tabwriter.Writer
	section := func(title string) {
		if tw != nil {
			_ = tw.Flush()
		}
		fmt.Fprintf(w, "\n%s\n", title)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	}
	// line writes a figure; more lines continue its explanation.
	line := func(name, v string, why ...string) {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", name, v, why[0])
		for _, more := range why[1:] {
			fmt.Fprintf(tw, "  \t\t%s\n", more)
		}
	}

	section("Lease guard")
	line("ttl", d(b.TTL), "--ttl, as asked of etcd")
	line("renew interval", d(b.RenewInterval), "ttl/4")
	line("margin", d(b.Margin), "max(500ms, ttl/10)")
	line("step-down lead", d(b.StepDownLead), "demote timeout "+d(b.DemoteTimeout)+" + margin")
	line("safe deadline", d(b.SafeDeadline), "after each renewal's send: ttl - step-down lead",
		"(two renewals may fail: >= 2 x renew interval, "+d(2*b.RenewInterval)+")")

	section("Crash failover, worst case: " + d(b.CrashFailover) + " (SIGKILL, host gone)")
	line("lease time left", d(b.TTL), "ttl (at least ttl - renew interval, "+d(b.TTL-b.RenewInterval)+")")
	line("etcd election", d(b.EtcdElectionTimeout), "assumed: etcd's default --election-timeout")
	line("etcd revoke tick", d(b.EtcdRevokeTick), "assumed: etcd's lessor checks expiries every 500ms")
	line("wake-up", d(b.WakeUp), "next candidate's watch event and verify read")
	line("hook start", d(b.HookStart), "forking its promote hook")

	section("Graceful hand-off, worst case: " + d(b.GracefulHandOff) + " (SIGTERM, resign, switchover)")
	line("demote hook", d(b.DemoteTimeout), "--demote-timeout, killed then")
	line("resign", d(b.Resign), "one etcd round trip")
	line("wake-up", d(b.WakeUp), "next candidate's watch event and verify read")
	line("hook start", d(b.HookStart), "forking its promote hook")
	_ = tw.Flush()
	fmt.Fprintln(w, "  Measured from demote end to promote start: p99 12ms (also in a switchover; go run ./bench, 2 CPUs).")

	section("Overlap of two replicas' roles")
	line("processes running", "none", "a cut-off primary has demoted "+d(b.CutOffDemoteLead)+" (the margin)",
		"before etcd may expire its lease")
	line("frozen primary", d(b.FrozenAfterThaw), "primary after it thaws (demote timeout; the",
		"guard fires at once). Fencing must cover the",
		"freeze past the lease's expiry, plus this.")
	line("suspended host", d(b.SuspendedAfterResume), "primary after it resumes (ttl - margin; a renew",
		"interval when etcd answers)")
	_ = tw.Flush()
	fmt.Fprint(w, `
etcd's election timeout and revoke tick are its defaults, assumed: leaderd
cannot see etcd's settings (raft may take up to twice the election timeout).
etcd raises a TTL below 1.5 x its election timeout (2s by default); leaderd
run reads the granted TTL back after its first grant, warns, and retimes the
guard. See docs/design.md, section 11.
`)
}
