package chaos

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// timelineAround is how far either side of a violation the report shows
// the timeline.
const timelineAround = 2 * time.Second

// ReplayCommand is the command that replays a campaign with this seed and
// fault count; extra flags (the world's settings) follow.
func ReplayCommand(seed int64, faults int, extra ...string) string {
	return strings.Join(append([]string{"go", "run", "./chaos", "-seed", fmt.Sprint(seed), "-faults", fmt.Sprint(faults)}, extra...), " ")
}

// WriteReport writes the campaign's report as markdown-ish plain text (it
// goes into RELIABILITY.md): the header with the seed, revision and replay
// command, the probes' sampling gaps and the store's decisions, faults by
// kind, recovery and failover figures per kind, slow recoveries, faults
// that failed to inject, overlapping tenures, every violation with the
// timeline around it, and a last line "RESULT: PASS" or "RESULT: FAIL (N
// violations)". An empty replay prints ReplayCommand(r.Seed, len(r.Faults)).
func WriteReport(w io.Writer, r *Record, v Verdict, replay string) error {
	if replay == "" {
		replay = ReplayCommand(r.Seed, len(r.Faults))
	}
	p := &printer{w: w}
	p.f("# Chaos campaign, seed %d\n\n", r.Seed)
	p.f("- seed: %d\n", r.Seed)
	revision := r.Revision
	if revision == "" {
		revision = "unknown (not recorded)"
	}
	p.f("- revision: %s\n", revision)
	p.f("- replay: `%s`\n", replay)
	p.f("- run: %s to %s (%s)\n", r.Started.Format(time.RFC3339), r.Ended.Format(time.RFC3339), r.Ended.Sub(r.Started).Round(time.Millisecond))
	p.f("- replicas: %d (%s)\n", len(r.Replicas), strings.Join(r.Replicas, ", "))
	if note := priorityNote(r); note != "" {
		p.f("- %s\n", note)
	}
	injected, failed, overlapping, onPrimary := 0, 0, 0, 0
	for _, f := range r.Faults {
		if f.InjectErr != "" {
			failed++
			continue
		}
		injected++
		if len(f.Overlaps) > 0 {
			overlapping++
		}
		if f.Primary {
			onPrimary++
		}
	}
	p.f("- faults: %d injected (%d more failed to inject); %d overlapping others, %d on the primary\n", injected, failed, overlapping, onPrimary)
	bound := "not set (slow recoveries and failovers not judged)"
	if r.Bound > 0 {
		bound = r.Bound.String()
	}
	p.f("- recovery and failover bound (TTL + etcd election timeout + 0.5s + hook time): %s\n", bound)
	refused := 0
	for _, o := range v.Overlaps {
		refused += o.Refused
	}
	p.f("- tenures: %d; overlapping pairs: %d (%d excused: the older primary frozen or its demote hook faulted, and fenced; %d stale writes refused in them)\n",
		len(v.Tenures), len(v.Overlaps), v.FencedOverlaps, refused)
	p.f("- store writes %s\n", storeSummary(r))
	p.f("- /primary samples: %d; concurrent 200 pairs: %d\n", len(r.Samples), v.TwoPrimaryPairs)
	gaps := SampleGaps(r)
	pg := percentiles(gaps)
	over := 0
	for _, g := range gaps {
		if g > slowSampleGap {
			over++
		}
	}
	p.f("- sampling: gaps between a replica's consecutive probes p50 %s, p99 %s, max %s (%d gaps, %d over %s; "+
		"two primaries for less than a gap can go unseen; gaps across a process exit left out)\n",
		dur(pg, pg.P50), dur(pg, pg.P99), dur(pg, pg.Max), pg.N, over, slowSampleGap)
	var stalls []time.Duration
	for _, w := range r.Frozen {
		if w.Kind == windowStall {
			stalls = append(stalls, w.End.Sub(w.Start))
		}
	}
	if len(stalls) == 0 {
		p.f("- host stalls (the campaign's own clock stopped for over %s): none\n", stallThreshold)
	} else {
		p.f("- host stalls (the campaign's own clock stopped for over %s, grace included): %d, longest %s; an overlap they caused is excused like a freeze, if fenced\n",
			stallThreshold, len(stalls), slices.Max(stalls).Round(time.Millisecond))
	}

	p.f("\n## Faults by kind\n\n")
	p.f("| kind | count | failed to inject | overlapping | on primary |\n|---|---:|---:|---:|---:|\n")
	for _, k := range v.Figures {
		if k.Kind != GroupOverlapping {
			p.f("| %s | %d | %d | %d | %d |\n", k.Kind, k.Count, k.FailedToInject, k.Overlapping, k.PrimaryTargeted)
		}
	}

	p.f("\n## Recovery and failover per kind\n\n")
	p.f("Recovery: from the fault's heal (the latest heal of it and the faults overlapping it) to exactly one primary serving. ")
	p.f("Failover: from the primary no longer serving to a primary serving again, for faults that hit the primary. ")
	p.f("p99 is nearest-rank: with 100 values or fewer it is the largest. ")
	p.f("Overlapping faults count under their kind and again under %s; faults that failed to inject are not counted.\n\n", GroupOverlapping)
	p.f("| kind | n | recovery p50 | p99 | max | slow | never | failovers | failover p50 | p99 | max | no failover |\n")
	p.f("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, k := range v.Figures {
		p.f("| %s | %d | %s | %s | %s | %d | %d | %d | %s | %s | %s | %d |\n", k.Kind, k.Count,
			dur(k.Recovery, k.Recovery.P50), dur(k.Recovery, k.Recovery.P99), dur(k.Recovery, k.Recovery.Max), k.Slow, k.Never,
			k.Failover.N, dur(k.Failover, k.Failover.P50), dur(k.Failover, k.Failover.P99), dur(k.Failover, k.Failover.Max), k.NoFailover)
	}

	p.f("\n## Slow recoveries (over the bound, or never)\n\n")
	if len(v.Slow) == 0 {
		p.f("none\n")
	}
	for _, s := range v.Slow {
		took := "never"
		if !s.Never {
			took = s.Took.Round(time.Millisecond).String()
		}
		p.f("- %s: injected %s, healed %s, single primary again: %s\n", faultName(s.Fault), clock(s.Fault.Injected), clock(s.From), took)
	}

	if failed > 0 {
		p.f("\n## Faults that failed to inject (no effect, not judged)\n\n")
		for _, f := range r.Faults {
			if f.InjectErr != "" {
				p.f("- %s at %s: %s\n", faultName(f), clock(f.Injected), f.InjectErr)
			}
		}
	}

	if len(v.Overlaps) > 0 {
		p.f("\n## Overlapping tenures\n\n")
		for _, o := range v.Overlaps {
			status := "VIOLATION (" + o.Unexcused + ")"
			switch {
			case o.Excused:
				status = "EXCUSED (" + excuseNote(o) + ", fenced)"
			case o.Excuse != nil:
				status = "VIOLATION (" + excuseNote(o) + ", not fenced)"
			}
			p.f("- %s: %s token %d and %s token %d, %s..%s (%s); %d stale writes refused\n", status, o.A.ID, o.A.Token, o.B.ID, o.B.Token,
				clock(o.Start), clock(o.End), o.End.Sub(o.Start).Round(time.Millisecond), o.Refused)
		}
	}

	p.f("\n## Violations (%d)\n\n", len(v.Violations))
	if len(v.Violations) == 0 {
		p.f("none\n")
	}
	lines := timelineLines(r)
	for i, x := range v.Violations {
		p.f("### %d. %s at %s", i+1, x.Rule, clock(x.At))
		if len(x.Replicas) > 0 {
			p.f(" (%s)", strings.Join(x.Replicas, ", "))
		}
		p.f("\n\n%s\n\nTimeline %s..%s:\n\n```\n", x.Detail, clock(x.At.Add(-timelineAround)), clock(x.At.Add(timelineAround)))
		n := 0
		for _, l := range lines {
			if !l.at.Before(x.At.Add(-timelineAround)) && !l.at.After(x.At.Add(timelineAround)) {
				p.f("%s\n", l.text)
				n++
			}
		}
		if n == 0 {
			p.f("(no events)\n")
		}
		p.f("```\n\n")
	}

	if v.OK() {
		p.f("\nRESULT: PASS\n")
	} else {
		p.f("\nRESULT: FAIL (%d violations)\n", len(v.Violations))
	}
	return p.err
}

type line struct {
	at   time.Time
	text string
}

// timelineLines merges the hook timeline with the campaign's own events
// (faults, frozen and hook-fault windows, exits, changes of a replica's
// /primary answer, the store's telling decisions) in time order, each line
// formatted like timeline.Event.String(): clock, event, replica, details.
func timelineLines(r *Record) []line {
	var ls []line
	add := func(at time.Time, format string, args ...any) {
		if !at.IsZero() {
			ls = append(ls, line{at, clock(at) + " " + fmt.Sprintf(format, args...)})
		}
	}
	for _, e := range r.Timeline {
		ls = append(ls, line{e.At, e.String()})
	}
	for _, f := range r.Faults {
		target := f.Target
		if target == "" {
			target = "cluster"
		}
		if f.InjectErr != "" {
			add(f.Injected, "fault-inject-failed %s #%d %s: %s", target, f.Seq, f.Kind, f.InjectErr)
			continue
		}
		add(f.Injected, "fault-inject %s #%d %s primary=%t", target, f.Seq, f.Kind, f.Primary)
		add(f.Healed, "fault-heal %s #%d %s", target, f.Seq, f.Kind)
		add(f.PrimaryLost, "primary-lost #%d", f.Seq)
		add(f.NextPrimary, "next-primary #%d", f.Seq)
		add(f.Recovered, "recovered #%d", f.Seq)
	}
	for _, w := range r.Frozen {
		add(w.Start, "frozen-start %s", w.Replica)
		add(w.End, "frozen-end %s (with grace)", w.Replica)
	}
	for _, w := range r.HookFaults {
		add(w.Start, "hookfault-start %s %s", w.Replica, w.Kind)
		add(w.End, "hookfault-end %s %s (with grace)", w.Replica, w.Kind)
	}
	for _, x := range r.Exits {
		add(x.At, "exit %s code=%d injected=%t graceful=%t", x.Replica, x.Code, x.Injected, x.Graceful)
	}
	// /primary answers only where they change per replica: every 20 ms
	// would drown the hook events.
	samples := slices.Clone(r.Samples)
	slices.SortStableFunc(samples, func(a, b Sample) int { return a.Sent.Compare(b.Sent) })
	last := map[string]int{}
	for _, s := range samples {
		if prev, ok := last[s.Replica]; !ok || prev != s.Code {
			add(s.Received, "primary-probe %s code=%d (sent %s)", s.Replica, s.Code, clock(s.Sent))
		}
		last[s.Replica] = s.Code
	}
	// Store decisions only where they matter: the first accept of each
	// token, accepts below the fence (stale) and refusals. The fence is
	// the log's own, as the checker's; the store's Highest is only shown.
	var fence int64
	for _, w := range r.Writes {
		if !fencingDecision(w) {
			continue
		}
		who := strings.TrimPrefix(via(w.Via, w.Replica), ", ")
		switch {
		case !w.Accepted:
			add(w.At, "store-refuse %s token=%d value=%d fence=%d highest=%d %s", decisionKind(w), w.Token, w.Value, fence, w.Highest, who)
		case w.Token > fence:
			add(w.At, "store-accept %s token=%d value=%d (first with this token) %s", decisionKind(w), w.Token, w.Value, who)
		case w.Token < fence:
			add(w.At, "store-accept-stale %s token=%d value=%d fence=%d highest=%d %s", decisionKind(w), w.Token, w.Value, fence, w.Highest, who)
		}
		if w.Accepted {
			fence = max(fence, w.Token)
		}
	}
	slices.SortStableFunc(ls, func(a, b line) int { return a.at.Compare(b.at) })
	return ls
}

// slowSampleGap is the probe gap the report counts as long: five times
// the 20 ms sampling interval.
const slowSampleGap = 100 * time.Millisecond

// SampleGaps are the gaps between each replica's consecutive probes (by
// Sent), except those spanning one of its process exits: a replica not
// running cannot be primary, so nothing went unseen there. A two-primary
// window shorter than a gap can fall between two probes.
func SampleGaps(r *Record) []time.Duration {
	byReplica := map[string][]time.Time{}
	for _, s := range r.Samples {
		byReplica[s.Replica] = append(byReplica[s.Replica], s.Sent)
	}
	var gaps []time.Duration
	for id, sent := range byReplica {
		slices.SortFunc(sent, time.Time.Compare)
		for i := 1; i < len(sent); i++ {
			if slices.ContainsFunc(r.Exits, func(x Exit) bool {
				return x.Replica == id && x.At.After(sent[i-1]) && x.At.Before(sent[i])
			}) {
				continue
			}
			gaps = append(gaps, sent[i].Sub(sent[i-1]))
		}
	}
	return gaps
}

// storeSummary is the store's decisions: writes per route (lb, app) with
// accepted and refused counts and the acks seen, the refused total, and
// the promotes that raised (or failed to raise) the fence.
func storeSummary(r *Record) string {
	type counts struct{ accepted, refused, acked int }
	byVia := map[string]*counts{}
	get := func(v string) *counts {
		if v == "" {
			v = "?"
		}
		if byVia[v] == nil {
			byVia[v] = &counts{}
		}
		return byVia[v]
	}
	var promotes counts
	refused := 0
	for _, w := range r.Writes {
		c := &promotes
		switch decisionKind(w) {
		case "demote":
			continue
		case "promote":
		default:
			c = get(w.Via)
			if !w.Accepted {
				refused++
			}
		}
		if w.Accepted {
			c.accepted++
		} else {
			c.refused++
		}
	}
	for _, a := range r.Acked {
		get(a.Via).acked++
	}
	vias := []string{"lb", "app"}
	var rest []string
	for v := range byVia {
		if !slices.Contains(vias, v) {
			rest = append(rest, v)
		}
	}
	slices.Sort(rest)
	var parts []string
	for _, v := range append(vias, rest...) {
		c := get(v)
		parts = append(parts, fmt.Sprintf("via %s: %d accepted, %d refused (%d acked)", v, c.accepted, c.refused, c.acked))
	}
	return fmt.Sprintf("%s; %d refused in all (fenced); promotes: %d accepted, %d refused",
		strings.Join(parts, "; "), refused, promotes.accepted, promotes.refused)
}

func dur(p Percentiles, d time.Duration) string {
	if p.N == 0 {
		return "-"
	}
	return d.Round(time.Millisecond).String()
}

// printer keeps the first write error, so the report reads as a sequence.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) f(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}
