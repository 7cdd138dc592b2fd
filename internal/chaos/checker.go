package chaos

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/leaderd/leaderd/internal/replicas"
)

// Rule names, stable: reports, tests and scripts match on them.
const (
	// RuleTenureOverlap: two tenures overlapped and neither replica was
	// frozen or had its hooks faulted during the overlap.
	RuleTenureOverlap = "tenure-overlap"
	// RuleUnfencedOverlap: an overlap involving a frozen or hook-faulted
	// replica, during which the store accepted the stale token after it had
	// seen the newer one.
	RuleUnfencedOverlap = "unfenced-overlap"
	// RuleTokenOrder: promote-start tokens, in time order, did not strictly
	// increase (or a promote had no token).
	RuleTokenOrder = "token-order"
	// RuleFencing: the store accepted a token below one it had accepted (or
	// seen) before.
	RuleFencing = "fencing"
	// RuleLostWrite: the writer saw an ack the store has no accepted write for.
	RuleLostWrite = "lost-write"
	// RuleTwoPrimaries: /primary answered 200 on two replicas at once.
	RuleTwoPrimaries = "two-primaries"
	// RuleSlowRecovery: exactly one primary came back, but later than Bound.
	RuleSlowRecovery = "slow-recovery"
	// RuleNoRecovery: exactly one primary did not come back within the wait.
	RuleNoRecovery = "no-recovery"
	// RuleLeftoverLease: etcd holds a lease no live sidecar reports.
	RuleLeftoverLease = "leftover-lease"
	// RuleLeftoverHook: a hook process was still running at the end.
	RuleLeftoverHook = "leftover-hook"
	// RuleEndPrimaries: not exactly one replica answered /primary 200 at the end.
	RuleEndPrimaries = "end-primaries"
	// RuleUnexpectedExit: a leaderd process exited without an injected fault.
	RuleUnexpectedExit = "unexpected-exit"
)

// maxDetailed caps the detailed violations of the rules that can fire in
// bulk (two-primaries episodes, fencing): past it, one summary violation
// carries the count, so a broken run still gives a readable report.
const maxDetailed = 10

// episodeGap joins two-primaries sample pairs of the same replica pair into
// one episode when the next pair starts within this of the last one's end:
// 20 ms sampling makes one real overlap show up as a run of pairs.
const episodeGap = time.Second

// Violation is one broken rule.
type Violation struct {
	Rule     string
	At       time.Time
	Replicas []string
	Detail   string
}

func (v Violation) String() string {
	return fmt.Sprintf("%s %s [%s] %s", v.At.Format("15:04:05.000"), v.Rule, strings.Join(v.Replicas, ","), v.Detail)
}

// Overlap is two tenures whose intervals intersect.
type Overlap struct {
	A, B       replicas.Tenure // A started first
	Start, End time.Time       // the intersection
	// Involved says a replica of the two was frozen or had its hooks faulted
	// during the intersection; Fenced that the store never accepted the
	// older token after it had seen the newer one. Excused = both.
	Involved, Fenced, Excused bool
	// Stale is the first write accepted with the older token after the
	// newer was seen (when not Fenced and a write is to blame).
	Stale *StoreWrite
}

// Recovery is how long exactly-one-primary took to come back after a fault.
type Recovery struct {
	Fault Fault
	// From is the latest heal (Healed, or Injected for an instant fault) of
	// the fault and of every fault overlapping it: Recovered is measured
	// after all of them healed, so that is where the clock starts.
	From  time.Time
	Took  time.Duration // Recovered - From, floored at 0; 0 when Never
	Never bool          // Recovered is zero
	Slow  bool          // Took > Bound, or Never
}

// Percentiles of a set of durations; P99 by the nearest-rank method (with
// few samples it is simply one of the largest, not an interpolation).
type Percentiles struct {
	N             int
	P50, P99, Max time.Duration
}

// KindFigures are the recovery and failover figures of one fault kind.
type KindFigures struct {
	Kind            string // a Fault.Kind, or GroupAll / GroupOverlapping
	Count           int
	Overlapping     int // faults with Overlaps non-empty
	PrimaryTargeted int // Fault.Primary
	Recovery        Percentiles
	Slow, Never     int // Never is part of Slow
	// Failover is NextPrimary - PrimaryLost over the faults where the
	// primary was affected and another one served again; NoFailover counts
	// those where the primary was lost and none served again.
	Failover   Percentiles
	NoFailover int
}

// Pseudo-kinds in Verdict.Figures: every fault, and the faults that
// overlapped others (also counted under their own kind).
const (
	GroupAll         = "(all)"
	GroupOverlapping = "(overlapping)"
)

// Verdict is the checker's judgement of one Record.
type Verdict struct {
	Violations []Violation // sorted by time, then rule
	// Tenures are the tenures judged: replicas.Tenures on the timeline,
	// cut at a process exit, and open ones run to Ended (EndReason
	// "(exit)", "(next promote)" or "(open at end)" when the checker cut them).
	Tenures        []replicas.Tenure
	Overlaps       []Overlap
	FencedOverlaps int // overlaps excused: frozen or hook-faulted, and fenced
	// TwoPrimaryPairs counts pairs of concurrent 200 samples on different
	// replicas (not excused); ExcusedPairs those a frozen replica excused.
	TwoPrimaryPairs, ExcusedPairs int
	Recoveries                    []Recovery // one per fault, in fault order
	Slow                          []Recovery // recovered after Bound, or never
	Figures                       []KindFigures
}

// OK is true when the run broke no rule.
func (v Verdict) OK() bool { return len(v.Violations) == 0 }

// ByRule counts the violations per rule.
func (v Verdict) ByRule() map[string]int {
	m := map[string]int{}
	for _, x := range v.Violations {
		m[x.Rule]++
	}
	return m
}

// Check judges a Record. It is a pure function of the record.
func Check(r *Record) Verdict {
	var v Verdict
	v.Tenures = judgedTenures(r)
	v.Violations = append(v.Violations, checkOverlaps(r, &v)...)
	v.Violations = append(v.Violations, checkTokenOrder(r)...)
	v.Violations = append(v.Violations, checkFencing(r)...)
	v.Violations = append(v.Violations, checkLostWrites(r)...)
	v.Violations = append(v.Violations, checkTwoPrimaries(r, &v)...)
	v.Violations = append(v.Violations, checkRecovery(r, &v)...)
	v.Violations = append(v.Violations, checkEnd(r)...)
	slices.SortStableFunc(v.Violations, func(a, b Violation) int {
		return cmp.Or(a.At.Compare(b.At), cmp.Compare(a.Rule, b.Rule))
	})
	v.Figures = figures(v.Recoveries)
	return v
}

// sortedTimeline is the timeline in time order: hooks of different
// replicas append to one file, so file order can be off by a write.
func sortedTimeline(r *Record) []replicas.Event {
	evs := slices.Clone(r.Timeline)
	slices.SortStableFunc(evs, func(a, b replicas.Event) int { return a.At.Compare(b.At) })
	return evs
}

// judgedTenures are replicas.Tenures with ends fixed where the timeline
// alone is wrong: a killed process never runs its demote (its tenure ends
// when it exits; a later demote end, e.g. the restarted process's startup
// demote, is not its own), a promote whose demote never ended is
// superseded by the same replica's next promote, and a tenure still open
// lasts until the run ended.
func judgedTenures(r *Record) []replicas.Tenure {
	evs := sortedTimeline(r)
	ts := replicas.Tenures(evs)
	for i := range ts {
		t := &ts[i]
		exit, exited := firstExit(r.Exits, t.ID, t.Start)
		demoteBeforeExit := exited && slices.ContainsFunc(evs, func(e replicas.Event) bool {
			return e.ID == t.ID && e.Hook == "demote" && e.Phase == "start" &&
				!e.At.Before(t.Start) && !e.At.After(exit)
		})
		switch {
		case exited && (t.End.IsZero() || t.End.After(exit) && !demoteBeforeExit):
			t.End, t.EndReason = exit, "(exit)"
		case t.End.IsZero():
			if next, ok := nextPromote(evs, t.ID, t.Start); ok {
				t.End, t.EndReason = next, "(next promote)"
			} else {
				t.End, t.EndReason = r.Ended, "(open at end)"
			}
		}
	}
	return ts
}

func firstExit(exits []Exit, id string, after time.Time) (time.Time, bool) {
	var at time.Time
	for _, x := range exits {
		if x.Replica == id && !x.At.Before(after) && (at.IsZero() || x.At.Before(at)) {
			at = x.At
		}
	}
	return at, !at.IsZero()
}

func nextPromote(evs []replicas.Event, id string, after time.Time) (time.Time, bool) {
	for _, e := range evs {
		if e.ID == id && e.Hook == "promote" && e.Phase == "start" && e.At.After(after) {
			return e.At, true
		}
	}
	return time.Time{}, false
}

// checkOverlaps compares every pair of tenures of different replicas. An
// overlap is excused only when a frozen or hook-faulted replica explains
// it (its demote could not run in time) and fencing held, so the stale
// primary could do no harm.
func checkOverlaps(r *Record, v *Verdict) []Violation {
	var out []Violation
	ts := v.Tenures
	for i := range ts {
		for j := i + 1; j < len(ts); j++ {
			a, b := ts[i], ts[j]
			if a.ID == b.ID {
				continue
			}
			if b.Start.Before(a.Start) {
				a, b = b, a
			}
			start, end := later(a.Start, b.Start), earlier(a.End, b.End)
			if !start.Before(end) {
				continue
			}
			o := Overlap{A: a, B: b, Start: start, End: end}
			o.Involved = inWindow(r.Frozen, start, end, a.ID, b.ID) || inWindow(r.HookFaults, start, end, a.ID, b.ID)
			older, newer := a.Token, b.Token
			if older > newer {
				older, newer = newer, older
			}
			if older != newer {
				o.Stale = staleWrite(r.Writes, older, newer)
				o.Fenced = o.Stale == nil
			}
			o.Excused = o.Involved && o.Fenced
			v.Overlaps = append(v.Overlaps, o)
			desc := fmt.Sprintf("%s (token %d, %s..%s) and %s (token %d, %s..%s) overlap for %s",
				a.ID, a.Token, clock(a.Start), clock(a.End), b.ID, b.Token, clock(b.Start), clock(b.End), end.Sub(start).Round(time.Millisecond))
			switch {
			case o.Excused:
				v.FencedOverlaps++
			case !o.Involved:
				out = append(out, Violation{Rule: RuleTenureOverlap, At: start, Replicas: []string{a.ID, b.ID},
					Detail: desc + "; neither was frozen or hook-faulted" + fencingNote(o)})
			default:
				out = append(out, Violation{Rule: RuleUnfencedOverlap, At: start, Replicas: []string{a.ID, b.ID},
					Detail: desc + fencingNote(o)})
			}
		}
	}
	return out
}

func fencingNote(o Overlap) string {
	switch {
	case o.Stale != nil:
		return fmt.Sprintf("; the store accepted stale token %d (value %d) at %s after it had seen a newer one",
			o.Stale.Token, o.Stale.Value, clock(o.Stale.At))
	case !o.Fenced:
		return "; both hold the same token, so fencing cannot tell them apart"
	}
	return "; fencing held"
}

// staleWrite returns the first write accepted with token older once the
// store had seen newer or above (by accepting it, or by its Highest), nil
// if there is none. Writes with older before that are not stale: the
// store could not have known.
func staleWrite(ws []StoreWrite, older, newer int64) *StoreWrite {
	seen := false
	for i, w := range ws {
		if w.Highest >= newer {
			seen = true
		}
		if seen && w.Accepted && w.Token == older {
			return &ws[i]
		}
		if w.Accepted && w.Token >= newer {
			seen = true
		}
	}
	return nil
}

// inWindow says a window of one of ids intersects [start, end].
func inWindow(ws []Window, start, end time.Time, ids ...string) bool {
	for _, w := range ws {
		if slices.Contains(ids, w.Replica) && !w.Start.After(end) && !w.End.Before(start) {
			return true
		}
	}
	return false
}

// checkTokenOrder: each promote start is one tenure and gets the token of
// a new campaign key, so tokens strictly increase in time; an equal token
// twice means two tenures fencing cannot tell apart.
func checkTokenOrder(r *Record) []Violation {
	var out []Violation
	var prev replicas.Event
	for _, e := range sortedTimeline(r) {
		if e.Hook != "promote" || e.Phase != "start" {
			continue
		}
		switch {
		case e.Token == 0:
			out = append(out, Violation{Rule: RuleTokenOrder, At: e.At, Replicas: []string{e.ID},
				Detail: fmt.Sprintf("promote of %s without a fencing token", e.ID)})
			continue
		case prev.Token != 0 && e.Token <= prev.Token:
			out = append(out, Violation{Rule: RuleTokenOrder, At: e.At, Replicas: uniq(prev.ID, e.ID),
				Detail: fmt.Sprintf("promote of %s with token %d after promote of %s with token %d at %s",
					e.ID, e.Token, prev.ID, prev.Token, clock(prev.At))})
		}
		if e.Token > prev.Token {
			prev = e
		}
	}
	return out
}

// checkFencing: the store must never accept a token below the highest it
// had accepted or seen. Checked on the log itself, not on the store's own
// Accepted/Highest bookkeeping alone, so a store bug shows too.
func checkFencing(r *Record) []Violation {
	var out []Violation
	var highest int64
	var highestAt time.Time
	n := 0
	for _, w := range r.Writes {
		bound := max(highest, w.Highest)
		if w.Accepted && w.Token < bound {
			n++
			if n <= maxDetailed {
				seen := fmt.Sprintf("accepted token %d at %s", highest, clock(highestAt))
				if w.Highest > highest {
					seen = fmt.Sprintf("recorded token %d as the highest seen", w.Highest)
				}
				out = append(out, Violation{Rule: RuleFencing, At: w.At,
					Detail: fmt.Sprintf("store accepted token %d (value %d) after it had %s", w.Token, w.Value, seen)})
			}
		}
		if w.Accepted && w.Token > highest {
			highest, highestAt = w.Token, w.At
		}
	}
	if n > maxDetailed {
		out = append(out, Violation{Rule: RuleFencing, At: out[len(out)-1].At,
			Detail: fmt.Sprintf("%d more stale writes accepted", n-maxDetailed)})
	}
	return out
}

// checkLostWrites: every ack must be an accepted write, same value and token.
func checkLostWrites(r *Record) []Violation {
	type key struct{ value, token int64 }
	accepted, rejected := map[key]bool{}, map[key]bool{}
	for _, w := range r.Writes {
		if w.Accepted {
			accepted[key{w.Value, w.Token}] = true
		} else {
			rejected[key{w.Value, w.Token}] = true
		}
	}
	var out []Violation
	for _, a := range r.Acked {
		k := key{a.Value, a.Token}
		if accepted[k] {
			continue
		}
		why := "the store has no write with that value and token"
		if rejected[k] {
			why = "the store rejected it (fenced)"
		}
		out = append(out, Violation{Rule: RuleLostWrite, At: a.At, Replicas: []string{a.Replica},
			Detail: fmt.Sprintf("write value %d token %d acked via %s, but %s", a.Value, a.Token, a.Replica, why)})
	}
	return out
}

// checkTwoPrimaries: two 200 answers on different replicas whose
// [Sent, Received] intervals intersect may have been given at the same
// instant; that is counted as two primaries (conservative: a hand-off
// faster than the probes' round trips would also show). A replica in a
// Frozen window during either probe excuses the pair. Pairs of the same
// replica pair close in time form one episode, one violation.
func checkTwoPrimaries(r *Record, v *Verdict) []Violation {
	var ok []Sample
	for _, s := range r.Samples {
		if s.Code == 200 {
			ok = append(ok, s)
		}
	}
	slices.SortStableFunc(ok, func(a, b Sample) int { return a.Sent.Compare(b.Sent) })
	type episode struct {
		a, b        string
		start, last time.Time // first pair's start, latest pair's end
		pairs       int
	}
	var eps []*episode
	open := map[[2]string]*episode{}
	for i, s := range ok {
		for _, t := range ok[i+1:] {
			if t.Sent.After(s.Received) {
				break // sorted by Sent: no later sample intersects s
			}
			if t.Replica == s.Replica {
				continue
			}
			start, end := s.Sent, later(s.Received, t.Received)
			if inWindow(r.Frozen, start, end, s.Replica, t.Replica) {
				v.ExcusedPairs++
				continue
			}
			v.TwoPrimaryPairs++
			pair := [2]string{min(s.Replica, t.Replica), max(s.Replica, t.Replica)}
			if e := open[pair]; e != nil && !start.After(e.last.Add(episodeGap)) {
				e.pairs++
				e.last = later(e.last, end)
				continue
			}
			e := &episode{a: pair[0], b: pair[1], start: start, last: end, pairs: 1}
			open[pair] = e
			eps = append(eps, e)
		}
	}
	var out []Violation
	for i, e := range eps {
		if i == maxDetailed {
			rest := 0
			for _, e := range eps[i:] {
				rest += e.pairs
			}
			out = append(out, Violation{Rule: RuleTwoPrimaries, At: e.start,
				Detail: fmt.Sprintf("%d more episodes (%d sample pairs) of two primaries", len(eps)-i, rest)})
			break
		}
		out = append(out, Violation{Rule: RuleTwoPrimaries, At: e.start, Replicas: []string{e.a, e.b},
			Detail: fmt.Sprintf("/primary answered 200 on %s and %s at once: %d concurrent sample pairs from %s to %s",
				e.a, e.b, e.pairs, clock(e.start), clock(e.last))})
	}
	return out
}

// checkRecovery measures each fault's recovery from the latest heal among
// it and the faults overlapping it (Recovered waits for all of them).
// Slower than Bound, or never, is a violation: the bound is documented as
// the worst case, so exceeding it breaks a promise (and Slow lists them
// with their fault). A zero Bound cannot be judged: nothing is slow then
// except never recovering.
func checkRecovery(r *Record, v *Verdict) []Violation {
	bySeq := map[int]Fault{}
	for _, f := range r.Faults {
		bySeq[f.Seq] = f
	}
	var out []Violation
	for _, f := range r.Faults {
		rec := Recovery{Fault: f, From: healedAt(f)}
		for _, s := range f.Overlaps {
			if o, ok := bySeq[s]; ok {
				rec.From = later(rec.From, healedAt(o))
			}
		}
		if f.Recovered.IsZero() {
			rec.Never, rec.Slow = true, true
		} else {
			rec.Took = max(0, f.Recovered.Sub(rec.From))
			rec.Slow = r.Bound > 0 && rec.Took > r.Bound
		}
		v.Recoveries = append(v.Recoveries, rec)
		if !rec.Slow {
			continue
		}
		v.Slow = append(v.Slow, rec)
		if rec.Never {
			out = append(out, Violation{Rule: RuleNoRecovery, At: rec.From, Replicas: targetReplicas(r, f),
				Detail: fmt.Sprintf("%s: no single primary again after it healed at %s", faultName(f), clock(rec.From))})
		} else {
			out = append(out, Violation{Rule: RuleSlowRecovery, At: rec.From, Replicas: targetReplicas(r, f),
				Detail: fmt.Sprintf("%s: single primary again %s after it healed at %s, over the bound %s",
					faultName(f), rec.Took.Round(time.Millisecond), clock(rec.From), r.Bound)})
		}
	}
	return out
}

func healedAt(f Fault) time.Time {
	if f.Healed.IsZero() {
		return f.Injected
	}
	return later(f.Healed, f.Injected)
}

// targetReplicas is the fault's target when it is a replica.
func targetReplicas(r *Record, f Fault) []string {
	if slices.Contains(r.Replicas, f.Target) {
		return []string{f.Target}
	}
	return nil
}

func faultName(f Fault) string {
	s := fmt.Sprintf("fault #%d %s", f.Seq, f.Kind)
	if f.Target != "" {
		s += " on " + f.Target
	}
	if f.Primary {
		s += " (primary)"
	}
	if len(f.Overlaps) > 0 {
		s += fmt.Sprintf(" overlapping %v", f.Overlaps)
	}
	return s
}

// checkEnd judges the state after the last fault healed.
func checkEnd(r *Record) []Violation {
	var out []Violation
	at := r.Ended
	for _, l := range r.End.LiveLeases {
		if !slices.Contains(r.End.SidecarLease, l) {
			out = append(out, Violation{Rule: RuleLeftoverLease, At: at,
				Detail: fmt.Sprintf("etcd holds lease %x (%d), which no live sidecar reports", l, l)})
		}
	}
	for _, h := range r.End.LeftoverHook {
		out = append(out, Violation{Rule: RuleLeftoverHook, At: at, Detail: "hook process still running: " + h})
	}
	if n := len(r.End.Primaries); n != 1 {
		out = append(out, Violation{Rule: RuleEndPrimaries, At: at, Replicas: slices.Clone(r.End.Primaries),
			Detail: fmt.Sprintf("%d replicas answer /primary 200 at the end, want exactly 1", n)})
	}
	for _, x := range r.Exits {
		if !x.Injected {
			out = append(out, Violation{Rule: RuleUnexpectedExit, At: x.At, Replicas: []string{x.Replica},
				Detail: fmt.Sprintf("%s exited with code %d, not by an injected fault", x.Replica, x.Code)})
		}
	}
	return out
}

// figures groups the recoveries per kind (sorted), then all faults, then
// the overlapping ones.
func figures(recs []Recovery) []KindFigures {
	groups := map[string][]Recovery{}
	var kinds []string
	for _, rec := range recs {
		if _, ok := groups[rec.Fault.Kind]; !ok {
			kinds = append(kinds, rec.Fault.Kind)
		}
		groups[rec.Fault.Kind] = append(groups[rec.Fault.Kind], rec)
		if len(rec.Fault.Overlaps) > 0 {
			groups[GroupOverlapping] = append(groups[GroupOverlapping], rec)
		}
	}
	slices.Sort(kinds)
	var out []KindFigures
	for _, k := range kinds {
		out = append(out, kindFigures(k, groups[k]))
	}
	if len(recs) > 0 {
		out = append(out, kindFigures(GroupAll, recs))
	}
	if g := groups[GroupOverlapping]; len(g) > 0 {
		out = append(out, kindFigures(GroupOverlapping, g))
	}
	return out
}

func kindFigures(kind string, recs []Recovery) KindFigures {
	k := KindFigures{Kind: kind, Count: len(recs)}
	var recovery, failover []time.Duration
	for _, rec := range recs {
		f := rec.Fault
		if len(f.Overlaps) > 0 {
			k.Overlapping++
		}
		if f.Primary {
			k.PrimaryTargeted++
		}
		if rec.Slow {
			k.Slow++
		}
		if rec.Never {
			k.Never++
		} else {
			recovery = append(recovery, rec.Took)
		}
		switch {
		case f.PrimaryLost.IsZero():
		case f.NextPrimary.IsZero():
			k.NoFailover++
		default:
			failover = append(failover, max(0, f.NextPrimary.Sub(f.PrimaryLost)))
		}
	}
	k.Recovery, k.Failover = percentiles(recovery), percentiles(failover)
	return k
}

func percentiles(ds []time.Duration) Percentiles {
	p := Percentiles{N: len(ds)}
	if len(ds) == 0 {
		return p
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	p.P50, p.P99, p.Max = nearestRank(s, 50), nearestRank(s, 99), s[len(s)-1]
	return p
}

// Percentile is the p-th percentile (0 < p <= 100) of ds by the
// nearest-rank method: the smallest value with at least p% of the values
// at or below it, always one of the values. Zero for no values.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return nearestRank(s, p)
}

func nearestRank(sorted []time.Duration, p float64) time.Duration {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func uniq(ids ...string) []string {
	var out []string
	for _, id := range ids {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

func clock(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format("15:04:05.000")
}
