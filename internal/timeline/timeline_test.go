package timeline

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/leaderd/leaderd/hooks"
	"github.com/leaderd/leaderd/role"
)

// at is a stamp ms milliseconds after an arbitrary start.
func at(ms int) time.Time { return time.Unix(1700000000, 0).Add(time.Duration(ms) * time.Millisecond) }

func ev(ms int, hook hooks.Event, phase Phase, id string, token int64, reason role.Reason) Event {
	return Event{At: at(ms), Hook: hook, Phase: phase, ID: id, Token: token, Reason: reason, OK: phase == PhaseEnd}
}

func promote(ms int, id string, token int64) []Event {
	return []Event{ev(ms, hooks.Promote, PhaseStart, id, token, role.ReasonElected), ev(ms+10, hooks.Promote, PhaseEnd, id, token, role.ReasonElected)}
}

func demote(ms int, id string, token int64, reason role.Reason) []Event {
	return []Event{ev(ms, hooks.Demote, PhaseStart, id, token, reason), ev(ms+10, hooks.Demote, PhaseEnd, id, token, reason)}
}

func concat(parts ...[]Event) []Event { return slices.Concat(parts...) }

func TestParse(t *testing.T) {
	raw := "" +
		"1000 demote-start a - startup\n" +
		"\n" +
		"2000 demote-end a - startup\n" +
		"3000 promote-start a 7 elected\n" +
		"4000 follow-end b 7 elected\n" +
		"5000 promote-end b" // a line still being written
	evs, err := Parse(strings.NewReader(raw), ParseOptions{SkipPartial: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []Event{
		{At: time.Unix(0, 1000), Hook: hooks.Demote, Phase: PhaseStart, ID: "a", Reason: role.ReasonStartup},
		{At: time.Unix(0, 2000), Hook: hooks.Demote, Phase: PhaseEnd, ID: "a", Reason: role.ReasonStartup, OK: true},
		{At: time.Unix(0, 3000), Hook: hooks.Promote, Phase: PhaseStart, ID: "a", Token: 7, Reason: role.ReasonElected},
		{At: time.Unix(0, 4000), Hook: "follow", Phase: PhaseEnd, ID: "b", Token: 7, Reason: role.ReasonElected, OK: true},
	}
	if !slices.EqualFunc(evs, want, func(a, b Event) bool { return a.At.Equal(b.At) && a.String() == b.String() && a.OK == b.OK }) {
		t.Fatalf("Parse =\n%swant\n%s", Format(evs), Format(want))
	}
	if _, err := Parse(strings.NewReader(raw), ParseOptions{}); err == nil || !strings.Contains(err.Error(), "line 6") {
		t.Fatalf("strict Parse of a partial line: %v, want an error naming line 6", err)
	}
}

func TestParseGarbage(t *testing.T) {
	for _, line := range []string{
		"abc promote-start a 7 elected",          // stamp
		"1000 promotestart a 7 elected",          // event
		"1000 promote-start a seven x",           // token
		"1700000000%N promote-start a 7 elected", // a busybox stamp, without CoarseStamps
	} {
		for _, o := range []ParseOptions{{}, {SkipPartial: true}} {
			if evs, err := Parse(strings.NewReader(line+"\n"), o); err == nil {
				t.Errorf("Parse(%q, %+v) = %v, want an error", line, o, evs)
			}
		}
	}
}

func TestParseCoarseStamps(t *testing.T) {
	raw := "1700000000%N promote-start a 7 elected\n" +
		"1700000001 promote-end a 7 elected\n" +
		"1700000002000000000 demote-end a 7 shutdown\n"
	evs, err := Parse(strings.NewReader(raw), ParseOptions{CoarseStamps: true})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []time.Time{time.Unix(1700000000, 0), time.Unix(1700000001, 0), time.Unix(1700000002, 0)} {
		if !evs[i].At.Equal(want) {
			t.Errorf("event %d at %s, want %s", i, evs[i].At, want)
		}
	}
}

func TestReadFileMissingIsEmpty(t *testing.T) {
	evs, err := ReadFile(t.TempDir()+"/none", ParseOptions{})
	if err != nil || len(evs) != 0 {
		t.Fatalf("ReadFile of a missing file = %v, %v", evs, err)
	}
}

func TestFirst(t *testing.T) {
	evs := concat(demote(0, "a", 0, role.ReasonStartup), promote(100, "a", 7), promote(200, "b", 9))
	for _, tc := range []struct {
		from int
		want Event
		i    int
	}{
		{0, Event{Hook: hooks.Promote}, 2},
		{3, Event{Hook: hooks.Promote}, 3},
		{0, Event{ID: "b", Phase: PhaseEnd}, 5},
		{0, Event{Token: 9}, 4},
		{0, Event{Reason: role.ReasonShutdown}, -1},
	} {
		if got := First(tc.from, tc.want)(evs); got != tc.i {
			t.Errorf("First(%d, %+v) = %d, want %d", tc.from, tc.want, got, tc.i)
		}
	}
}

func TestTenures(t *testing.T) {
	type span struct {
		id         string
		token      int64
		start, end int // ms; end -1: open
		endSeq     int
		endReason  role.Reason
		promoted   int // ms; -1: never
	}
	failedDemote := ev(300, hooks.Demote, PhaseEnd, "a", 7, role.ReasonLeaseLost)
	failedDemote.OK = false
	tests := []struct {
		name string
		p    Pairing
		evs  []Event
		want []span
	}{
		{"back-to-back", Pairing{},
			concat(promote(0, "a", 7), demote(100, "a", 7, role.ReasonShutdown), promote(110, "b", 9)),
			[]span{{"a", 7, 0, 110, 3, role.ReasonShutdown, 10}, {"b", 9, 110, -1, -1, "", 120}}},
		{"open tenure", Pairing{},
			promote(0, "a", 7)[:1],
			[]span{{"a", 7, 0, -1, -1, "", -1}}},
		{"start-up demote closes by default", Pairing{},
			concat(promote(0, "a", 7), demote(500, "a", 0, role.ReasonStartup)),
			[]span{{"a", 7, 0, 510, 3, role.ReasonStartup, 10}}},
		{"start-up demote does not close with SameToken", Pairing{SameToken: true},
			concat(promote(0, "a", 7), demote(500, "a", 0, role.ReasonStartup)),
			[]span{{"a", 7, 0, -1, -1, "", 10}}},
		{"failed demote closes by default", Pairing{},
			concat(promote(0, "a", 7), []Event{failedDemote}, demote(400, "a", 7, role.ReasonLeaseLost)),
			[]span{{"a", 7, 0, 300, 2, role.ReasonLeaseLost, 10}}},
		{"failed demote does not close with OnlyOK", Pairing{OnlyOK: true},
			concat(promote(0, "a", 7), []Event{failedDemote}, demote(400, "a", 7, role.ReasonLeaseLost)),
			[]span{{"a", 7, 0, 410, 4, role.ReasonLeaseLost, 10}}},
		{"only failed demotes leave it open with OnlyOK", Pairing{OnlyOK: true},
			concat(promote(0, "a", 7), []Event{failedDemote}),
			[]span{{"a", 7, 0, -1, -1, "", 10}}},
		{"only failed demotes end it with FailedIfNoneOK", Pairing{OnlyOK: true, FailedIfNoneOK: true},
			concat(promote(0, "a", 7), []Event{failedDemote}),
			[]span{{"a", 7, 0, 300, 2, role.ReasonLeaseLost, 10}}},
		{"a successful demote wins over FailedIfNoneOK", Pairing{OnlyOK: true, FailedIfNoneOK: true},
			concat(promote(0, "a", 7), []Event{failedDemote}, demote(400, "a", 7, role.ReasonLeaseLost)),
			[]span{{"a", 7, 0, 410, 4, role.ReasonLeaseLost, 10}}},
		{"promote again leaves the first open", Pairing{},
			concat(promote(0, "a", 7), promote(200, "a", 9)),
			[]span{{"a", 7, 0, -1, -1, "", 10}, {"a", 9, 200, -1, -1, "", 210}}},
		{"promote again closes with NextPromoteCloses", Pairing{NextPromoteCloses: true},
			concat(promote(0, "a", 7), promote(200, "a", 9)),
			[]span{{"a", 7, 0, 200, 2, "", 10}, {"a", 9, 200, -1, -1, "", 210}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.p.Tenures(tc.evs)
			if len(got) != len(tc.want) {
				t.Fatalf("tenures %+v, want %+v", got, tc.want)
			}
			for i, w := range tc.want {
				g := got[i]
				end, promoted := time.Time{}, time.Time{}
				if w.end >= 0 {
					end = at(w.end)
				}
				if w.promoted >= 0 {
					promoted = at(w.promoted)
				}
				if g.ID != w.id || g.Token != w.token || !g.Start.Equal(at(w.start)) || !g.End.Equal(end) ||
					g.EndSeq != w.endSeq || g.EndReason != w.endReason || !g.Promoted.Equal(promoted) || g.Open() != (w.end < 0) {
					t.Errorf("tenure %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func TestOverlaps(t *testing.T) {
	ten := func(id string, token int64, start, end int) Tenure {
		t := Tenure{ID: id, Token: token, Start: at(start), StartSeq: start, EndSeq: -1}
		if end >= 0 {
			t.End, t.EndSeq = at(end), end
		}
		return t
	}
	tests := []struct {
		name  string
		ts    []Tenure
		r     Rules
		pairs [][2]string // A, B ids of each overlap
	}{
		{"back-to-back", []Tenure{ten("a", 7, 0, 100), ten("b", 9, 100, 200), ten("c", 11, 200, -1)}, Rules{}, nil},
		{"overlap by 1 ms", []Tenure{ten("a", 7, 0, 101), ten("b", 9, 100, 200)}, Rules{}, [][2]string{{"a", "b"}}},
		{"in either order", []Tenure{ten("b", 9, 100, 200), ten("a", 7, 0, 101)}, Rules{}, [][2]string{{"a", "b"}}},
		{"open tenure overlaps every later one", []Tenure{ten("a", 7, 0, -1), ten("b", 9, 5000, 6000), ten("c", 11, 7000, -1)}, Rules{},
			[][2]string{{"a", "b"}, {"a", "c"}}},
		{"open tenure excused", []Tenure{ten("a", 7, 0, -1), ten("b", 9, 5000, 6000)}, Rules{Excused: Tenure.Open}, nil},
		{"excused only as the older", []Tenure{ten("a", 7, 0, 200), ten("b", 9, 100, -1)}, Rules{Excused: Tenure.Open}, [][2]string{{"a", "b"}}},
		{"one replica's own tenures", []Tenure{ten("a", 7, 0, -1), ten("a", 9, 100, 200)}, Rules{}, [][2]string{{"a", "a"}}},
		{"other replicas only", []Tenure{ten("a", 7, 0, -1), ten("a", 9, 100, 200)}, Rules{OtherReplicasOnly: true}, nil},
		{"back-to-back with MinGap 1ns", []Tenure{ten("a", 7, 0, 100), ten("b", 9, 100, 200)}, Rules{MinGap: time.Nanosecond}, [][2]string{{"a", "b"}}},
		{"1 ms apart with MinGap 1ns", []Tenure{ten("a", 7, 0, 100), ten("b", 9, 101, 200)}, Rules{MinGap: time.Nanosecond}, nil},
		{"1 ms overlap forgiven by MinGap -2ms", []Tenure{ten("a", 7, 0, 101), ten("b", 9, 100, 200)}, Rules{MinGap: -2 * time.Millisecond}, nil},
		{"by position", []Tenure{ten("a", 7, 1, 4), ten("b", 9, 3, -1)}, Rules{ByPosition: true}, [][2]string{{"a", "b"}}},
		{"by position, back-to-back", []Tenure{ten("a", 7, 1, 4), ten("b", 9, 5, -1)}, Rules{ByPosition: true}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Overlaps(tc.ts, tc.r)
			var pairs [][2]string
			for _, o := range got {
				pairs = append(pairs, [2]string{o.A.ID, o.B.ID})
				if o.String() == "" || !o.Start.Equal(o.B.Start) {
					t.Errorf("overlap %+v", o)
				}
			}
			if !slices.Equal(pairs, tc.pairs) {
				t.Fatalf("overlaps %v, want %v", got, tc.pairs)
			}
			if err := Check(tc.ts, tc.r); (err == nil) != (len(tc.pairs) == 0) {
				t.Fatalf("Check = %v with overlaps %v", err, tc.pairs)
			}
		})
	}
}

func TestOverlapMessage(t *testing.T) {
	got := Overlaps([]Tenure{{ID: "a", Token: 7, Start: at(0), End: at(101)}, {ID: "b", Token: 9, Start: at(100), End: at(200)}}, Rules{})
	if len(got) != 1 {
		t.Fatalf("overlaps %v", got)
	}
	if o := got[0]; !o.End.Equal(at(101)) || !strings.Contains(o.String(), "overlap for 1ms: a token 7") {
		t.Fatalf("overlap %+v: %s", o, o)
	}
}

func TestTokenInversions(t *testing.T) {
	ts := []Tenure{{ID: "a", Token: 7}, {ID: "b", Token: 9}, {ID: "c", Token: 9}, {ID: "a", Token: 3}, {ID: "b", Token: 12}}
	got := TokenInversions(ts)
	if len(got) != 2 || got[0].Next.ID != "c" || got[1].Next.Token != 3 {
		t.Fatalf("inversions %v", got)
	}
	if err := Check(ts, Rules{}); err == nil || !strings.Contains(err.Error(), "fencing token did not increase: b token 9, then c token 9") {
		t.Fatalf("Check = %v", err)
	}
}
