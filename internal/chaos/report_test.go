package chaos

import (
	"errors"
	"strings"
	"testing"
)

func TestWriteReportPassingRun(t *testing.T) {
	r := cleanRecord()
	var b strings.Builder
	replay := ReplayCommand(r.Seed, len(r.Faults), "-replicas", "3")
	if err := WriteReport(&b, r, Check(r), replay); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"seed: 42",
		"`go run ./chaos -seed 42 -faults 2 -replicas 3`",
		"- revision: unknown (not recorded)",
		"- faults: 2 injected (0 more failed to inject); 0 overlapping others, 1 on the primary",
		"| sigkill | 1 | 0 | 0 | 1 |",                             // faults by kind
		"| cut-all | 1 | 0 | 0 | 0 |",                             //
		"| sigkill | 1 | 1.6s | 1.6s | 1.6s | 0 | 0 | 1 | 1.6s |", // figures
		"| cut-all | 1 | 500ms | 500ms | 500ms | 0 | 0 | 0 | - |", //
		"| (all) | 2 |", //
		"nearest-rank: with 100 values or fewer it is the largest", //
		"## Violations (0)", //
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if !strings.HasSuffix(out, "\nRESULT: PASS\n") {
		t.Errorf("report does not end with RESULT: PASS:\n%s", out)
	}
}

func TestWriteReportFailingRunShowsTimelineAroundViolation(t *testing.T) {
	r := cleanRecord()
	r.Faults[1].Recovered = at(18) // slow: 6s after the heal at 12s
	r.Samples = append(r.Samples, Sample{Replica: "c", Sent: at(7.001), Received: at(7.003), Code: 200})
	var b strings.Builder
	if err := WriteReport(&b, r, Check(r), ""); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	promoteB := r.Timeline[6].String() // b's promote at 6.5s, within 2s of the two-primaries at 7s
	for _, want := range []string{
		"`go run ./chaos -seed 42 -faults 2`", // the default replay command
		"### 1. two-primaries at 16:00:07.000 (b, c)",
		promoteB, "16:00:07.003 primary-probe c code=200",
		"### 2. slow-recovery at 16:00:12.000",
		"- fault #2 cut-all: injected 16:00:10.000, healed 16:00:12.000, single primary again: 6s",
		"16:00:10.000 fault-inject cluster #2 cut-all", // within 2s of the heal
		"16:00:12.000 fault-heal cluster #2 cut-all",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	// a's promote at 1s is more than 2s before 7s: not in the first
	// violation's timeline, while its kill at 5s (exactly 2s) is.
	first := out[strings.Index(out, "### 1."):strings.Index(out, "### 2.")]
	if strings.Contains(first, "promote-start a") || !strings.Contains(first, "exit a") {
		t.Errorf("timeline of violation 1 is not the 2s either side:\n%s", first)
	}
	if !strings.HasSuffix(out, "\nRESULT: FAIL (2 violations)\n") {
		t.Errorf("report does not end with the FAIL line:\n%s", out)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteReportReturnsWriteError(t *testing.T) {
	r := cleanRecord()
	if err := WriteReport(failingWriter{}, r, Check(r), ""); err == nil || err.Error() != "disk full" {
		t.Fatalf("err = %v", err)
	}
}

// TestWriteReportShowsRevisionSamplingStoreAndOverlaps: the header's
// revision, failed injections, probe gaps and store decisions per route,
// and the overlap line with the writes fencing refused.
func TestWriteReportShowsRevisionSamplingStoreAndOverlaps(t *testing.T) {
	r := overlapRecord(true, false)
	r.Revision = "0123abc"
	r.Faults = append(r.Faults, Fault{Seq: 3, Kind: "switchover", Target: "c", Injected: at(14), InjectErr: "a request is pending"})
	// b's probes 20 ms apart but one 150 ms gap; a's gap spans its exit
	// at 5s and is left out.
	r.Samples = []Sample{
		sample("b", 10, 503), sample("b", 10.02, 503), sample("b", 10.04, 503), sample("b", 10.19, 503),
		sample("c", 10, 503), sample("c", 10.02, 503),
		sample("a", 4.99, 503), sample("a", 6.2, 503),
	}
	var b strings.Builder
	if err := WriteReport(&b, r, Check(r), ""); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"- revision: 0123abc",
		"- faults: 2 injected (1 more failed to inject); 0 overlapping others, 1 on the primary",
		"| switchover | 0 | 1 | 0 | 0 |",
		"| (all) | 2 | 1 | 0 | 1 |",
		"- fault #3 switchover on c at 16:00:14.000: a request is pending",
		"- sampling: gaps between a replica's consecutive probes p50 20ms, p99 150ms, max 150ms (4 gaps, 1 over 100ms;",
		"- store writes via lb: 3 accepted, 0 refused (2 acked); via app: 2 accepted, 2 refused (1 acked); 2 refused in all (fenced); promotes: 2 accepted, 0 refused",
		"(1 excused: the older primary frozen or its demote hook faulted, and fenced; 1 stale writes refused in them)",
		"- EXCUSED (b had a frozen window 16:00:07.500..16:00:09.500, fenced): b token 12 and c token 13, 16:00:08.000..16:00:09.000 (1s); 1 stale writes refused",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if !strings.HasSuffix(out, "\nRESULT: PASS\n") {
		t.Errorf("report does not end with RESULT: PASS:\n%s", out)
	}
}

// TestWriteReportOverlapViolationSaysWhy: an unexcused overlap's line
// says why no window excused it.
func TestWriteReportOverlapViolationSaysWhy(t *testing.T) {
	r := overlapRecord(false, false)
	r.HookFaults = []Window{{Replica: "c", Kind: "promote-fail", Start: at(7.5), End: at(12)}}
	var b strings.Builder
	if err := WriteReport(&b, r, Check(r), ""); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"- VIOLATION (b (the older primary) had no frozen, demote-fail, demote-hang or flood window): b token 12 and c token 13",
		"16:00:07.500 hookfault-start c promote-fail",
		"### 1. tenure-overlap at 16:00:08.000 (b, c)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
