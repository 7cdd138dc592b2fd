package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/leaderd/leaderd/sidecar"
)

// scaleOptions are the -scale flags.
type scaleOptions struct {
	ns            []int
	ttl           time.Duration
	demoteTimeout time.Duration
	settle        time.Duration // after every election is steady, before the window
	window        time.Duration // steady-state measuring window
	handoffs      int
	ramp          float64 // sidecars started per second; 0: all at once
	pprofDir      string
	keep          bool
}

// complete checks the -scale flags and fills in what follows from them.
func (o *scaleOptions) complete(ns string, keep bool) error {
	var err error
	if o.ns, err = parseNs(ns); err != nil {
		return err
	}
	if o.handoffs < 1 {
		return fmt.Errorf("-scale-handoffs: %d must be at least 1", o.handoffs)
	}
	if o.window < 2*time.Second {
		return fmt.Errorf("-scale-window: %s must be at least 2s", o.window)
	}
	if o.ramp < 0 {
		return fmt.Errorf("-scale-ramp: %v must not be negative", o.ramp)
	}
	if o.settle < 0 {
		return fmt.Errorf("-scale-settle: %s must not be negative", o.settle)
	}
	cfg := sidecar.DefaultConfig()
	cfg.Election, cfg.ID, cfg.Listen = "scale", "bench", "off"
	cfg.TTL = o.ttl
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("-scale-ttl: %v", err)
	}
	o.demoteTimeout = cfg.DemoteTimeout
	o.keep = keep
	return nil
}

// The targets at N = 1,000 (issue 11).
const (
	etcdCPUTarget = 1.0 // cores, the three members together
	handoffTarget = 50 * time.Millisecond
	excessTarget  = time.Second
)

// scaleResult is what one N measured.
type scaleResult struct {
	N, Sidecars int
	// Start: from the first sidecar's start to the last election's first
	// promote start; RampTime: to the last sidecar's start; SteadyAfter:
	// until every election was seen steady (polled). ElectionStart: from
	// an election's start to its first promote start.
	Start, RampTime, SteadyAfter time.Duration
	ElectionStart                *dist

	Window   time.Duration
	RPS      float64            // etcd requests (messages received: unary calls, renewals, watch requests) per second, all members
	ByMethod map[string]float64 // the same, per gRPC method
	OpenedPS float64            // unary calls and streams opened per second, all members
	EtcdCPU  []float64          // cores, per member
	// EtcdIdleCPU is the members' CPU together before any sidecar started.
	EtcdIdleCPU float64
	EtcdRSS     []int64
	// Watchers and watch streams the members hold, summed.
	Watchers, WatchStreams float64
	SidecarCPU             float64 // cores of the sidecars' process
	SidecarRSS             int64

	Handoff, StopToPromote *dist
	Steps                  [4]*dist // the hand-off split at the sidecars' log lines
	// Mean WAL fsync and backend commit over the members, in the steady
	// window and during the hand-offs.
	SteadyFsync, HandoffFsync, HandoffCommit time.Duration

	Killed                      int
	ReplaceAll                  time.Duration // first kill → last replacement's promote start
	LeaseLeft, Failover, Excess *dist

	Tenures    int
	Violations int
	Failures   []string
}

func (r *scaleResult) fail(format string, args ...any) {
	r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
}

// perReplica divides a total over the sidecars.
func (r *scaleResult) perReplica(total float64) float64 {
	if r.Sidecars == 0 {
		return 0
	}
	return total / float64(r.Sidecars)
}

type scaleReport struct {
	Command     string
	Date        time.Time
	Machine     machine
	Opts        scaleOptions
	Results     []*scaleResult
	LoadAfter   string
	Fatal       string
	Interrupted bool
	WorkDir     string
}

func (r *scaleReport) ok() bool {
	if r.Fatal != "" || r.Interrupted {
		return false
	}
	for _, res := range r.Results {
		if len(res.Failures) > 0 || res.Violations > 0 {
			return false
		}
	}
	return true
}

// ratio is b/a, "–" when a is zero or either is missing.
func ratio(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "–"
	}
	return fmt.Sprintf("×%.2f", b/a)
}

// growth is one row of the growth table: a figure per N.
type growth struct {
	name string
	get  func(*scaleResult) float64
}

var growthRows = []growth{
	{"sidecars", func(r *scaleResult) float64 { return float64(r.Sidecars) }},
	{"first start → every election has a primary", func(r *scaleResult) float64 { return r.Start.Seconds() }},
	{"an election's start → its first promote, p99", func(r *scaleResult) float64 { return distP99(r.ElectionStart) }},
	{"etcd requests/s", func(r *scaleResult) float64 { return r.RPS }},
	{"etcd CPU (3 members)", func(r *scaleResult) float64 { return sum(r.EtcdCPU) }},
	{"etcd CPU above idle", func(r *scaleResult) float64 { return sum(r.EtcdCPU) - r.EtcdIdleCPU }},
	{"sidecars' process CPU", func(r *scaleResult) float64 { return r.SidecarCPU }},
	{"sidecars' process RSS", func(r *scaleResult) float64 { return float64(r.SidecarRSS) }},
	{"hand-off p99", func(r *scaleResult) float64 { return distP99(r.Handoff) }},
	{"mass failover: all replaced", func(r *scaleResult) float64 { return r.ReplaceAll.Seconds() }},
	{"mass failover: excess p99", func(r *scaleResult) float64 { return distP99(r.Excess) }},
}

func distP99(d *dist) float64 {
	if d == nil || len(d.Values) == 0 {
		return 0
	}
	return d.stats().P99.Seconds()
}

func (r *scaleReport) markdown() string {
	var b strings.Builder
	m := r.Machine
	o := r.Opts
	writeRunHeader(&b, "leaderd scale benchmark", r.Command, r.Date, m, r.LoadAfter)
	fmt.Fprintf(&b, "- setup: etcd %s, 3 members as separate processes (bench/etcdmember); N elections × 3 replicas, all sidecar.Sidecar in one process, each with its own etcd client to one member (spread evenly); --ttl %s --demote-timeout %s, leaderd's other defaults; hooks are `sh -c` appending `date +%%s%%N` lines to a timeline per election\n",
		m.Etcd, o.ttl, o.demoteTimeout)
	fmt.Fprintf(&b, "- start: %s\n", rampText(o.ramp))
	fmt.Fprintf(&b, "- steady state: %s after every election is steady, then a %s window; requests are grpc_server_msg_received_total (a unary call is one; on a stream, each renewal or watch request), opened are grpc_server_started_total (unary calls and streams opened), summed over the members; CPU from /proc/<pid>/stat\n", o.settle, o.window)
	fmt.Fprintf(&b, "- hand-off: the primary of %d elections stopped gracefully (context cancelled, as SIGTERM does), one at a time while the others run\n", o.handoffs)
	fmt.Fprintf(&b, "- mass failover: the primaries of every %dth election killed at once: the TCP proxy that was their only way to etcd closes every connection and refuses new ones, then the sidecar is abandoned (Abort, cancel), so no resign or revoke reaches etcd\n", killEvery)
	fmt.Fprintf(&b, "- percentiles: nearest rank; with n ≤ 100, p99 is the maximum\n\n")

	if len(r.Results) > 0 {
		fmt.Fprintf(&b, "| N | sidecars | last start / last election's first promote (from the first start) | etcd req/s | per replica | calls and streams opened/s | etcd CPU, cores (m1+m2+m3) | idle, before the sidecars | per replica, above idle | sidecars' process CPU | RSS: sidecars' process / etcd members |\n")
		fmt.Fprintf(&b, "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		for _, res := range r.Results {
			var cpus, rss []string
			for i, c := range res.EtcdCPU {
				cpus = append(cpus, fmt.Sprintf("%.2f", c))
				rss = append(rss, mib(res.EtcdRSS[i]))
			}
			fmt.Fprintf(&b, "| %d | %d | %s / %s | %.0f | %.2f | %.1f | %.2f (%s) | %.2f | %.3f m | %.2f | %s / %s |\n",
				res.N, res.Sidecars, secs(res.RampTime), secs(res.Start), res.RPS, res.perReplica(res.RPS), res.OpenedPS,
				sum(res.EtcdCPU), strings.Join(cpus, "+"), res.EtcdIdleCPU, 1000*res.perReplica(sum(res.EtcdCPU)-res.EtcdIdleCPU), res.SidecarCPU,
				mib(res.SidecarRSS), strings.Join(rss, ", "))
		}
		fmt.Fprintln(&b)

		fmt.Fprintf(&b, "| N | measure | n | min | p50 | p99 | max | target at N = 1,000 | |\n")
		fmt.Fprintf(&b, "|--:|---|--:|--:|--:|--:|--:|---|---|\n")
		for _, res := range r.Results {
			ds := []*dist{res.ElectionStart, res.Handoff}
			ds = append(ds, res.Steps[:]...)
			for _, d := range append(ds, res.StopToPromote, res.LeaseLeft, res.Failover, res.Excess) {
				if d == nil {
					continue
				}
				st := d.stats()
				fmt.Fprintf(&b, "| %d | %s | %d | %s | %s | %s | %s | %s | %s |\n", res.N, d.Name, st.N,
					msOrDash(st, st.Min), msOrDash(st, st.P50), msOrDash(st, st.P99), msOrDash(st, st.Max), d.Target, d.Target.verdict(st))
			}
			if res.Killed > 0 {
				fmt.Fprintf(&b, "| %d | mass failover: %d killed, first kill → last replacement | 1 | | | | %s | | |\n", res.N, res.Killed, ms(res.ReplaceAll))
			}
		}
		fmt.Fprintln(&b)

		fmt.Fprintf(&b, "Requests per second by gRPC method (all members):\n\n")
		fmt.Fprintf(&b, "| method |")
		for _, res := range r.Results {
			fmt.Fprintf(&b, " N = %d |", res.N)
		}
		fmt.Fprintf(&b, "\n|---|%s\n", strings.Repeat("--:|", len(r.Results)))
		for _, meth := range methods(r.Results) {
			fmt.Fprintf(&b, "| %s |", meth)
			for _, res := range r.Results {
				fmt.Fprintf(&b, " %.1f |", res.ByMethod[meth])
			}
			fmt.Fprintln(&b)
		}
		fmt.Fprintln(&b)
	}
	if len(r.Results) > 1 {
		b.WriteString(r.growthTable())
	}
	if t := r.targets(); t != "" {
		b.WriteString(t)
	}
	for _, res := range r.Results {
		fmt.Fprintf(&b, "- N = %d: etcd holds %.0f watchers on %.0f watch streams (%.2f and %.2f per replica)\n",
			res.N, res.Watchers, res.WatchStreams, res.perReplica(res.Watchers), res.perReplica(res.WatchStreams))
		fmt.Fprintf(&b, "- N = %d: etcd's mean WAL fsync %s in the steady window, %s during the hand-offs (backend commit %s)\n",
			res.N, msOrNone(res.SteadyFsync), msOrNone(res.HandoffFsync), msOrNone(res.HandoffCommit))
	}
	for _, res := range r.Results {
		fmt.Fprintf(&b, "- N = %d: %d tenures checked, %d safety violations\n", res.N, res.Tenures, res.Violations)
		for _, f := range res.Failures {
			fmt.Fprintf(&b, "- FAILURE (N = %d): %s\n", res.N, oneLine(f))
		}
	}
	if r.Interrupted {
		fmt.Fprintf(&b, "- INTERRUPTED: the figures cover what ran so far\n")
	}
	if r.Fatal != "" {
		fmt.Fprintf(&b, "- STOPPED EARLY: %s\n", oneLine(r.Fatal))
	}
	if r.WorkDir != "" {
		fmt.Fprintf(&b, "- working directory (timelines, logs): %s\n", r.WorkDir)
	}
	return b.String()
}

// growthTable shows every figure against the first N's, beside N's own
// growth: a figure growing like N is linear.
func (r *scaleReport) growthTable() string {
	var b strings.Builder
	base := r.Results[0]
	fmt.Fprintf(&b, "Growth against N = %d, measured in this run:\n\n| figure |", base.N)
	for _, res := range r.Results[1:] {
		fmt.Fprintf(&b, " N = %d |", res.N)
	}
	fmt.Fprintf(&b, "\n|---|%s\n", strings.Repeat("--:|", len(r.Results)-1))
	for _, g := range growthRows {
		fmt.Fprintf(&b, "| %s |", g.name)
		for _, res := range r.Results[1:] {
			fmt.Fprintf(&b, " %s |", ratio(g.get(base), g.get(res)))
		}
		fmt.Fprintln(&b)
	}
	fmt.Fprintln(&b)
	return b.String()
}

// targets judges the largest N against issue 11's targets, which are set
// for N = 1,000.
func (r *scaleReport) targets() string {
	var res *scaleResult
	for _, x := range r.Results {
		if x.N == 1000 {
			res = x
		}
	}
	if res == nil {
		return ""
	}
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Targets at N = 1,000:\n\n")
	cpu := sum(res.EtcdCPU)
	fmt.Fprintf(&b, "- steady state < %.0f core of etcd: %.2f cores, %s\n", etcdCPUTarget, cpu, verdict(len(res.EtcdCPU) > 0 && cpu < etcdCPUTarget))
	if res.Handoff != nil {
		st := res.Handoff.stats()
		fmt.Fprintf(&b, "- hand-off p99 ≤ %s: %s, %s\n", ms(handoffTarget), ms(st.P99), verdict(st.N > 0 && st.P99 <= handoffTarget))
	}
	if res.Excess != nil {
		st := res.Excess.stats()
		fmt.Fprintf(&b, "- every killed primary replaced within its lease time left + %s: worst excess %s over %d of %d, %s\n",
			excessTarget, ms(st.Max), st.N, res.Killed, verdict(st.N == res.Killed && st.N > 0 && st.Max <= excessTarget))
	}
	fmt.Fprintln(&b)
	return b.String()
}

// methods lists the gRPC methods seen, busiest (in the last N) first.
func methods(rs []*scaleResult) []string {
	seen := map[string]bool{}
	for _, r := range rs {
		for m := range r.ByMethod {
			seen[m] = true
		}
	}
	last := rs[len(rs)-1]
	out := slices.Collect(maps.Keys(seen))
	slices.SortFunc(out, func(a, b string) int {
		if c := cmpFloat(last.ByMethod[b], last.ByMethod[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return out
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// msOrNone is a mean duration, or "none" when nothing was measured.
func msOrNone(d time.Duration) string {
	if d <= 0 {
		return "none"
	}
	return msFine(d)
}

func rampText(ramp float64) string {
	if ramp <= 0 {
		return "all at once"
	}
	return fmt.Sprintf("%g sidecars/s, an election's three together", ramp)
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// parseNs reads -scale-n: a comma-separated list of positive counts.
func parseNs(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-scale-n: %q is not a positive count", strings.TrimSpace(f))
		}
		out = append(out, n)
	}
	return out, nil
}

// runScaleReport runs the scale bench and prints its report.
func runScaleReport(ctx context.Context, args []string, opts options, stdout, stderr io.Writer) int {
	rep := &scaleReport{Command: command(args), Date: time.Now(), Machine: readMachine(), Opts: opts.scaleOpts}
	runScale(ctx, opts.scaleOpts, rep, stderr)
	rep.Interrupted = ctx.Err() != nil
	rep.LoadAfter = readLoadAvg()
	return emitReport(rep.markdown(), rep.ok(), opts, stdout, stderr)
}
