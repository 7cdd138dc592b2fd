package main

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/leaderd/leaderd/internal/timeline"
	"github.com/leaderd/leaderd/role"
)

// target is what a distribution is held to; the zero value is "none"
// (the figure is shown for context).
type target struct {
	P99      time.Duration // p99 <= P99
	Positive bool          // every value > 0
}

func (t target) String() string {
	switch {
	case t.P99 > 0:
		return "p99 ≤ " + ms(t.P99)
	case t.Positive:
		return "> 0 in every round"
	}
	return ""
}

// dist is one measured distribution.
type dist struct {
	Name   string
	Target target
	Values []time.Duration
}

// stats are nearest-rank percentiles: the p-th percentile of n sorted values
// is the value at rank ceil(p/100 * n). With n <= 100, p99 is the maximum.
type stats struct {
	N                  int
	Min, P50, P99, Max time.Duration
	NonPositive        int
}

func (d *dist) stats() stats {
	s := slices.Clone(d.Values)
	slices.Sort(s)
	st := stats{N: len(s)}
	if len(s) == 0 {
		return st
	}
	st.Min, st.P50, st.P99, st.Max = s[0], percentile(s, 50), percentile(s, 99), s[len(s)-1]
	for _, v := range s {
		if v <= 0 {
			st.NonPositive++
		}
	}
	return st
}

// percentile is the nearest-rank percentile of sorted (ascending, non-empty).
func percentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// verdict says whether st meets t: "met", "MISSED", or "" without a target.
func (t target) verdict(st stats) string {
	switch {
	case st.N == 0 && (t.P99 > 0 || t.Positive):
		return "no data"
	case t.P99 > 0 && st.P99 <= t.P99:
		return "met"
	case t.P99 > 0:
		return "MISSED"
	case t.Positive && st.NonPositive == 0:
		return "met"
	case t.Positive:
		return "MISSED"
	}
	return ""
}

// phase is one kind of round and what it measured.
type phase struct {
	Name       string
	Dists      []*dist
	Rounds     int      // rounds attempted
	Failures   []string // one line per failed round
	Violations int      // rounds where a promote came before it was safe
	line       string   // the last round's summary, for progress output
}

func (p *phase) record(name string, v time.Duration) {
	for _, d := range p.Dists {
		if d.Name == name {
			d.Values = append(d.Values, v)
			return
		}
	}
	panic("bench: unknown distribution " + name)
}

func (p *phase) lastLine() string { return p.line }

// safety is what the whole hook timeline shows.
type safety struct {
	Tenures  int
	Overlaps []string // a promote start before the previous tenure's demote ended
	Tokens   []string // fencing tokens that did not increase
}

// checkTimeline checks that no two tenures overlap and that fencing tokens
// strictly increase. A SIGKILLed primary never runs its demote; its tenure
// is closed by the start-up demote of its restart, which says nothing
// about the hand-over, so those ends are not compared.
func checkTimeline(evs []timeline.Event) *safety {
	ts := timeline.Tenures(evs)
	sort.SliceStable(ts, func(i, j int) bool { return ts[i].Start.Before(ts[j].Start) })
	s := &safety{Tenures: len(ts)}
	endUnknown := func(t timeline.Tenure) bool { return t.Open() || t.EndReason == role.ReasonStartup }
	for _, o := range timeline.Overlaps(ts, timeline.Rules{Excused: endUnknown}) {
		s.Overlaps = append(s.Overlaps, fmt.Sprintf("%s (token %d) promoted %s before %s (token %d) ended its demote",
			o.B.ID, o.B.Token, ms(o.A.End.Sub(o.B.Start)), o.A.ID, o.A.Token))
	}
	for _, v := range timeline.TokenInversions(ts) {
		s.Tokens = append(s.Tokens, fmt.Sprintf("token %d (%s) after %d (%s)", v.Next.Token, v.Next.ID, v.Prev.Token, v.Prev.ID))
	}
	return s
}

// machine describes where the run happened.
type machine struct {
	NProc     int
	CPU       string
	Memory    string
	Kernel    string
	Go        string
	Etcd      string
	LoadStart string
}

func readMachine() machine {
	m := machine{NProc: runtime.NumCPU(), Go: runtime.Version(), CPU: "unknown", Memory: "unknown", Kernel: "unknown", Etcd: "unknown"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && k == "MemTotal" {
				var kb int64
				if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err == nil {
					m.Memory = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
				}
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "go.etcd.io/etcd/server/v3" {
				m.Etcd = d.Version
			}
		}
	}
	m.LoadStart = readLoadAvg()
	return m
}

func readLoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// releaseBuild says how the replicas' binary is built: as `make build`
// (replicas.BuildRelease).
const releaseBuild = "CGO_ENABLED=0, -tags nodemo,grpcnotrace -trimpath -ldflags '-s -w'"

// report is the whole result.
type report struct {
	Command     string
	Date        time.Time
	Machine     machine
	Opts        options
	Footprint   []usage
	Metrics     []scrape
	Phases      []*phase
	Safety      *safety
	Failures    []string // failures outside the rounds (setup, footprint, metrics)
	Fatal       string   // the run stopped early
	Interrupted bool
	LoadAfter   string
	WorkDir     string
}

func (r *report) fatal(format string, args ...any) {
	r.Fatal = fmt.Sprintf(format, args...)
}

// ok is false when anything failed or a safety check did not hold. A missed
// latency or footprint target is a result, not a failure.
func (r *report) ok() bool {
	if r.Fatal != "" || r.Interrupted || len(r.Failures) > 0 {
		return false
	}
	for _, p := range r.Phases {
		if len(p.Failures) > 0 || p.Violations > 0 {
			return false
		}
		for _, d := range p.Dists {
			if d.Target.Positive && d.stats().NonPositive > 0 {
				return false
			}
		}
	}
	if r.Safety != nil && (len(r.Safety.Overlaps) > 0 || len(r.Safety.Tokens) > 0) {
		return false
	}
	return true
}

// writeRunHeader writes what every report says first: the title, the
// command, when, the machine and its load.
func writeRunHeader(b *strings.Builder, title, command string, date time.Time, m machine, loadAfter string) {
	fmt.Fprintf(b, "## %s\n\n", title)
	fmt.Fprintf(b, "- command: `%s`\n", command)
	fmt.Fprintf(b, "- date: %s\n", date.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(b, "- machine: %d CPUs (nproc), %s, %s RAM, %s, %s\n", m.NProc, m.CPU, m.Memory, m.Kernel, m.Go)
	fmt.Fprintf(b, "- load average (1/5/15 min): %s at the start, %s at the end\n", m.LoadStart, loadAfter)
}

func (r *report) markdown() string {
	var b strings.Builder
	m := r.Machine
	writeRunHeader(&b, "leaderd benchmark", r.Command, r.Date, m, r.LoadAfter)
	fmt.Fprintf(&b, "- setup: embedded etcd %s (one member, in the bench process); 3 `leaderd run` processes built as `make build` does (%s), each through its own TCP fault proxy; --ttl %s --demote-timeout %s (safe deadline %s before the earliest server-side expiry); example hooks writing `date +%%s%%N` to a shared timeline\n",
		m.Etcd, releaseBuild, r.Opts.ttl, r.Opts.demoteTimeout, r.Opts.stepDownLead)
	fmt.Fprintf(&b, "- percentiles: nearest rank; with n ≤ 100, p99 is the maximum\n\n")

	if len(r.Phases) > 0 {
		fmt.Fprintf(&b, "| scenario | measure | n | min | p50 | p99 | max | target | |\n")
		fmt.Fprintf(&b, "|---|---|--:|--:|--:|--:|--:|---|---|\n")
		for _, p := range r.Phases {
			for _, d := range p.Dists {
				st := d.stats()
				tgt := d.Target.String()
				if d.Target.Positive {
					tgt += fmt.Sprintf(" (rounds ≤ 0: %d)", st.NonPositive)
				}
				fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s | %s | %s | %s |\n",
					p.Name, d.Name, st.N, msOrDash(st, st.Min), msOrDash(st, st.P50), msOrDash(st, st.P99), msOrDash(st, st.Max),
					tgt, d.Target.verdict(st))
			}
		}
		fmt.Fprintln(&b)
	}
	if len(r.Footprint) > 0 {
		fmt.Fprintf(&b, "| idle replica | VmRSS at the end | of which anon / file | VmRSS at the start | VmHWM (peak) | CPU, %% of one core | window | target |\n")
		fmt.Fprintf(&b, "|---|--:|--:|--:|--:|--:|--:|---|\n")
		for _, u := range r.Footprint {
			v := "met"
			if u.Mem.VmRSS > rssTarget {
				v = "MISSED"
			}
			fmt.Fprintf(&b, "| %s (%s) | %s | %s / %s | %s | %s | %.2f %% | %s | RSS ≤ %d MiB: %s |\n",
				u.ID, u.Role, mib(u.Mem.VmRSS), mib(u.Mem.RssAnon), mib(u.Mem.RssFile), mib(u.RSSStart), mib(u.Mem.VmHWM),
				u.CPU, u.Window.Round(100*time.Millisecond), rssTarget>>20, v)
		}
		fmt.Fprintln(&b)
	}

	if len(r.Metrics) > 0 {
		fmt.Fprintf(&b, "| GET /metrics | n | p50 | p99 | max | body (text) | on the wire (gzip) | replica CPU per scrape | CPU ticks / window |\n")
		fmt.Fprintf(&b, "|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		for _, s := range r.Metrics {
			st := s.Latency.stats()
			fmt.Fprintf(&b, "| %s (%s) | %d | %s | %s | %s | %d B | %d B | %s | %d / %s |\n",
				s.ID, s.Role, st.N, msFine(st.P50), msFine(st.P99), msFine(st.Max), s.BodyBytes, s.WireBytes,
				msFine(s.CPUPerScrape()), s.CPUTicks, s.Window.Round(time.Millisecond))
		}
		fmt.Fprintln(&b)
	}

	var fails []string
	fails = append(fails, r.Failures...)
	for _, p := range r.Phases {
		fmt.Fprintf(&b, "- %s: %d rounds, %d failed\n", p.Name, p.Rounds, len(p.Failures))
		for _, f := range p.Failures {
			fails = append(fails, p.Name+": "+f)
		}
	}
	if s := r.Safety; s != nil {
		fmt.Fprintf(&b, "- timeline: %d tenures, %d overlapping, %d fencing tokens not increasing\n", s.Tenures, len(s.Overlaps), len(s.Tokens))
		for _, o := range append(s.Overlaps, s.Tokens...) {
			fails = append(fails, "safety: "+o)
		}
	}
	if r.Interrupted {
		fmt.Fprintf(&b, "- INTERRUPTED: the figures cover the rounds done so far\n")
	}
	if r.Fatal != "" {
		fmt.Fprintf(&b, "- STOPPED EARLY: %s\n", oneLine(r.Fatal))
	}
	for _, f := range fails {
		fmt.Fprintf(&b, "- FAILURE: %s\n", oneLine(f))
	}
	if r.WorkDir != "" {
		fmt.Fprintf(&b, "- working directory (timeline, replica logs): %s\n", r.WorkDir)
	}
	return b.String()
}

func msOrDash(st stats, d time.Duration) string {
	if st.N == 0 {
		return "–"
	}
	return ms(d)
}

// ms formats d in milliseconds, to 0.1 ms.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 2000 {
		s = s[:2000] + "…"
	}
	return s
}
