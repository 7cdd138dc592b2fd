package chaos

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Priorities are distinct, drawn from the seed alone (a seed replays
// them), and not always in replica order.
func TestPrioritiesAreDistinctAndReplayFromTheSeed(t *testing.T) {
	moved := false
	for seed := range int64(50) {
		for n := 3; n <= 5; n++ {
			a, b := Priorities(seed, n), Priorities(seed, n)
			if !slices.Equal(a, b) {
				t.Fatalf("seed %d, %d replicas: %v then %v", seed, n, a, b)
			}
			s := slices.Sorted(slices.Values(a))
			for i, p := range s {
				if p != 100+10*i {
					t.Fatalf("seed %d, %d replicas: %v, want a permutation of 100, 110, ...", seed, n, a)
				}
			}
			if a[0] != 100+10*(n-1) {
				moved = true
			}
		}
	}
	if !moved {
		t.Fatal("r1 always had the highest priority")
	}
}

// -priorities draws from its own source: a seed's fault plan is the same
// with it and without it.
func TestPrioritiesLeaveTheFaultPlanAlone(t *testing.T) {
	plain := &campaign{o: Options{Seed: 7, Overlap: 0.3, Replicas: 3}}
	prio := &campaign{o: Options{Seed: 7, Overlap: 0.3, Replicas: 3, Priorities: true, Failback: 5 * time.Second}}
	for step := range 100 {
		Priorities(7, 3)
		if a, b := plain.plan(step), prio.plan(step); a != b {
			t.Fatalf("step %d: %+v without -priorities, %+v with", step, a, b)
		}
		if plain.faultRand(step, 0).Uint64() != prio.faultRand(step, 0).Uint64() {
			t.Fatalf("step %d: fault draws differ with -priorities", step)
		}
	}
}

func TestPriorityArgsAndValidate(t *testing.T) {
	o := Options{Seed: 3, Faults: 1, Replicas: 3, Overlap: 0.3, TTL: 3 * time.Second,
		DemoteTimeout: time.Second, PromoteTimeout: time.Second}
	if args := o.priorityArgs(0); args != nil {
		t.Fatalf("without -priorities: %v, want none", args)
	}
	o.Failback = 5 * time.Second
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "-failback needs -priorities") {
		t.Fatalf("-failback without -priorities: %v", err)
	}
	o.Priorities = true
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	ps := Priorities(3, 3)
	for i := range 3 {
		want := []string{"--priority", strconv.Itoa(ps[i]), "--failback", "after=5s"}
		if got := o.priorityArgs(i); !slices.Equal(got, want) {
			t.Fatalf("replica %d: %v, want %v", i, got, want)
		}
	}
	o.Failback = 0
	if got := o.priorityArgs(1); len(got) != 2 {
		t.Fatalf("failback off: %v, want only --priority", got)
	}
	o.Failback = -time.Second
	if err := o.Validate(); err == nil {
		t.Fatal("a negative -failback passed")
	}
}

func TestHighestIsTheRunningReplicaOfTheHighestPriority(t *testing.T) {
	prio := map[string]int{"a": 110, "b": 120, "c": 100}
	if got := highest(prio, []string{"a", "b", "c"}); got != "b" {
		t.Fatalf("got %q, want b", got)
	}
	if got := highest(prio, []string{"a", "c"}); got != "a" {
		t.Fatalf("b not running: got %q, want a", got)
	}
	if got := highest(prio, nil); got != "" {
		t.Fatalf("none running: got %q", got)
	}
}

// priorityRecord is cleanRecord run with priorities (b the highest) and
// failback, the quiet window at the end without a promote.
func priorityRecord() *Record {
	r := cleanRecord()
	r.Priorities = map[string]int{"a": 110, "b": 120, "c": 100}
	r.Failback = 5 * time.Second
	r.End.Highest = "b"
	r.End.Quiet = &Window{Replica: "*", Kind: "quiet", Start: at(13), End: at(19)}
	return r
}

func TestCheckPriorityCleanEndPasses(t *testing.T) {
	if v := Check(priorityRecord()); !v.OK() {
		t.Fatalf("violations: %v", v.Violations)
	}
}

func TestCheckEndPriorityFiresOnlyWithFailback(t *testing.T) {
	r := priorityRecord()
	r.End.Highest = "a" // a outranks the end primary b
	v := Check(r)
	if got := v.ByRule(); got[RuleEndPriority] != 1 || len(v.Violations) != 1 {
		t.Fatalf("violations: %v, want one %s", v.Violations, RuleEndPriority)
	}
	r.Failback = 0
	if v := Check(r); !v.OK() {
		t.Fatalf("failback off: %v, want none (nothing hands back)", v.Violations)
	}
}

func TestCheckEndChurnFiresOnAPromoteInTheQuietWindow(t *testing.T) {
	r := priorityRecord()
	r.Timeline = append(r.Timeline,
		ev(15, "promote", "start", "a", 14, "elected"),
		ev(15.1, "promote", "end", "a", 14, "elected"))
	v := Check(r)
	if got := v.ByRule(); got[RuleEndChurn] != 1 {
		t.Fatalf("violations: %v, want one %s", v.Violations, RuleEndChurn)
	}
	if d := v.Violations[slices.IndexFunc(v.Violations, func(x Violation) bool { return x.Rule == RuleEndChurn })].Detail; !strings.Contains(d, "a at ") {
		t.Fatalf("detail %q does not name the promote", d)
	}
}

// A record from a run without -priorities (or from before them) has no
// priority rules to break, whatever its end looks like.
func TestCheckPriorityRulesNeedPriorities(t *testing.T) {
	r := cleanRecord()
	r.End.Highest = "a"
	r.End.Quiet = &Window{Start: at(0), End: at(20)}
	if v := Check(r); !v.OK() {
		t.Fatalf("violations: %v", v.Violations)
	}
}

// The campaign counts yields and failbacks by the sidecar's log messages:
// a renamed message would make the counts silently zero.
func TestPriorityLogMessagesMatchTheSidecar(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "..", "sidecar", "priority.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{logYield, logFailback} {
		if msg := strings.TrimPrefix(m, "msg="); !strings.Contains(string(src), msg) {
			t.Errorf("sidecar/priority.go logs no %s", msg)
		}
	}
}

func TestReportNamesThePriorities(t *testing.T) {
	r := priorityRecord()
	r.Yields, r.Failbacks = 4, 2
	var b strings.Builder
	if err := WriteReport(&b, r, Check(r), ""); err != nil {
		t.Fatal(err)
	}
	want := "- priorities a=110, b=120, c=100; failback after 5s; 4 yields at a win and 2 failback requests logged; highest running at the end: b; quiet window at the end 6s\n"
	if !strings.Contains(b.String(), want) {
		t.Fatalf("report lacks %q:\n%s", want, b.String())
	}
	b.Reset()
	if err := WriteReport(&b, cleanRecord(), Check(cleanRecord()), ""); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "priorities") {
		t.Fatal("a run without -priorities reports priorities")
	}
}
