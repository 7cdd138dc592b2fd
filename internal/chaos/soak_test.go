package chaos

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/leaderd/leaderd/internal/replicas"
)

func TestParseVmRSS(t *testing.T) {
	status := "Name:\tleaderd\nVmPeak:\t 1260000 kB\nVmRSS:\t   15360 kB\nRssAnon:\t 8000 kB\n"
	got, err := parseVmRSS([]byte(status))
	if err != nil || got != 15360*1024 {
		t.Fatalf("parseVmRSS = %d, %v; want %d", got, err, 15360*1024)
	}
	for name, bad := range map[string]string{
		"no VmRSS (zombie)": "Name:\tleaderd\nState:\tZ (zombie)\n",
		"unit not kB":       "VmRSS:\t 15 MB\n",
		"not a number":      "VmRSS:\t x kB\n",
	} {
		if _, err := parseVmRSS([]byte(bad)); err == nil {
			t.Errorf("%s: parseVmRSS(%q) succeeded", name, bad)
		}
	}
}

func TestParseVmRSSOfThisProcess(t *testing.T) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	rss, err := parseVmRSS(status)
	if err != nil || rss < 1<<20 {
		t.Fatalf("own RSS = %d, %v; want at least 1 MiB", rss, err)
	}
}

func TestParseGoroutines(t *testing.T) {
	metrics := `# HELP go_gc_duration_seconds A summary.
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0"} 2.1e-05
# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines_total_fake 99
go_goroutines 27
go_threads 9
`
	got, err := parseGoroutines(strings.NewReader(metrics))
	if err != nil || got != 27 {
		t.Fatalf("parseGoroutines = %d, %v; want 27", got, err)
	}
	got, err = parseGoroutines(strings.NewReader("go_goroutines{instance=\"a\"} 1.2e+01\n"))
	if err != nil || got != 12 {
		t.Fatalf("with labels and an exponent: %d, %v; want 12", got, err)
	}
	if _, err := parseGoroutines(strings.NewReader("go_threads 9\n")); err == nil {
		t.Fatal("no go_goroutines line: want an error")
	}
}

func TestCountFDsSeesAnOpenedFile(t *testing.T) {
	before, err := countFDs(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	after, err := countFDs(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Other goroutines of the test binary may open or close one meanwhile.
	if after < before || after > before+2 {
		t.Fatalf("fds %d before opening a file, %d after; want about +1", before, after)
	}
}

func TestKillsWithin(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	kills := []time.Time{t0, t0.Add(10 * time.Second), t0.Add(12 * time.Second)}
	for _, c := range []struct {
		at   time.Duration
		want int
	}{
		{-time.Second, 0}, // before any kill
		{0, 1},            // at the kill
		{3 * time.Second, 0},
		{12 * time.Second, 2},
		{13 * time.Second, 1}, // the first of the two ran out (window 3s)
		{15 * time.Second, 0},
	} {
		if got := killsWithin(kills, t0.Add(c.at), 3*time.Second); got != c.want {
			t.Errorf("at +%s: %d kills within 3s, want %d", c.at, got, c.want)
		}
	}
}

func TestSoakWarmUpDefault(t *testing.T) {
	for d, want := range map[time.Duration]time.Duration{
		3 * time.Minute:  30 * time.Second,
		30 * time.Minute: 5 * time.Minute,
		time.Hour:        5 * time.Minute,
	} {
		if got := (SoakOptions{Duration: d}).warmUp(); got != want {
			t.Errorf("warm-up of a %s soak = %s, want %s", d, got, want)
		}
	}
	if got := (SoakOptions{Duration: time.Hour, WarmUp: time.Minute}).warmUp(); got != time.Minute {
		t.Errorf("explicit warm-up ignored: %s", got)
	}
}

// soakSeries builds a passing result: r1 (pid 100) sampled every 10s for
// 3 minutes with flat figures, leases at their allowance.
func soakSeries(t0 time.Time) *SoakResult {
	r := &SoakResult{
		Options:  SoakOptions{Options: Options{Replicas: 3, TTL: 2 * time.Second}, Duration: 3 * time.Minute, SampleEvery: 10 * time.Second},
		Started:  t0,
		ChurnEnd: t0.Add(3 * time.Minute),
		Processes: []Process{{Replica: "r1", Pid: 100, Start: t0, End: t0.Add(3 * time.Minute)},
			{Replica: "r2", Pid: 200, Start: t0, End: t0.Add(3 * time.Minute)}},
		EndLeases: 3, EndRunning: 3,
		Record: &Record{},
	}
	for i := 0; i <= 18; i++ {
		at := t0.Add(time.Duration(i) * 10 * time.Second)
		r.Resources = append(r.Resources,
			ResourceSample{At: at, Replica: "r1", Pid: 100, RSS: 20 << 20, Goroutines: 30, FDs: 12},
			ResourceSample{At: at, Replica: "r2", Pid: 200, RSS: 19 << 20, Goroutines: 28, FDs: 11})
		r.Leases = append(r.Leases, LeaseSample{At: at, Leases: 3, Running: 3, Allowed: 3})
	}
	return r
}

func checkByName(t *testing.T, checks []SoakCheck, name string) SoakCheck {
	t.Helper()
	for _, c := range checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %q in %+v", name, checks)
	return SoakCheck{}
}

func TestJudgeSoakFlatSeriesPasses(t *testing.T) {
	r := soakSeries(time.Now())
	r.Checks = judgeSoak(r)
	if !r.OK() {
		t.Fatalf("flat series failed: %+v", r.Checks)
	}
}

func TestJudgeSoakEachTargetFailsOnItsSeries(t *testing.T) {
	t0 := time.Now()
	warm := t0.Add(30 * time.Second) // min(5m, 3m/6)
	// lateR1 changes r1's samples in the last 3 after warm-up.
	lateR1 := func(r *SoakResult, f func(*ResourceSample)) {
		for i := range r.Resources {
			if s := &r.Resources[i]; s.Replica == "r1" && s.At.After(t0.Add(150*time.Second)) {
				f(s)
			}
		}
	}
	for _, c := range []struct {
		name   string
		check  string
		pass   bool
		change func(*SoakResult)
	}{
		{"RSS +2 MiB", CheckRSS, false, func(r *SoakResult) { lateR1(r, func(s *ResourceSample) { s.RSS += 2 << 20 }) }},
		{"RSS +1.9 MiB", CheckRSS, true, func(r *SoakResult) { lateR1(r, func(s *ResourceSample) { s.RSS += 19 << 20 / 10 }) }},
		{"RSS growth during the warm-up is not counted", CheckRSS, true, func(r *SoakResult) {
			for i := range r.Resources {
				if s := &r.Resources[i]; s.At.Before(warm) {
					s.RSS -= 10 << 20
				}
			}
		}},
		{"one outlier among the last three is the median's to ignore", CheckRSS, true, func(r *SoakResult) {
			for i := len(r.Resources) - 1; i >= 0; i-- {
				if s := &r.Resources[i]; s.Replica == "r1" {
					s.RSS += 50 << 20
					return
				}
			}
		}},
		{"goroutines +4", CheckGoroutines, false, func(r *SoakResult) { lateR1(r, func(s *ResourceSample) { s.Goroutines += 4 }) }},
		{"goroutines +3", CheckGoroutines, true, func(r *SoakResult) { lateR1(r, func(s *ResourceSample) { s.Goroutines += 3 }) }},
		{"goroutines unreadable are left out", CheckGoroutines, true, func(r *SoakResult) {
			lateR1(r, func(s *ResourceSample) { s.Goroutines = -1 })
		}},
		{"fds +3", CheckFDs, false, func(r *SoakResult) { lateR1(r, func(s *ResourceSample) { s.FDs += 3 }) }},
		{"fds +2", CheckFDs, true, func(r *SoakResult) { lateR1(r, func(s *ResourceSample) { s.FDs += 2 }) }},
		{"another replica's growth is not r1's", CheckRSS, true, func(r *SoakResult) {
			for i := range r.Resources {
				if s := &r.Resources[i]; s.Replica == "r2" && s.At.After(t0.Add(150*time.Second)) {
					s.RSS += 100 << 20
				}
			}
		}},
		{"too few samples after warm-up", CheckRSS, false, func(r *SoakResult) {
			var keep []ResourceSample
			for _, s := range r.Resources {
				if s.At.Before(warm.Add(40 * time.Second)) {
					keep = append(keep, s)
				}
			}
			r.Resources = keep
		}},
		{"r1 restarted", CheckR1Process, false, func(r *SoakResult) {
			lateR1(r, func(s *ResourceSample) { s.Pid = 101 })
		}},
		{"a lease over the allowance", CheckLeases, false, func(r *SoakResult) { r.Leases[7].Leases = 4 }},
		{"a killed process's lease within its allowance", CheckLeases, true, func(r *SoakResult) {
			r.Leases[7].Leases, r.Leases[7].Allowed = 4, 4
		}},
		{"no lease samples", CheckLeases, false, func(r *SoakResult) { r.Leases = nil }},
		{"a lease left at the end", CheckEndLeases, false, func(r *SoakResult) { r.EndLeases = 4 }},
		{"lease count unreadable at the end", CheckEndLeases, false, func(r *SoakResult) { r.EndLeases = -1 }},
		{"a safety violation", CheckSafety, false, func(r *SoakResult) {
			r.Verdict.Violations = []Violation{{Rule: RuleTwoPrimaries, At: t0}}
		}},
		{"no record", CheckSafety, false, func(r *SoakResult) { r.Record = nil }},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := soakSeries(t0)
			c.change(r)
			got := checkByName(t, judgeSoak(r), c.check)
			if got.Pass != c.pass {
				t.Fatalf("%s: pass = %t, want %t (%s)", c.check, got.Pass, c.pass, got.Measured)
			}
		})
	}
}

func TestWriteSoakReportShowsTargetsAndResult(t *testing.T) {
	r := soakSeries(time.Now())
	r.Checks = judgeSoak(r)
	var b strings.Builder
	if err := WriteSoakReport(&b, r, "go run ./chaos -soak 3m"); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"- machine: ", "| time | RSS MiB | goroutines | fds | leases | r1's phase |", "| 0:00 | 20.00 | 30 | 12 | 3 | - |",
		"| 3:00 | 20.00 | 30 | 12 | 3 | - |", "- PASS rss: +0.00 MiB", "- PASS leases-end: 3 leases, 3 leaderd processes running"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if !strings.HasSuffix(out, "\nRESULT: PASS\n") {
		t.Errorf("report does not end in RESULT: PASS:\n%s", out)
	}
	r.EndLeases = 5
	r.Checks = judgeSoak(r)
	b.Reset()
	_ = WriteSoakReport(&b, r, "")
	if !strings.HasSuffix(b.String(), "\nRESULT: FAIL (1 targets missed: leases-end)\n") {
		t.Errorf("failing report's last line:\n%s", b.String())
	}
}

// TestSoakShortRealChurn runs a 25 s soak on a real cluster with the churn
// scaled down (a switchover every 2 s, one SIGKILL, one flap) and checks
// the sampling covered every process and the checker passed the record.
func TestSoakShortRealChurn(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin, err := replicas.Build(ctx, t.TempDir(), "nodemo")
	if err != nil {
		t.Fatal(err)
	}
	so := SoakOptions{
		Options: Options{Seed: 7, Replicas: 3, TTL: 2 * time.Second, DemoteTimeout: 500 * time.Millisecond,
			PromoteTimeout: 2 * time.Second, Binary: bin, Dir: t.TempDir(),
			Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))},
		Duration:      15 * time.Second,
		SwitchoverMin: 1500 * time.Millisecond, SwitchoverMax: 1500 * time.Millisecond,
		KillEvery: 8 * time.Second, // one, at 8s: the next would fall after the end
		FlapEvery: 9 * time.Second, FlapMin: time.Second, FlapMax: time.Second,
		SampleEvery: time.Second,
	}
	start := time.Now()
	res, err := Soak(ctx, so)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("soak took %s: %d switchovers, %d kills, %d flaps, %d process samples, %d lease samples",
		time.Since(start).Round(time.Second), res.Count(SoakSwitchover), res.Count(SoakKill), res.Count(SoakFlap),
		len(res.Resources), len(res.Leases))
	if n := res.Count(SoakKill); n < 1 {
		t.Errorf("%d SIGKILLs, want at least 1", n)
	}
	if n := res.Count(SoakSwitchover); n < 4 {
		t.Errorf("%d switchovers in 15s at one every 1.5s (plus settling), want at least 4", n)
	}
	// Every process that ran two sampling periods was sampled, with all
	// three figures.
	for _, p := range res.Processes {
		if p.End.Sub(p.Start) < 2*so.SampleEvery {
			continue
		}
		n := 0
		for _, s := range res.Resources {
			if s.Pid == p.Pid && s.Replica == p.Replica && s.RSS > 0 && s.FDs > 0 && s.Goroutines > 0 {
				n++
			}
		}
		if n == 0 {
			t.Errorf("process %s pid %d (%s..%s) was never sampled", p.Replica, p.Pid, clock(p.Start), clock(p.End))
		}
	}
	if len(res.Processes) <= so.Replicas {
		t.Errorf("%d processes recorded; the SIGKILL's restart should add one", len(res.Processes))
	}
	if len(res.Leases) == 0 {
		t.Error("no lease samples")
	}
	if !res.Verdict.OK() {
		var b strings.Builder
		_ = WriteReport(&b, res.Record, res.Verdict, "")
		t.Errorf("safety check failed:\n%s", b.String())
	}
	if c := checkByName(t, res.Checks, CheckEndLeases); !c.Pass {
		t.Errorf("end leases: %s", c.Measured)
	}
	if c := checkByName(t, res.Checks, CheckR1Process); !c.Pass {
		t.Errorf("r1: %s", c.Measured)
	}
	if t.Failed() {
		var b strings.Builder
		_ = WriteSoakReport(&b, res, "")
		t.Log(b.String())
	}
}

// testWriter sends the soak's log to the test's.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
