package chaos

import (
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/leaderd/leaderd/hooks"
	"github.com/leaderd/leaderd/internal/timeline"
	"github.com/leaderd/leaderd/role"
)

var t0 = time.Date(2026, 11, 30, 16, 0, 0, 0, time.UTC)

// at is t0 plus s seconds.
func at(s float64) time.Time { return t0.Add(time.Duration(math.Round(s * float64(time.Second)))) }

func ev(s float64, hook hooks.Event, phase timeline.Phase, id string, token int64, reason string) timeline.Event {
	return timeline.Event{At: at(s), Hook: hook, Phase: phase, ID: id, Token: token, Reason: role.Reason(reason)}
}

func sample(id string, s float64, code int) Sample {
	return Sample{Replica: id, Sent: at(s), Received: at(s + 0.002), Code: code}
}

// cleanRecord is a run that breaks no rule: a is primary (token 10), is
// SIGKILLed at 5s and restarted (its startup demote at 6s is not the end
// of its killed tenure), b takes over with token 12 and stays primary (a's
// app's late write with token 10 is refused); a cluster-wide cut from 10s
// to 12s does not touch the primary; a is stopped cleanly at the end.
func cleanRecord() *Record {
	return &Record{
		Seed: 42, Started: t0, Ended: at(20), Replicas: []string{"a", "b", "c"},
		Timeline: []timeline.Event{
			ev(0.5, "demote", "start", "a", 0, "startup"),
			ev(0.6, "demote", "end", "a", 0, "startup"),
			ev(1, "promote", "start", "a", 10, "elected"),
			ev(1.1, "promote", "end", "a", 10, "elected"),
			ev(6, "demote", "start", "a", 0, "startup"),
			ev(6.05, "demote", "end", "a", 0, "startup"),
			ev(6.5, "promote", "start", "b", 12, "elected"),
			ev(6.6, "promote", "end", "b", 12, "elected"),
		},
		Samples: []Sample{
			sample("a", 2, 200), sample("b", 2, 503), sample("c", 2, 503),
			sample("b", 5.5, 503), sample("c", 5.5, 503),
			sample("a", 7, 503), sample("b", 7, 200), sample("c", 7, 503),
		},
		Writes: []StoreWrite{
			{At: at(1.05), Kind: "promote", Replica: "a", Token: 10, Accepted: true},
			{At: at(2), Kind: "write", Replica: "a", Via: "lb", Token: 10, Value: 1, Accepted: true, Highest: 10},
			{At: at(3), Kind: "write", Replica: "a", Via: "app", Token: 10, Value: 2, Accepted: true, Highest: 10},
			{At: at(6.55), Kind: "promote", Replica: "b", Token: 12, Accepted: true, Highest: 10},
			{At: at(7), Kind: "write", Replica: "b", Via: "lb", Token: 12, Value: 3, Accepted: true, Highest: 12},
			// a's app, restarted, still writing with its killed tenure's token.
			{At: at(7.5), Kind: "write", Replica: "a", Via: "app", Token: 10, Value: 4, Accepted: false, Highest: 12},
		},
		Acked: []Ack{
			{At: at(2.01), Replica: "a", Via: "lb", Token: 10, Value: 1},
			{At: at(3.01), Replica: "a", Via: "app", Token: 10, Value: 2},
			{At: at(7.01), Replica: "b", Via: "lb", Token: 12, Value: 3},
		},
		Faults: []Fault{
			{Seq: 1, Kind: "sigkill", Target: "a", Primary: true, Injected: at(5),
				Recovered: at(6.6), PrimaryLost: at(5), NextPrimary: at(6.6)},
			{Seq: 2, Kind: "cut-all", Injected: at(10), Healed: at(12), Recovered: at(12.5)},
		},
		Exits: []Exit{
			{Replica: "a", At: at(5), Code: -1, Injected: true},
			// a (restarted, a standby) stopped with SIGTERM at the end of the run.
			{Replica: "a", At: at(19.9), Code: 0, Injected: true, Graceful: true},
		},
		End: EndState{
			Primaries:    []string{"b"},
			LiveLeases:   []int64{100, 101},
			SidecarLease: []int64{100, 101, 102},
		},
		Bound: 5 * time.Second,
	}
}

func TestCheckCleanRecordPasses(t *testing.T) {
	v := Check(cleanRecord())
	if !v.OK() {
		t.Fatalf("violations on the clean record: %v", v.Violations)
	}
	if v.FencedOverlaps != 0 || len(v.Overlaps) != 0 || len(v.Slow) != 0 || v.TwoPrimaryPairs != 0 {
		t.Fatalf("clean verdict %+v", v)
	}
}

// TestCheckEachRuleFiresOnItsViolation breaks the clean record in one way
// per case and wants exactly that one violation.
func TestCheckEachRuleFiresOnItsViolation(t *testing.T) {
	cases := []struct {
		name, rule string
		spoil      func(r *Record)
	}{
		{"overlap", RuleTenureOverlap, func(r *Record) {
			// c promotes with a newer token while b is still primary,
			// nobody frozen: fencing held, but nothing excuses it.
			r.Timeline = append(r.Timeline, ev(8, "promote", "start", "c", 13, "elected"), ev(9, "demote", "end", "c", 13, "lost"))
		}},
		{"token goes down", RuleTokenOrder, func(r *Record) { r.Timeline[2].Token = 14 }},
		{"no token", RuleTokenOrder, func(r *Record) { r.Timeline[2].Token = 0 }},
		{"stale accept", RuleFencing, func(r *Record) {
			r.Writes = append(r.Writes, StoreWrite{At: at(7.6), Token: 10, Value: 7, Accepted: true, Highest: 12})
		}},
		{"ack never written", RuleLostWrite, func(r *Record) { r.Acked = append(r.Acked, Ack{At: at(8), Replica: "b", Token: 12, Value: 99}) }},
		{"ack fenced", RuleLostWrite, func(r *Record) { r.Acked = append(r.Acked, Ack{At: at(8), Replica: "a", Token: 10, Value: 4}) }},
		{"two 200s", RuleTwoPrimaries, func(r *Record) {
			r.Samples = append(r.Samples, Sample{Replica: "c", Sent: at(7.001), Received: at(7.003), Code: 200})
		}},
		{"slow", RuleSlowRecovery, func(r *Record) { r.Faults[1].Recovered = at(18) }},
		{"never", RuleNoRecovery, func(r *Record) { r.Faults[1].Recovered = time.Time{} }},
		{"lease", RuleLeftoverLease, func(r *Record) { r.End.LiveLeases = append(r.End.LiveLeases, 999) }},
		{"hook", RuleLeftoverHook, func(r *Record) { r.End.LeftoverHook = []string{"/bin/sh demote.sh"} }},
		{"no primary", RuleEndPrimaries, func(r *Record) { r.End.Primaries = nil }},
		{"two primaries", RuleEndPrimaries, func(r *Record) { r.End.Primaries = []string{"b", "c"} }},
		{"exit", RuleUnexpectedExit, func(r *Record) { r.Exits = append(r.Exits, Exit{Replica: "c", At: at(15), Code: 2}) }},
		{"stale promote", RuleFencing, func(r *Record) {
			r.Writes = append(r.Writes, StoreWrite{At: at(7.6), Kind: "promote", Replica: "a", Token: 11, Accepted: true, Highest: 12})
		}},
		{"timeline unreadable", RuleTimeline, func(r *Record) { r.TimelineErr = "open timeline.log: permission denied" }},
		{"timeline lines skipped", RuleTimeline, func(r *Record) { r.TimelineSkipped = 3 }},
		{"replica down", RuleReplicaDown, func(r *Record) { r.End.Down = []string{"c"} }},
		{"sigterm exits 1", RuleUncleanExit, func(r *Record) { r.Exits[1].Code = 1 }},
		{"sigterm ends in a kill", RuleUncleanExit, func(r *Record) { r.Exits[1].Code = -1 }},
		{"slow failover", RuleSlowFailover, func(r *Record) { r.Faults = append(r.Faults, cutPrimary(13.2, 18.5)) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := cleanRecord()
			c.spoil(r)
			v := Check(r)
			if len(v.Violations) != 1 || v.Violations[0].Rule != c.rule {
				t.Fatalf("want exactly one %s, got %v", c.rule, v.Violations)
			}
			if v.OK() || v.ByRule()[c.rule] != 1 {
				t.Fatalf("OK=%t ByRule=%v", v.OK(), v.ByRule())
			}
			if v.Violations[0].Detail == "" || v.Violations[0].At.IsZero() {
				t.Fatalf("violation without detail or time: %+v", v.Violations[0])
			}
		})
	}
}

// overlapRecord: b (token 12) is primary when c promotes with token 13 at
// 8s and demotes at 9s; frozen says whether b was frozen from 7.5s (its
// lease ran out) to 9.5s (thaw plus grace), and staleAfterNewer whether
// the store accepted b's token 12 after c's 13 (else refused it).
func overlapRecord(frozen, staleAfterNewer bool) *Record {
	r := cleanRecord()
	r.Timeline = append(r.Timeline, ev(8, "promote", "start", "c", 13, "elected"), ev(9, "demote", "end", "c", 13, "lost"))
	r.Writes = append(r.Writes,
		StoreWrite{At: at(8.1), Kind: "write", Replica: "b", Via: "app", Token: 12, Value: 5, Accepted: true, Highest: 12}, // before 13 was seen: fine
		StoreWrite{At: at(8.2), Kind: "write", Replica: "c", Via: "lb", Token: 13, Value: 6, Accepted: true, Highest: 12},
		StoreWrite{At: at(8.3), Kind: "write", Replica: "b", Via: "app", Token: 12, Value: 7, Accepted: staleAfterNewer, Highest: 13},
	)
	if frozen {
		r.Frozen = []Window{{Replica: "b", Kind: "frozen", Start: at(7.5), End: at(9.5)}}
	}
	return r
}

func TestCheckOverlapWithFrozenReplicaAndFencingIsExcused(t *testing.T) {
	v := Check(overlapRecord(true, false))
	if !v.OK() {
		t.Fatalf("violations: %v", v.Violations)
	}
	if v.FencedOverlaps != 1 || len(v.Overlaps) != 1 || !v.Overlaps[0].Excused {
		t.Fatalf("fenced overlaps %d, overlaps %+v", v.FencedOverlaps, v.Overlaps)
	}
	o := v.Overlaps[0]
	if o.A.ID != "b" || o.B.ID != "c" || !o.Start.Equal(at(8)) || !o.End.Equal(at(9)) {
		t.Fatalf("overlap %+v", o)
	}
	if o.Excuse == nil || o.Excuse.Kind != "frozen" || o.Refused != 1 {
		t.Fatalf("excuse %+v, refused %d", o.Excuse, o.Refused)
	}
}

// TestCheckOverlapWithDemoteHookFaultAndFencingIsExcused: the older
// primary's demote hook failing, hanging or flooding past its timeout
// keeps it primary; its demote is retried with a back-off after the heal,
// so the overlap may outlast the window (here 8..9s, the window ends at
// 8.6s).
func TestCheckOverlapWithDemoteHookFaultAndFencingIsExcused(t *testing.T) {
	for _, kind := range []string{"demote-fail", "demote-hang", "flood"} {
		r := overlapRecord(false, false)
		r.HookFaults = []Window{{Replica: "b", Kind: kind, Start: at(7.5), End: at(8.6)}}
		if v := Check(r); !v.OK() || v.FencedOverlaps != 1 {
			t.Fatalf("%s: violations %v, fenced overlaps %d", kind, v.Violations, v.FencedOverlaps)
		}
	}
}

// TestCheckOverlapExcusedOnlyByTheOlderPrimarysDemoteWindows: a promote
// window never excuses, and no window of the newer replica does:
// a standby promoting over a live primary is the bug itself.
func TestCheckOverlapExcusedOnlyByTheOlderPrimarysDemoteWindows(t *testing.T) {
	cases := []struct {
		name   string
		frozen []Window
		hooks  []Window
	}{
		{"promote-fail on the newer", nil, []Window{{Replica: "c", Kind: "promote-fail", Start: at(7.5), End: at(12)}}},
		{"promote-hang on the newer", nil, []Window{{Replica: "c", Kind: "promote-hang", Start: at(7.5), End: at(12)}}},
		{"demote-fail on the newer", nil, []Window{{Replica: "c", Kind: "demote-fail", Start: at(7.5), End: at(12)}}},
		{"promote-fail on the older", nil, []Window{{Replica: "b", Kind: "promote-fail", Start: at(7.5), End: at(12)}}},
		{"flood on the newer", nil, []Window{{Replica: "c", Kind: "flood", Start: at(7.5), End: at(12)}}},
		{"a hook window of no kind", nil, []Window{{Replica: "b", Start: at(7.5), End: at(12)}}},
		// The reviewer's case: a frozen standby thaws and promotes over a
		// live primary that was never frozen.
		{"the newer frozen, thawed", []Window{{Replica: "c", Kind: "frozen", Start: at(6), End: at(8.5)}}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := overlapRecord(false, false)
			r.Frozen, r.HookFaults = c.frozen, c.hooks
			v := Check(r)
			if len(v.Violations) != 1 || v.Violations[0].Rule != RuleTenureOverlap || v.FencedOverlaps != 0 {
				t.Fatalf("violations %v, fenced overlaps %d", v.Violations, v.FencedOverlaps)
			}
		})
	}
}

// TestCheckOverlapOutlastingFrozenWindowIsViolation: the reviewer's case.
// b was frozen until 9.5s (grace included) but c's promote over it lasts
// to the end (20s): thawed, b must demote within the grace. A demote hook
// fault of the same span excuses it (the demote is retried until it works).
func TestCheckOverlapOutlastingFrozenWindowIsViolation(t *testing.T) {
	r := overlapRecord(true, false)
	r.Timeline = r.Timeline[:len(r.Timeline)-1] // c never demotes
	v := Check(r)
	if len(v.Violations) != 1 || v.Violations[0].Rule != RuleTenureOverlap || !v.Overlaps[0].End.Equal(at(20)) {
		t.Fatalf("violations %v, overlaps %+v", v.Violations, v.Overlaps)
	}
	r.Frozen, r.HookFaults = nil, []Window{{Replica: "b", Kind: "demote-hang", Start: at(7.5), End: at(9.5)}}
	if v := Check(r); !v.OK() || v.FencedOverlaps != 1 {
		t.Fatalf("demote-hang: violations %v, fenced overlaps %d", v.Violations, v.FencedOverlaps)
	}
}

// TestCheckOverlapWindowMustBeginInTheTenureByTheOverlap: a freeze that
// began before b's tenure (b promoted after thawing) or after c had
// already promoted over b explains nothing.
func TestCheckOverlapWindowMustBeginInTheTenureByTheOverlap(t *testing.T) {
	for _, start := range []float64{6, 8.5} {
		r := overlapRecord(true, false)
		r.Frozen[0].Start = at(start)
		if v := Check(r); len(v.Violations) != 1 || v.Violations[0].Rule != RuleTenureOverlap {
			t.Fatalf("frozen from %gs: violations %v", start, v.Violations)
		}
	}
}

func TestCheckOverlapWithoutFrozenReplicaIsViolation(t *testing.T) {
	v := Check(overlapRecord(false, false))
	if len(v.Violations) != 1 || v.Violations[0].Rule != RuleTenureOverlap || v.FencedOverlaps != 0 {
		t.Fatalf("violations %v, fenced overlaps %d", v.Violations, v.FencedOverlaps)
	}
	if got := v.Violations[0].Replicas; !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("replicas %v", got)
	}
}

func TestCheckOverlapWithFrozenReplicaButStaleTokenAcceptedIsViolation(t *testing.T) {
	v := Check(overlapRecord(true, true))
	// The stale accept also breaks the store-wide fencing rule.
	if got := v.ByRule(); len(v.Violations) != 2 || got[RuleUnfencedOverlap] != 1 || got[RuleFencing] != 1 {
		t.Fatalf("violations %v", v.Violations)
	}
	if v.FencedOverlaps != 0 || v.Overlaps[0].Stale == nil || v.Overlaps[0].Stale.Value != 7 {
		t.Fatalf("overlaps %+v", v.Overlaps)
	}
}

// TestCheckOverlapFencingFromTheLogAlone: c's promote decision is where
// the store first saw token 13; from there b's writes must be refused, and
// the refusals are counted. The store's Highest is not read.
func TestCheckOverlapFencingFromTheLogAlone(t *testing.T) {
	r := overlapRecord(true, false)
	promoteC := StoreWrite{At: at(8.05), Kind: "promote", Replica: "c", Token: 13, Accepted: true}
	r.Writes = slices.Insert(r.Writes, len(r.Writes)-3, promoteC)
	// b's write at 8.1 now comes after c's promote: refused, it is fenced
	// and counted; accepted (the store's Highest saying 12 or not), stale.
	r.Writes[len(r.Writes)-3].Accepted = false
	r.Writes = append(r.Writes,
		StoreWrite{At: at(8.4), Kind: "write", Replica: "b", Via: "lb", Token: 12, Value: 8, Highest: 13},
		StoreWrite{At: at(8.5), Kind: "write", Replica: "a", Via: "app", Token: 10, Value: 9, Highest: 13}, // not b's
	)
	v := Check(r)
	if !v.OK() || v.Overlaps[0].Refused != 3 {
		t.Fatalf("violations %v, overlap %+v", v.Violations, v.Overlaps[0])
	}
	r.Writes[len(r.Writes)-5].Accepted = true // b's 8.1 write, with Highest 12
	v = Check(r)
	if got := v.ByRule(); got[RuleUnfencedOverlap] != 1 || got[RuleFencing] != 1 || len(v.Violations) != 2 {
		t.Fatalf("violations %v", v.Violations)
	}
	if o := v.Overlaps[0]; o.Fenced || o.Stale == nil || o.Stale.Value != 5 || o.Refused != 2 {
		t.Fatalf("overlap %+v", o)
	}
}

// TestCheckFencingIgnoresTheStoresHighest: the fence is the highest token
// accepted, by the log; a Highest the log does not back neither hides nor
// invents a stale accept, and demote decisions are not fenced.
func TestCheckFencingIgnoresTheStoresHighest(t *testing.T) {
	r := cleanRecord()
	r.Writes = append(r.Writes,
		StoreWrite{At: at(8), Kind: "write", Replica: "b", Via: "lb", Token: 12, Value: 10, Accepted: true, Highest: 99},
		StoreWrite{At: at(8.5), Kind: "demote", Replica: "a", Token: 10, Accepted: true, Highest: 12},
	)
	if v := Check(r); !v.OK() {
		t.Fatalf("violations %v", v.Violations)
	}
	r.Writes = append(r.Writes, StoreWrite{At: at(9), Kind: "write", Replica: "a", Via: "app", Token: 10, Value: 11, Accepted: true, Highest: 0})
	v := Check(r)
	if len(v.Violations) != 1 || v.Violations[0].Rule != RuleFencing || !v.Violations[0].At.Equal(at(9)) {
		t.Fatalf("violations %v", v.Violations)
	}
}

func TestCheckOverlapOutsideFrozenWindowIsViolation(t *testing.T) {
	r := overlapRecord(true, false)
	r.Frozen[0].Start, r.Frozen[0].End = at(15), at(16)
	if v := Check(r); len(v.Violations) != 1 || v.Violations[0].Rule != RuleTenureOverlap {
		t.Fatalf("violations %v", v.Violations)
	}
}

func TestJudgedTenures(t *testing.T) {
	r := cleanRecord()
	r.Timeline = append(r.Timeline,
		// c: promote, demote hook started and outlived the SIGKILL at 9s.
		ev(8, "promote", "start", "c", 13, "elected"),
		ev(8.8, "demote", "start", "c", 13, "lost"),
		ev(9.2, "demote", "end", "c", 13, "lost"),
		// c again: promote 14, its demote never ended, promote 15 later.
		ev(10, "promote", "start", "c", 14, "elected"),
		ev(10.5, "demote", "start", "c", 14, "hook-failed"),
		ev(11, "promote", "start", "c", 15, "elected"),
		ev(11.5, "demote", "end", "c", 15, "lost"),
	)
	r.Exits = append(r.Exits, Exit{Replica: "c", At: at(9), Code: -1, Injected: true})
	ts := judgedTenures(r)
	want := []struct {
		id     string
		token  int64
		end    time.Time
		reason role.Reason
	}{
		{"a", 10, at(5), "(exit)"}, // not the restarted process's startup demote at 6.05s
		{"b", 12, at(20), "(open at end)"},
		{"c", 13, at(9.2), "lost"}, // demote began before the exit: its end stands
		{"c", 14, at(11), "(next promote)"},
		{"c", 15, at(11.5), "lost"},
	}
	if len(ts) != len(want) {
		t.Fatalf("tenures %+v", ts)
	}
	for i, w := range want {
		if g := ts[i]; g.ID != w.id || g.Token != w.token || !g.End.Equal(w.end) || g.EndReason != w.reason {
			t.Errorf("tenure %d = %+v, want %+v", i, g, w)
		}
	}
}

// TestCheckTwoPrimariesNotExcusedByFrozenReplica: a thawed replica
// answers 503 at once, so a frozen window excuses no 200.
func TestCheckTwoPrimariesNotExcusedByFrozenReplica(t *testing.T) {
	r := cleanRecord()
	r.Samples = append(r.Samples, Sample{Replica: "c", Sent: at(7.001), Received: at(7.003), Code: 200})
	r.Frozen = []Window{{Replica: "c", Kind: "frozen", Start: at(6.9), End: at(7.5)}}
	if v := Check(r); len(v.Violations) != 1 || v.Violations[0].Rule != RuleTwoPrimaries || v.TwoPrimaryPairs != 1 {
		t.Fatalf("violations %v, pairs %d", v.Violations, v.TwoPrimaryPairs)
	}
}

func TestCheckTwoPrimariesDisjointSamplesAreFine(t *testing.T) {
	r := cleanRecord()
	// c answers 200 right after b's probe came back: not at the same time.
	r.Samples = append(r.Samples, Sample{Replica: "c", Sent: at(7.0021), Received: at(7.004), Code: 200})
	if v := Check(r); v.ByRule()[RuleTwoPrimaries] != 0 {
		t.Fatalf("violations %v", v.Violations)
	}
}

func TestCheckTwoPrimariesEpisodesAndCap(t *testing.T) {
	r := cleanRecord()
	// One episode: b and c both 200 for 5 consecutive 20 ms rounds.
	for i := range 5 {
		s := 7.02 + 0.02*float64(i)
		r.Samples = append(r.Samples, sample("b", s, 200), sample("c", s, 200))
	}
	v := Check(r)
	if len(v.Violations) != 1 || v.Violations[0].Rule != RuleTwoPrimaries || v.TwoPrimaryPairs != 5 {
		t.Fatalf("violations %v, pairs %d", v.Violations, v.TwoPrimaryPairs)
	}
	// maxDetailed+3 episodes, 2 s apart: maxDetailed detailed plus one summary.
	r = cleanRecord()
	for i := range maxDetailed + 3 {
		s := 30 + 2*float64(i)
		r.Samples = append(r.Samples, sample("b", s, 200), sample("c", s, 200))
	}
	v = Check(r)
	if n := v.ByRule()[RuleTwoPrimaries]; n != maxDetailed+1 || v.TwoPrimaryPairs != maxDetailed+3 {
		t.Fatalf("%d two-primaries violations, %d pairs", n, v.TwoPrimaryPairs)
	}
}

func TestCheckRecoveryStartsAtLatestOverlappingHeal(t *testing.T) {
	r := cleanRecord()
	// #3 overlaps #2 and heals at 16s; #2's recovery is counted from there.
	r.Faults[1].Overlaps = []int{3}
	r.Faults[1].Recovered = at(17)
	r.Faults = append(r.Faults, Fault{Seq: 3, Kind: "member-isolate", Target: "member-1", Injected: at(11),
		Healed: at(16), Overlaps: []int{2}, Recovered: at(17)})
	v := Check(r)
	if !v.OK() {
		t.Fatalf("violations %v", v.Violations)
	}
	if rec := v.Recoveries[1]; !rec.From.Equal(at(16)) || rec.Took != time.Second || rec.Slow {
		t.Fatalf("recovery %+v", rec)
	}
	if rec := v.Recoveries[0]; !rec.From.Equal(at(5)) || rec.Took != 1600*time.Millisecond {
		t.Fatalf("instant fault's recovery %+v", rec)
	}
}

func TestCheckSlowRecoveryListsItsFault(t *testing.T) {
	r := cleanRecord()
	r.Faults[1].Recovered = at(18)
	v := Check(r)
	if len(v.Slow) != 1 || v.Slow[0].Fault.Seq != 2 || v.Slow[0].Took != 6*time.Second || v.Slow[0].Never {
		t.Fatalf("slow %+v", v.Slow)
	}
	r.Bound = 0 // unknown: not judged
	if v := Check(r); !v.OK() || len(v.Slow) != 0 {
		t.Fatalf("zero bound: violations %v, slow %+v", v.Violations, v.Slow)
	}
}

func TestFiguresPerKind(t *testing.T) {
	r := cleanRecord()
	r.Faults = append(r.Faults,
		Fault{Seq: 3, Kind: "sigkill", Target: "b", Primary: true, Injected: at(13), Overlaps: []int{4},
			Recovered: at(16), PrimaryLost: at(13), NextPrimary: at(16)},
		Fault{Seq: 4, Kind: "sigstop", Target: "c", Injected: at(13.5), Healed: at(14), Overlaps: []int{3},
			Recovered: at(16)},
	)
	v := Check(r)
	fig := map[string]KindFigures{}
	var order []string
	for _, k := range v.Figures {
		fig[k.Kind] = k
		order = append(order, k.Kind)
	}
	if want := []string{"cut-all", "sigkill", "sigstop", GroupAll, GroupOverlapping}; !slices.Equal(order, want) {
		t.Fatalf("figure groups %v, want %v", order, want)
	}
	k := fig["sigkill"]
	// Recoveries: #1 1.6s; #3 from the later of its own instant kill (13s)
	// and #4's heal (14s) to 16s: 2s.
	if k.Count != 2 || k.PrimaryTargeted != 2 || k.Overlapping != 1 || k.Recovery.N != 2 ||
		k.Recovery.P50 != 1600*time.Millisecond || k.Recovery.P99 != 2*time.Second || k.Recovery.Max != 2*time.Second {
		t.Fatalf("sigkill figures %+v", k)
	}
	if k.Failover.N != 2 || k.Failover.P50 != 1600*time.Millisecond || k.Failover.Max != 3*time.Second {
		t.Fatalf("sigkill failover %+v", k.Failover)
	}
	if g := fig[GroupOverlapping]; g.Count != 2 || g.Overlapping != 2 {
		t.Fatalf("overlapping group %+v", g)
	}
	if g := fig[GroupAll]; g.Count != 4 || g.PrimaryTargeted != 2 || g.Failover.N != 2 {
		t.Fatalf("all group %+v", g)
	}
	if g := fig["cut-all"]; g.Failover.N != 0 || g.NoFailover != 0 || g.Recovery.P50 != 500*time.Millisecond {
		t.Fatalf("cut-all figures %+v", g)
	}
}

func TestPercentileNearestRank(t *testing.T) {
	ms := func(vs ...int) []time.Duration {
		var ds []time.Duration
		for _, v := range vs {
			ds = append(ds, time.Duration(v)*time.Millisecond)
		}
		return ds
	}
	var hundred []int
	for i := 100; i >= 1; i-- { // unsorted on purpose
		hundred = append(hundred, i)
	}
	cases := []struct {
		name string
		ds   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value p50", ms(7), 50, 7 * time.Millisecond},
		{"one value p99", ms(7), 99, 7 * time.Millisecond},
		{"ten p50", ms(10, 9, 8, 7, 6, 5, 4, 3, 2, 1), 50, 5 * time.Millisecond},
		{"ten p99 is the max", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{"two p50 is the lower", ms(30, 10), 50, 10 * time.Millisecond},
		{"hundred p99", ms(hundred...), 99, 99 * time.Millisecond},
		{"hundred p50", ms(hundred...), 50, 50 * time.Millisecond},
		{"p100 is the max", ms(hundred...), 100, 100 * time.Millisecond},
		{"p0 is the min", ms(3, 1, 2), 0, 1 * time.Millisecond},
	}
	for _, c := range cases {
		if got := Percentile(c.ds, c.p); got != c.want {
			t.Errorf("%s: Percentile = %s, want %s", c.name, got, c.want)
		}
	}
	in := ms(3, 1, 2)
	Percentile(in, 50)
	if !slices.Equal(in, ms(3, 1, 2)) {
		t.Errorf("Percentile reordered its input: %v", in)
	}
}

// cutPrimary is fault #3: b, the primary, cut off from etcd from 13s to
// 19s; it stops serving at lost and a primary serves again at next (zero:
// never), and one primary serves 0.2s after the heal.
func cutPrimary(lost, next float64) Fault {
	f := Fault{Seq: 3, Kind: "cut-all", Target: "b", Primary: true, Injected: at(13), Healed: at(19),
		Recovered: at(19.2), PrimaryLost: at(lost)}
	if next > 0 {
		f.NextPrimary = at(next)
	}
	return f
}

// TestCheckFailoverJudgedDuringTheHold: a failover slower than the bound
// breaks the README's timing promise even when one primary is back soon
// after the heal (recovery is fine here: 0.2s).
func TestCheckFailoverJudgedDuringTheHold(t *testing.T) {
	member := Fault{Seq: 4, Kind: "member-kill", Target: "member-1", Injected: at(13.5), Healed: at(15), Overlaps: []int{3}, Recovered: at(19.2)}
	cases := []struct {
		name  string
		spoil func(r *Record)
		want  map[string]int
	}{
		{"within the bound", func(r *Record) { r.Faults = append(r.Faults, cutPrimary(13.2, 18.1)) }, map[string]int{}},
		{"over the bound", func(r *Record) { r.Faults = append(r.Faults, cutPrimary(13.2, 18.5)) }, map[string]int{RuleSlowFailover: 1}},
		{"never, and never recovered", func(r *Record) {
			f := cutPrimary(13.2, 0)
			f.Recovered = time.Time{}
			r.Faults = append(r.Faults, f)
		}, map[string]int{RuleNoFailover: 1, RuleNoRecovery: 1}},
		{"overlapping a member kill: not judged", func(r *Record) {
			f := cutPrimary(13.2, 18.5)
			f.Overlaps = []int{4}
			r.Faults = append(r.Faults, f, member)
		}, map[string]int{}},
		{"overlapping a member kill that failed to inject: judged", func(r *Record) {
			f, m := cutPrimary(13.2, 18.5), member
			f.Overlaps, m.InjectErr = []int{4}, "no such member"
			r.Faults = append(r.Faults, f, m)
		}, map[string]int{RuleSlowFailover: 1}},
		{"a kind the table does not cover: not judged", func(r *Record) {
			f := cutPrimary(13.2, 18.5)
			f.Kind = "cut-one"
			r.Faults = append(r.Faults, f)
		}, map[string]int{}},
		{"a demote hook fault on the primary holds the failover: not judged", func(r *Record) {
			f := cutPrimary(13.2, 18.5)
			f.Kind = "hook-hang"
			r.Faults = append(r.Faults, f)
		}, map[string]int{}},
		{"overlapping a demote hook fault on the primary: not judged", func(r *Record) {
			f, h := cutPrimary(13.2, 18.5), cutPrimary(13.2, 18.5)
			f.Overlaps, h.Seq, h.Kind, h.Overlaps = []int{4}, 4, "hook-fail", []int{3}
			r.Faults = append(r.Faults, f, h)
		}, map[string]int{}},
		{"a hook fault on a standby: judged", func(r *Record) {
			f := cutPrimary(13.2, 18.5)
			f.Kind, f.Primary = "hook-hang", false
			r.Faults = append(r.Faults, f)
		}, map[string]int{RuleSlowFailover: 1}},
		{"failed to inject: not judged at all", func(r *Record) {
			f := cutPrimary(13.2, 0)
			f.Recovered, f.InjectErr = time.Time{}, "operator: a request is pending"
			r.Faults = append(r.Faults, f)
		}, map[string]int{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := cleanRecord()
			c.spoil(r)
			v := Check(r)
			if got := v.ByRule(); !maps.Equal(got, c.want) {
				t.Fatalf("violations by rule %v, want %v: %v", got, c.want, v.Violations)
			}
		})
	}
}

// TestCheckFailedInjectionIsNeitherJudgedNorCounted: a fault that had no
// effect has no recovery, no figures, and is counted apart.
func TestCheckFailedInjectionIsNeitherJudgedNorCounted(t *testing.T) {
	r := cleanRecord()
	r.Faults = append(r.Faults, Fault{Seq: 3, Kind: "switchover", Target: "c", Injected: at(14), InjectErr: "a request is pending"})
	v := Check(r)
	if !v.OK() || len(v.Recoveries) != 2 {
		t.Fatalf("violations %v, recoveries %+v", v.Violations, v.Recoveries)
	}
	for _, k := range v.Figures {
		switch k.Kind {
		case "switchover":
			if k.Count != 0 || k.FailedToInject != 1 || k.Recovery.N != 0 {
				t.Fatalf("switchover figures %+v", k)
			}
		case GroupAll:
			if k.Count != 2 || k.FailedToInject != 1 {
				t.Fatalf("all figures %+v", k)
			}
		}
	}
}

// TestCheckOverlapDuringAHostStallIsExcusedLikeAFreeze: a stall of the
// whole machine (every process stopped, the campaign's clock included)
// excuses an overlap as a freeze of the older primary would, within its
// grace, and only if fenced; a stall that began after the overlap or ended
// long before it explains nothing.
func TestCheckOverlapDuringAHostStallIsExcusedLikeAFreeze(t *testing.T) {
	stall := func(start, end float64) []Window {
		return []Window{{Replica: "*", Kind: "stall", Start: at(start), End: at(end)}}
	}
	r := overlapRecord(false, false)
	r.Frozen = stall(7.5, 9.5)
	if v := Check(r); !v.OK() || v.FencedOverlaps != 1 {
		t.Fatalf("stall 7.5..9.5: violations %v, fenced overlaps %d", v.Violations, v.FencedOverlaps)
	}
	for _, w := range [][2]float64{{8.5, 10}, {7.5, 8.5}} {
		r := overlapRecord(false, false)
		r.Frozen = stall(w[0], w[1])
		if v := Check(r); len(v.Violations) != 1 || v.Violations[0].Rule != RuleTenureOverlap {
			t.Fatalf("stall %g..%g: violations %v", w[0], w[1], v.Violations)
		}
	}
	r = overlapRecord(false, true)
	r.Frozen = stall(7.5, 9.5)
	if v := Check(r); v.ByRule()[RuleUnfencedOverlap] != 1 {
		t.Fatalf("stall with a stale write accepted: violations %v", v.Violations)
	}
	var sb strings.Builder
	if err := WriteReport(&sb, r, Check(r), "go run ./chaos -seed 1"); err != nil || !strings.Contains(sb.String(), "host stalls") {
		t.Fatalf("report lacks the host stalls line (err %v)", err)
	}
}

// TestCheckTimingNotJudgedAcrossAHostStall: the bounds assume the machine
// ran; a slow recovery or failover across a host stall is not a violation,
// while one beside it still is.
func TestCheckTimingNotJudgedAcrossAHostStall(t *testing.T) {
	slow := cutPrimary(13.2, 18.5) // failover 5.3s, over a 5s bound
	slow.Recovered = at(19 + 8)    // recovery 8s after the heal at 19s
	r := cleanRecord()
	r.Bound = 5 * time.Second
	r.Faults = append(r.Faults, slow)
	base := Check(r).ByRule()
	if base[RuleSlowFailover] != 1 || base[RuleSlowRecovery] != 1 {
		t.Fatalf("without a stall: %v", base)
	}
	r.Frozen = append(r.Frozen, Window{Replica: "*", Kind: "stall", Start: at(14), End: at(15)}, Window{Replica: "*", Kind: "stall", Start: at(20), End: at(21)})
	if got := Check(r).ByRule(); got[RuleSlowFailover] != 0 || got[RuleSlowRecovery] != 0 {
		t.Fatalf("across stalls: %v", got)
	}
	r.Frozen = []Window{{Replica: "*", Kind: "stall", Start: at(40), End: at(41)}}
	if got := Check(r).ByRule(); got[RuleSlowFailover] != 1 || got[RuleSlowRecovery] != 1 {
		t.Fatalf("a stall elsewhere excused them: %v", got)
	}
}
