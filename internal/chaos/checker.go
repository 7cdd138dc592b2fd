package chaos

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/leaderd/leaderd/hooks"
	"github.com/leaderd/leaderd/internal/timeline"
)

// Rule names, stable: reports, tests and scripts match on them.
const (
	// RuleTenureOverlap: two tenures overlapped and nothing excuses it: the
	// older primary (A) had no frozen, demote-fail or demote-hang window
	// that began in its tenure, by the overlap's start, and (frozen) lasted
	// until the overlap ended.
	RuleTenureOverlap = "tenure-overlap"
	// RuleUnfencedOverlap: an overlap such a window excuses, during which
	// the store accepted the older token after it had seen the newer one
	// (or the two tokens do not order the tenures).
	RuleUnfencedOverlap = "unfenced-overlap"
	// RuleTokenOrder: promote-start tokens, in time order, did not strictly
	// increase (or a promote had no token).
	RuleTokenOrder = "token-order"
	// RuleFencing: the store accepted a write or promote with a token below
	// the fence: the highest token it had accepted before, by its own log.
	RuleFencing = "fencing"
	// RuleLostWrite: the writer saw an ack the store has no accepted write for.
	RuleLostWrite = "lost-write"
	// RuleTwoPrimaries: /primary answered 200 on two replicas at once.
	RuleTwoPrimaries = "two-primaries"
	// RuleSlowRecovery: exactly one primary came back, but later than Bound.
	RuleSlowRecovery = "slow-recovery"
	// RuleNoRecovery: exactly one primary did not come back within the wait.
	RuleNoRecovery = "no-recovery"
	// RuleSlowFailover: a fault took the primary away and another served
	// later than Bound after (judged during the fault's hold, not after
	// its heal); RuleNoFailover: none served again.
	RuleSlowFailover = "slow-failover"
	RuleNoFailover   = "no-failover"
	// RuleLeftoverLease: etcd holds a lease no live sidecar reports.
	RuleLeftoverLease = "leftover-lease"
	// RuleLeftoverHook: a hook process was still running at the end.
	RuleLeftoverHook = "leftover-hook"
	// RuleEndPrimaries: not exactly one replica answered /primary 200 at the end.
	RuleEndPrimaries = "end-primaries"
	// RuleReplicaDown: a replica was not running when the end state was taken.
	RuleReplicaDown = "replica-down"
	// RuleUnexpectedExit: a leaderd process exited without an injected fault.
	RuleUnexpectedExit = "unexpected-exit"
	// RuleUncleanExit: a leaderd stopped with SIGTERM exited non-zero.
	RuleUncleanExit = "unclean-exit"
	// RuleTimeline: the hook timeline could not be read, or some of its
	// lines did not parse: tenures and tokens cannot be judged.
	RuleTimeline = "timeline"
)

// windowFrozen is the Kind of the Frozen windows (an empty Kind there is
// read as it, the only kind they have).
const windowFrozen = "frozen"

// windowStall is the Kind of a host stall (Replica "*"): every process,
// the older primary's included, was stopped, as by a SIGSTOP of all; it
// excuses an overlap as a freeze of the older primary does.
const windowStall = "stall"

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
	A, B       timeline.Tenure // A started first: the older primary
	Start, End time.Time       // the intersection
	// Excuse is A's window that explains why A was still primary (nil: none
	// does, and Unexcused says why); see excuseOverlap.
	Excuse    *Window
	Unexcused string
	// Fenced: A's token is below B's, and once the store's log showed B's
	// token (or a higher one) it accepted nothing with A's. Excused = an
	// Excuse and Fenced.
	Fenced, Excused bool
	// Stale is the first decision accepted with A's token after B's was
	// seen (when not Fenced and a write is to blame).
	Stale *StoreWrite
	// Refused counts A's writes the store refused after it had seen B's
	// token: the fencing at work.
	Refused int
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
	Count           int    // injected faults; the figures are theirs
	FailedToInject  int    // faults with InjectErr, not in Count (not in GroupOverlapping)
	Overlapping     int    // faults with Overlaps non-empty
	PrimaryTargeted int    // Fault.Primary
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
	// Tenures are the tenures judged: timeline.Tenures on the timeline,
	// cut at a process exit, and open ones run to Ended (EndReason
	// "(exit)", "(next promote)" or "(open at end)" when the checker cut them).
	Tenures        []timeline.Tenure
	Overlaps       []Overlap
	FencedOverlaps int // overlaps excused: see Overlap.Excused
	// TwoPrimaryPairs counts pairs of concurrent 200 samples on different
	// replicas. Nothing excuses one: a thawed replica answers 503 at once,
	// and a probe cannot span a freeze (it times out first).
	TwoPrimaryPairs int
	// Recoveries has one per injected fault (InjectErr empty), in fault
	// order; a fault that failed to inject had no effect to recover from.
	Recoveries []Recovery
	Slow       []Recovery // recovered after Bound, or never
	Figures    []KindFigures
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
	v.Violations = append(v.Violations, checkTimeline(r)...)
	v.Violations = append(v.Violations, checkOverlaps(r, &v)...)
	v.Violations = append(v.Violations, checkTokenOrder(r)...)
	v.Violations = append(v.Violations, checkFencing(r)...)
	v.Violations = append(v.Violations, checkLostWrites(r)...)
	v.Violations = append(v.Violations, checkTwoPrimaries(r, &v)...)
	v.Violations = append(v.Violations, checkRecovery(r, &v)...)
	v.Violations = append(v.Violations, checkFailover(r)...)
	v.Violations = append(v.Violations, checkEnd(r)...)
	v.Violations = append(v.Violations, checkPriority(r)...)
	slices.SortStableFunc(v.Violations, func(a, b Violation) int {
		return cmp.Or(a.At.Compare(b.At), cmp.Compare(a.Rule, b.Rule))
	})
	v.Figures = figures(r.Faults, v.Recoveries)
	return v
}

// checkTimeline: tenures, overlaps and token order are judged on the
// timeline, so a timeline that could not be read, or read only in part,
// leaves the run unjudged, which is a failure, not a pass.
func checkTimeline(r *Record) []Violation {
	var out []Violation
	if r.TimelineErr != "" {
		out = append(out, Violation{Rule: RuleTimeline, At: r.Started,
			Detail: "the hook timeline could not be read: " + r.TimelineErr})
	}
	if r.TimelineSkipped > 0 {
		out = append(out, Violation{Rule: RuleTimeline, At: r.Started,
			Detail: fmt.Sprintf("%d hook timeline lines did not parse: the tenures cannot be trusted", r.TimelineSkipped)})
	}
	return out
}

// sortedTimeline is the timeline in time order: hooks of different
// replicas append to one file, so file order can be off by a write.
func sortedTimeline(r *Record) []timeline.Event {
	evs := slices.Clone(r.Timeline)
	slices.SortStableFunc(evs, func(a, b timeline.Event) int { return a.At.Compare(b.At) })
	return evs
}

// judgedTenures are timeline.Tenures with ends fixed where the timeline
// alone is wrong: a killed process never runs its demote (its tenure ends
// when it exits; a later demote end, e.g. the restarted process's startup
// demote, is not its own), a promote whose demote never ended is
// superseded by the same replica's next promote, and a tenure still open
// lasts until the run ended.
func judgedTenures(r *Record) []timeline.Tenure {
	evs := sortedTimeline(r)
	ts := timeline.Tenures(evs)
	for i := range ts {
		t := &ts[i]
		exit, exited := firstExit(r.Exits, t.ID, t.Start)
		demoteBeforeExit := exited && slices.ContainsFunc(evs, func(e timeline.Event) bool {
			return e.ID == t.ID && e.Is(hooks.Demote, timeline.PhaseStart) &&
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

func nextPromote(evs []timeline.Event, id string, after time.Time) (time.Time, bool) {
	for _, e := range evs {
		if e.ID == id && e.Is(hooks.Promote, timeline.PhaseStart) && e.At.After(after) {
			return e.At, true
		}
	}
	return time.Time{}, false
}

// checkOverlaps compares every pair of tenures of different replicas. An
// overlap is excused only when a window of the older primary explains why
// it was still primary (see excuseOverlap) and fencing held, so the stale
// primary could do no harm.
func checkOverlaps(r *Record, v *Verdict) []Violation {
	var out []Violation
	for _, p := range timeline.Overlaps(v.Tenures, timeline.Rules{OtherReplicasOnly: true}) {
		a, b, start, end := p.A, p.B, p.Start, p.End
		o := Overlap{A: a, B: b, Start: start, End: end}
		o.Excuse, o.Unexcused = excuseOverlap(r, o)
		o.Stale, o.Refused, o.Fenced = fenceOverlap(r.Writes, a.Token, b.Token)
		o.Excused = o.Excuse != nil && o.Fenced
		v.Overlaps = append(v.Overlaps, o)
		desc := fmt.Sprintf("%s (token %d, %s..%s) and %s (token %d, %s..%s) overlap for %s",
			a.ID, a.Token, clock(a.Start), clock(a.End), b.ID, b.Token, clock(b.Start), clock(b.End), end.Sub(start).Round(time.Millisecond))
		switch {
		case o.Excused:
			v.FencedOverlaps++
		case o.Excuse == nil:
			out = append(out, Violation{Rule: RuleTenureOverlap, At: start, Replicas: []string{a.ID, b.ID},
				Detail: desc + "; not excused: " + o.Unexcused + fencingNote(o)})
		default:
			out = append(out, Violation{Rule: RuleUnfencedOverlap, At: start, Replicas: []string{a.ID, b.ID},
				Detail: desc + "; " + excuseNote(o) + fencingNote(o)})
		}
	}
	return out
}

// excuseOverlap finds the window of A (the older primary) that explains
// why A was still primary when B promoted: A frozen (it could not demote;
// after the thaw it must demote within the grace, so the overlap must end
// by the window's end), or A's demote hook failing or hanging (its demote
// is retried with a back-off after the heal, so the overlap may last
// until A's tenure ends). The window must begin inside A's tenure and no
// later than the overlap: a fault that came after B promoted did not
// cause the overlap. A flood window counts as a demote fault: 2 MB of
// output can outlast the demote timeout, which then kills the hook. B's
// windows never excuse (a thawed or promote-faulted standby promoting over
// a live primary is the bug), nor do promote-* windows. It returns nil and
// why when nothing excuses.
func excuseOverlap(r *Record, o Overlap) (*Window, string) {
	why := fmt.Sprintf("%s (the older primary) had no frozen, demote-fail, demote-hang or flood window", o.A.ID)
	var ws []Window
	for _, w := range r.Frozen {
		if w.Kind == "" {
			w.Kind = windowFrozen
		}
		ws = append(ws, w)
	}
	ws = append(ws, r.HookFaults...)
	for _, w := range ws {
		if w.Replica != o.A.ID && !(w.Kind == windowStall && w.Replica == "*") {
			continue
		}
		switch w.Kind {
		case windowFrozen, windowStall, hookDemoteFail, hookDemoteHang, hookFlood:
		default:
			continue
		}
		if w.Start.Before(o.A.Start) || w.Start.After(o.Start) {
			why = fmt.Sprintf("%s's %s window began at %s, not within its tenure by the overlap's start", o.A.ID, w.Kind, clock(w.Start))
			continue
		}
		if (w.Kind == windowFrozen || w.Kind == windowStall) && o.End.After(w.End) {
			why = fmt.Sprintf("%s's frozen window ended at %s (grace included), before the overlap did: thawed, it must demote within the grace", o.A.ID, clock(w.End))
			continue
		}
		return &w, ""
	}
	return nil, why
}

func excuseNote(o Overlap) string {
	return fmt.Sprintf("%s had a %s window %s..%s", o.A.ID, o.Excuse.Kind, clock(o.Excuse.Start), clock(o.Excuse.End))
}

func fencingNote(o Overlap) string {
	switch {
	case o.Stale != nil:
		return fmt.Sprintf("; the store accepted stale token %d (%s value %d) at %s after it had seen a newer one",
			o.Stale.Token, decisionKind(*o.Stale), o.Stale.Value, clock(o.Stale.At))
	case !o.Fenced:
		return fmt.Sprintf("; the newer tenure's token %d is not above the older's %d, so fencing cannot tell them apart", o.B.Token, o.A.Token)
	}
	return fmt.Sprintf("; fencing held (%d stale writes refused)", o.Refused)
}

// fenceOverlap reads the store's log alone for an overlap of the older
// token with the newer: from the first decision with the newer token or
// above (B's promote or first write, or a later tenure's), the store must
// accept nothing with the older one. It returns the first such accept,
// the count of older writes refused from then on, and whether fencing
// held. Equal or inverted tokens cannot be fenced.
func fenceOverlap(ws []StoreWrite, older, newer int64) (stale *StoreWrite, refused int, fenced bool) {
	if older >= newer {
		return nil, 0, false
	}
	seen := false
	for i, w := range ws {
		if !fencingDecision(w) {
			continue
		}
		if w.Token >= newer {
			seen = true
			continue
		}
		if !seen || w.Token != older {
			continue
		}
		switch {
		case w.Accepted && stale == nil:
			stale = &ws[i]
		case !w.Accepted && decisionKind(w) == "write":
			refused++
		}
	}
	return stale, refused, stale == nil
}

// fencingDecision says a store decision takes part in fencing: writes and
// promotes (a demote is only logged). Unknown kinds count, so a store that
// mislabels a decision is judged rather than skipped.
func fencingDecision(w StoreWrite) bool { return w.Kind != "demote" }

// decisionKind is w.Kind, "write" when empty (the log's first format).
func decisionKind(w StoreWrite) string {
	if w.Kind == "" {
		return "write"
	}
	return w.Kind
}

// checkTokenOrder: each promote start is one tenure and gets the token of
// a new campaign key, so tokens strictly increase in time; an equal token
// twice means two tenures fencing cannot tell apart.
func checkTokenOrder(r *Record) []Violation {
	var out []Violation
	var prev timeline.Event
	for _, e := range sortedTimeline(r) {
		if !e.Is(hooks.Promote, timeline.PhaseStart) {
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

// checkFencing recomputes the fence from the store's log alone: the
// highest token among the accepted writes and promotes so far. Accepting a
// write or promote below it is a violation. The store's own Highest is not
// trusted (it is only shown), so a store bug shows too.
func checkFencing(r *Record) []Violation {
	var out []Violation
	var fence int64
	var raisedBy StoreWrite
	n := 0
	for _, w := range r.Writes {
		if !fencingDecision(w) {
			continue
		}
		if w.Accepted && w.Token < fence {
			n++
			if n <= maxDetailed {
				out = append(out, Violation{Rule: RuleFencing, At: w.At, Replicas: uniq(nonEmpty(w.Replica, raisedBy.Replica)...),
					Detail: fmt.Sprintf("store accepted %s token %d (value %d%s) below the fence %d, raised by %s's %s at %s (the store recorded highest %d)",
						decisionKind(w), w.Token, w.Value, via(w.Via, w.Replica), fence, orUnknown(raisedBy.Replica), decisionKind(raisedBy), clock(raisedBy.At), w.Highest)})
			}
		}
		if w.Accepted && w.Token > fence {
			fence, raisedBy = w.Token, w
		}
	}
	if n > maxDetailed {
		out = append(out, Violation{Rule: RuleFencing, At: out[len(out)-1].At,
			Detail: fmt.Sprintf("%d more decisions accepted below the fence", n-maxDetailed)})
	}
	return out
}

func via(v, replica string) string {
	switch {
	case v == "" && replica == "":
		return ""
	case v == "":
		return ", from " + replica
	case replica == "":
		return ", via " + v
	}
	return fmt.Sprintf(", via %s from %s", v, replica)
}

func orUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

func nonEmpty(ss ...string) []string {
	return slices.DeleteFunc(ss, func(s string) bool { return s == "" })
}

// checkLostWrites: every ack must be an accepted write, same value and token.
func checkLostWrites(r *Record) []Violation {
	type key struct{ value, token int64 }
	accepted, rejected := map[key]bool{}, map[key]bool{}
	for _, w := range r.Writes {
		if decisionKind(w) != "write" {
			continue // promotes and demotes carry no value an ack could match
		}
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
			Detail: fmt.Sprintf("write value %d token %d acked (%s), but %s", a.Value, a.Token, strings.TrimPrefix(via(a.Via, a.Replica), ", "), why)})
	}
	return out
}

// checkTwoPrimaries: two 200 answers on different replicas whose
// [Sent, Received] intervals intersect may have been given at the same
// instant; that is counted as two primaries (conservative: a hand-off
// faster than the probes' round trips would also show). Nothing excuses a
// pair: a thawed replica answers 503 at once, by design, and a probe
// cannot span a freeze (it times out at 300 ms). Pairs of the same replica
// pair close in time form one episode, one violation.
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

// checkRecovery measures each injected fault's recovery from the latest
// heal among it and the injected faults overlapping it (Recovered waits
// for all of them); a fault that failed to inject is not judged and does
// not move the clock.
// Slower than Bound, or never, is a violation: the bound is documented as
// the worst case, so exceeding it breaks a promise (and Slow lists them
// with their fault). A zero Bound cannot be judged: nothing is slow then
// except never recovering.
func checkRecovery(r *Record, v *Verdict) []Violation {
	bySeq := injectedBySeq(r)
	var out []Violation
	for _, f := range r.Faults {
		if f.InjectErr != "" {
			continue
		}
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
		if !rec.Slow || (!rec.Never && stalledDuring(r, rec.From, f.Recovered)) {
			continue // a host stall stopped every clock the bound assumes
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

// injectedBySeq indexes the faults that were injected (InjectErr empty).
func injectedBySeq(r *Record) map[int]Fault {
	m := map[int]Fault{}
	for _, f := range r.Faults {
		if f.InjectErr == "" {
			m[f.Seq] = f
		}
	}
	return m
}

// failoverKinds are the faults whose failover the README's timing table
// promises (primary crashes, is cut off, its hooks or health fail, it is
// asked to step down): a primary again within Bound of losing it, during
// the hold. exemptFailover are the faults that may rightly hold every
// replica back meanwhile (etcd without quorum or leader, campaigns paused):
// overlapping one, a fault's failover is not judged.
var (
	failoverKinds = []string{"sigkill", "sigterm", "restart", "stop-long", "cut-all", "hook-fail", "hook-hang",
		"hook-flood", "stderr-stall", "health-flap", "resign", "switchover", "scheduled-switchover"}
	exemptFailover = []string{"member-kill", "leader-kill", "member-isolate", "peer-cut", "quorum-short", "quorum-long", "pause"}
)

// checkFailover judges the time from the primary lost to a primary
// serving again, for the faults in failoverKinds that took the primary
// away, were injected, and overlapped no injected exemptFailover fault.
// A zero Bound judges only a failover that never came.
func checkFailover(r *Record) []Violation {
	bySeq := injectedBySeq(r)
	var out []Violation
	for _, f := range r.Faults {
		if f.InjectErr != "" || f.PrimaryLost.IsZero() || !slices.Contains(failoverKinds, f.Kind) || holdsFailover(f) ||
			slices.ContainsFunc(f.Overlaps, func(s int) bool {
				o, ok := bySeq[s]
				return ok && (slices.Contains(exemptFailover, o.Kind) || holdsFailover(o))
			}) {
			continue
		}
		if f.NextPrimary.IsZero() {
			out = append(out, Violation{Rule: RuleNoFailover, At: f.PrimaryLost, Replicas: targetReplicas(r, f),
				Detail: fmt.Sprintf("%s: the primary stopped serving at %s and no replica served as primary again", faultName(f), clock(f.PrimaryLost))})
			continue
		}
		if took := f.NextPrimary.Sub(f.PrimaryLost); r.Bound > 0 && took > r.Bound && !stalledDuring(r, f.PrimaryLost, f.NextPrimary) {
			out = append(out, Violation{Rule: RuleSlowFailover, At: f.PrimaryLost, Replicas: targetReplicas(r, f),
				Detail: fmt.Sprintf("%s: the primary stopped serving at %s, a primary served again %s later, over the bound %s",
					faultName(f), clock(f.PrimaryLost), took.Round(time.Millisecond), r.Bound)})
		}
	}
	return out
}

// stalledDuring reports whether a host stall overlapped [from, to]: the
// timing bounds assume the machine ran, so a slow recovery or failover
// across a stall is not judged (its figures still count).
func stalledDuring(r *Record, from, to time.Time) bool {
	for _, w := range r.Frozen {
		if w.Kind == windowStall && w.Start.Before(to) && w.End.After(from) {
			return true
		}
	}
	return false
}

// holdsFailover: a hook fault on the primary makes its demote fail, and
// after a voluntary step-down leaderd keeps the leader key until a demote
// succeeds (README, "How it behaves"), so no failover is due before the
// fault heals; the recovery after the heal is judged instead.
func holdsFailover(f Fault) bool {
	return f.Primary && (f.Kind == "hook-fail" || f.Kind == "hook-hang" || f.Kind == "hook-flood")
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
	for _, id := range r.End.Down {
		out = append(out, Violation{Rule: RuleReplicaDown, At: at, Replicas: []string{id},
			Detail: fmt.Sprintf("%s was not running when the end state was taken", id)})
	}
	for _, x := range r.Exits {
		if !x.Injected {
			out = append(out, Violation{Rule: RuleUnexpectedExit, At: x.At, Replicas: []string{x.Replica},
				Detail: fmt.Sprintf("%s exited with code %d, not by an injected fault", x.Replica, x.Code)})
		}
		if x.Graceful && x.Code != 0 {
			out = append(out, Violation{Rule: RuleUncleanExit, At: x.At, Replicas: []string{x.Replica},
				Detail: fmt.Sprintf("%s was stopped with SIGTERM and exited with code %d, want 0 (-1: killed by a signal)", x.Replica, x.Code)})
		}
	}
	return out
}

// figures groups the recoveries per kind (sorted), then all faults, then
// the overlapping ones; the faults that failed to inject are counted per
// kind and in GroupAll, apart from the figures.
func figures(faults []Fault, recs []Recovery) []KindFigures {
	groups := map[string][]Recovery{}
	failed := map[string]int{}
	var kinds []string
	addKind := func(k string) {
		if !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	for _, rec := range recs {
		addKind(rec.Fault.Kind)
		groups[rec.Fault.Kind] = append(groups[rec.Fault.Kind], rec)
		if len(rec.Fault.Overlaps) > 0 {
			groups[GroupOverlapping] = append(groups[GroupOverlapping], rec)
		}
	}
	for _, f := range faults {
		if f.InjectErr != "" {
			addKind(f.Kind)
			failed[f.Kind]++
			failed[GroupAll]++
		}
	}
	slices.Sort(kinds)
	var out []KindFigures
	for _, k := range kinds {
		out = append(out, kindFigures(k, groups[k], failed[k]))
	}
	if len(kinds) > 0 {
		out = append(out, kindFigures(GroupAll, recs, failed[GroupAll]))
	}
	if g := groups[GroupOverlapping]; len(g) > 0 {
		out = append(out, kindFigures(GroupOverlapping, g, 0))
	}
	return out
}

func kindFigures(kind string, recs []Recovery, failed int) KindFigures {
	k := KindFigures{Kind: kind, Count: len(recs), FailedToInject: failed}
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
