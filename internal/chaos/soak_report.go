package chaos

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Soak targets. The slacks allow for what a healthy process's count
// depends on besides a leak: its role. Measured on r1: 38 goroutines and
// 13 descriptors as a campaigning standby, 40 and 14 as the primary (the
// writer keeps a connection open to the primary only: a socket and its
// server goroutine; the primary runs its tenure's watches), and a sample
// during a hand-off can land a goroutine either side. A sample's counts are
// the least of a burst of reads, so a health check or hook in flight is
// not among them (see burstReads). A leak grows with the churn, hundreds
// of events in a soak, so it shows far past the slack.
const (
	// SoakRSSGrowth: r1's RSS may grow by less than this after warm-up.
	SoakRSSGrowth = 2 << 20
	// SoakGoroutineSlack: the role difference (+2) and one in transit.
	SoakGoroutineSlack = 3
	// SoakFDSlack: the writer's connection to a primary (+1) and one more
	// pooled connection of the prober.
	SoakFDSlack = 2
	// soakWindow is how many samples each end of the comparison takes the
	// median of.
	soakWindow = 3
)

// Names of the soak's checks.
const (
	CheckR1Process  = "r1-one-process"
	CheckRSS        = "rss"
	CheckGoroutines = "goroutines"
	CheckFDs        = "fds"
	CheckLeases     = "leases"
	CheckEndLeases  = "leases-end"
	CheckSafety     = "safety"
)

// r1Series is r1's first process's samples, in time order.
func r1Series(r *SoakResult) (pid int, series []ResourceSample) {
	for _, p := range r.Processes {
		if p.Replica == "r1" {
			pid = p.Pid
			break
		}
	}
	for _, s := range r.Resources {
		if s.Replica == "r1" && s.Pid == pid {
			series = append(series, s)
		}
	}
	slices.SortStableFunc(series, func(a, b ResourceSample) int { return a.At.Compare(b.At) })
	return pid, series
}

// judgeSoak checks r's figures against the targets.
func judgeSoak(r *SoakResult) []SoakCheck {
	var out []SoakCheck
	pid, series := r1Series(r)
	r1pids := map[int]bool{}
	for _, s := range r.Resources {
		if s.Replica == "r1" {
			r1pids[s.Pid] = true
		}
	}
	out = append(out, SoakCheck{Name: CheckR1Process, Pass: pid != 0 && len(r1pids) == 1 && r1pids[pid],
		Measured: fmt.Sprintf("r1 pids sampled: %d (pid %d, %d samples)", len(r1pids), pid, len(series)),
		Target:   "one r1 process for the whole soak: it is never killed, so its series is the leak evidence"})

	warm := r.Started.Add(r.Options.warmUp())
	var after []ResourceSample
	for _, s := range series {
		if !s.At.Before(warm) {
			after = append(after, s)
		}
	}
	growth := func(name string, value func(ResourceSample) (float64, bool), limit float64, unit string, strict bool, why string) SoakCheck {
		var vs []float64
		for _, s := range after {
			if v, ok := value(s); ok {
				vs = append(vs, v)
			}
		}
		c := SoakCheck{Name: name, Target: why}
		if len(vs) < 2*soakWindow {
			c.Measured = fmt.Sprintf("%d r1 samples after the warm-up, need %d", len(vs), 2*soakWindow)
			return c
		}
		first, last := median(vs[:soakWindow]), median(vs[len(vs)-soakWindow:])
		d := last - first
		c.Pass = d <= limit
		if strict {
			c.Pass = d < limit
		}
		c.Measured = fmt.Sprintf("%+.*f %s (median of the first %d samples after warm-up %.*f, of the last %d %.*f)",
			prec(unit), d, unit, soakWindow, prec(unit), first, soakWindow, prec(unit), last)
		return c
	}
	const mib = 1 << 20
	out = append(out,
		growth(CheckRSS, func(s ResourceSample) (float64, bool) { return float64(s.RSS) / mib, s.RSS > 0 },
			SoakRSSGrowth/mib, "MiB", true, fmt.Sprintf("r1's RSS grows by less than %d MiB after warm-up", SoakRSSGrowth/mib)),
		growth(CheckGoroutines, func(s ResourceSample) (float64, bool) { return float64(s.Goroutines), s.Goroutines >= 0 },
			SoakGoroutineSlack, "goroutines", false, fmt.Sprintf("flat: at most +%d (a primary runs 2 more than a standby, and one in transit)", SoakGoroutineSlack)),
		growth(CheckFDs, func(s ResourceSample) (float64, bool) { return float64(s.FDs), s.FDs > 0 },
			SoakFDSlack, "fds", false, fmt.Sprintf("flat: at most +%d (the writer's connection to a primary, and one more pooled connection)", SoakFDSlack)),
	)

	lc := SoakCheck{Name: CheckLeases, Target: "every sample: leases <= replicas + SIGKILLs within TTL+1s (a killed process's lease runs out its TTL)"}
	over, maxLeases, maxAt := 0, -1, LeaseSample{}
	var firstOver *LeaseSample
	for i, l := range r.Leases {
		if l.Leases > maxLeases {
			maxLeases, maxAt = l.Leases, l
		}
		if l.Leases > l.Allowed {
			over++
			if firstOver == nil {
				firstOver = &r.Leases[i]
			}
		}
	}
	switch {
	case len(r.Leases) == 0:
		lc.Measured = "no lease samples"
	case over > 0:
		lc.Measured = fmt.Sprintf("%d of %d samples over; first at %s: %d leases, %d allowed", over, len(r.Leases),
			clock(firstOver.At), firstOver.Leases, firstOver.Allowed)
	default:
		lc.Pass = true
		lc.Measured = fmt.Sprintf("%d samples, all within; max %d leases at %s (%d allowed then)", len(r.Leases), maxLeases, clock(maxAt.At), maxAt.Allowed)
	}
	if r.SampleErrs > 0 {
		lc.Measured += fmt.Sprintf("; %d lease reads failed", r.SampleErrs)
	}
	out = append(out, lc)

	out = append(out, SoakCheck{Name: CheckEndLeases, Pass: r.EndRunning > 0 && r.EndLeases == r.EndRunning,
		Measured: fmt.Sprintf("%d leases, %d leaderd processes running", r.EndLeases, r.EndRunning),
		Target:   "after the churn and a TTL: one lease per running process, none leaked"})

	sc := SoakCheck{Name: CheckSafety, Pass: r.Record != nil && r.Verdict.OK(),
		Target: "the campaign checker finds no violation in the soak's record (churn events are its faults)"}
	if r.Record != nil {
		sc.Measured = fmt.Sprintf("%d events judged, %d violations", len(r.Record.Faults), len(r.Verdict.Violations))
		if by := r.Verdict.ByRule(); len(by) > 0 {
			var rules []string
			for rule, n := range by {
				rules = append(rules, fmt.Sprintf("%s %d", rule, n))
			}
			slices.Sort(rules)
			sc.Measured += " (" + strings.Join(rules, ", ") + ")"
		}
	}
	out = append(out, sc)
	return out
}

func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func prec(unit string) int {
	if unit == "MiB" {
		return 2
	}
	return 1
}

// WriteSoakReport writes the soak's report (it goes into RELIABILITY.md):
// the machine, the churn, r1's series about every two minutes, the other
// processes in brief, each target with its figures, the safety verdict and
// a last line "RESULT: PASS" or "RESULT: FAIL (...)". replay is the command
// that runs the same soak again.
func WriteSoakReport(w io.Writer, r *SoakResult, replay string) error {
	p := &printer{w: w}
	so := r.Options
	p.f("# Soak, seed %d\n\n", so.Seed)
	p.f("- machine: %s\n", machine())
	p.f("- replay: `%s`\n", replay)
	p.f("- duration: %s of churn (%s to %s), %d replicas, TTL %s, warm-up %s\n", r.ChurnEnd.Sub(r.Started).Round(time.Second),
		r.Started.Format(time.RFC3339), r.ChurnEnd.Format(time.RFC3339), so.Replicas, so.TTL, so.warmUp())
	refused, skipped := 0, 0
	if r.Record != nil {
		for _, f := range r.Record.Faults {
			switch {
			case f.Kind != SoakSwitchover:
			case f.InjectErr != "" || strings.Contains(f.Note, "inject: "):
				refused++
			case f.Note == noStandby:
				skipped++
			}
		}
	}
	p.f("- churn: %d switchovers (every %s-%s, to a campaigning standby; %d refused by leaderd, %d with none campaigning), %d SIGKILLs (every %s, never r1, restarted after one TTL), %d health flaps (every ~%s, unhealthy %s-%s); one event at a time, each waits for a single primary before the next\n",
		r.Count(SoakSwitchover), so.SwitchoverMin, so.SwitchoverMax, refused, skipped, r.Count(SoakKill), so.KillEvery,
		r.Count(SoakFlap), so.FlapEvery, so.FlapMin, so.FlapMax)
	p.f("- sampling every %s: %d process samples over %d processes, %d lease samples\n", so.SampleEvery, len(r.Resources), len(r.Processes), len(r.Leases))

	pid, series := r1Series(r)
	p.f("\n## r1 (pid %d, never killed)\n\n", pid)
	p.f("| time | RSS MiB | goroutines | fds | leases | r1's phase |\n|---:|---:|---:|---:|---:|---|\n")
	every := max(so.Duration/15, so.SampleEvery)
	var lastShown time.Time
	for i, s := range series {
		if i != 0 && i != len(series)-1 && s.At.Sub(lastShown) < every-so.SampleEvery/2 {
			continue
		}
		lastShown = s.At
		p.f("| %s | %.2f | %s | %d | %s | %s |\n", fmtOffset(s.At.Sub(r.Started)), float64(s.RSS)/(1<<20),
			orDash(s.Goroutines), s.FDs, leasesNear(r.Leases, s.At), cmp.Or(s.Phase, "-"))
	}

	p.f("\n## Every replica (all its processes)\n\n")
	p.f("| replica | processes | samples | RSS MiB min-max | goroutines min-max | fds min-max |\n|---|---:|---:|---:|---:|---:|\n")
	for _, id := range so.ids() {
		var rss, gor, fds []float64
		for _, s := range r.Resources {
			if s.Replica != id {
				continue
			}
			rss, fds = append(rss, float64(s.RSS)/(1<<20)), append(fds, float64(s.FDs))
			if s.Goroutines >= 0 {
				gor = append(gor, float64(s.Goroutines))
			}
		}
		procs := 0
		for _, pr := range r.Processes {
			if pr.Replica == id {
				procs++
			}
		}
		p.f("| %s | %d | %d | %s | %s | %s |\n", id, procs, len(rss), span(rss, 2), span(gor, 0), span(fds, 0))
	}

	p.f("\n## Targets\n\n")
	for _, c := range r.Checks {
		p.f("- %s %s: %s. Target: %s.\n", passFail(c.Pass), c.Name, c.Measured, c.Target)
	}

	p.f("\n## Safety (the campaign checker on the soak's record)\n\n")
	if r.Record != nil {
		v := r.Verdict
		p.f("Recovery: from the event's heal (a switchover: from the old primary no longer serving) to exactly one primary serving; bound %s.\n\n", r.Record.Bound)
		p.f("| kind | n | recovery p50 | p99 | max | slow | never |\n|---|---:|---:|---:|---:|---:|---:|\n")
		for _, k := range v.Figures {
			if k.Kind == GroupOverlapping {
				continue
			}
			p.f("| %s | %d | %s | %s | %s | %d | %d |\n", k.Kind, k.Count,
				dur(k.Recovery, k.Recovery.P50), dur(k.Recovery, k.Recovery.P99), dur(k.Recovery, k.Recovery.Max), k.Slow, k.Never)
		}
		accepted, fenced := 0, 0
		for _, x := range r.Record.Writes {
			switch {
			case x.Kind != "" && x.Kind != "write": // a hook raising the fence
			case x.Accepted:
				accepted++
			default:
				fenced++
			}
		}
		p.f("\n- tenures: %d; overlapping pairs: %d; store writes: %d accepted, %d fenced; acks: %d; concurrent 200 pairs: %d\n",
			len(v.Tenures), len(v.Overlaps), accepted, fenced, len(r.Record.Acked), v.TwoPrimaryPairs)
		p.f("- violations: %d\n", len(v.Violations))
		for i, x := range v.Violations {
			if i == 20 {
				p.f("  - ... %d more\n", len(v.Violations)-i)
				break
			}
			p.f("  - %s\n", x)
		}
	}

	failed := 0
	var names []string
	for _, c := range r.Checks {
		if !c.Pass {
			failed++
			names = append(names, c.Name)
		}
	}
	if r.OK() {
		p.f("\nRESULT: PASS\n")
	} else {
		p.f("\nRESULT: FAIL (%d targets missed: %s)\n", failed, strings.Join(names, ", "))
	}
	return p.err
}

// ids are the replica ids a soak with these options runs.
func (so SoakOptions) ids() []string {
	out := make([]string, so.Replicas)
	for i := range out {
		out[i] = fmt.Sprintf("r%d", i+1)
	}
	return out
}

func passFail(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func orDash(n int) string {
	if n < 0 {
		return "-"
	}
	return strconv.Itoa(n)
}

// leasesNear is the lease count sampled closest to t.
func leasesNear(ls []LeaseSample, t time.Time) string {
	best, found := time.Duration(1<<62), -1
	for i, l := range ls {
		if d := l.At.Sub(t).Abs(); d < best {
			best, found = d, i
		}
	}
	if found < 0 {
		return "-"
	}
	return strconv.Itoa(ls[found].Leases)
}

func span(vs []float64, decimals int) string {
	if len(vs) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.*f-%.*f", decimals, slices.Min(vs), decimals, slices.Max(vs))
}

func fmtOffset(d time.Duration) string {
	d = d.Round(time.Second)
	return fmt.Sprintf("%d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}

// machine is "linux/amd64, N CPUs, X GiB RAM, go1.x".
func machine() string {
	mem := "memory unknown"
	if f, err := os.Open("/proc/meminfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				if fs := strings.Fields(rest); len(fs) == 2 {
					if kb, err := strconv.ParseInt(fs[0], 10, 64); err == nil {
						mem = fmt.Sprintf("%.1f GiB RAM", float64(kb)/(1<<20))
					}
				}
				break
			}
		}
	}
	return fmt.Sprintf("%s/%s, %d CPUs, %s, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), mem, runtime.Version())
}
