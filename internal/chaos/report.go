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
// goes into RELIABILITY.md): the header with the seed and replay command,
// faults by kind, recovery and failover figures per kind, slow recoveries,
// excused overlaps, every violation with the timeline around it, and a
// last line "RESULT: PASS" or "RESULT: FAIL (N violations)". An empty
// replay prints ReplayCommand(r.Seed, len(r.Faults)).
func WriteReport(w io.Writer, r *Record, v Verdict, replay string) error {
	if replay == "" {
		replay = ReplayCommand(r.Seed, len(r.Faults))
	}
	p := &printer{w: w}
	p.f("# Chaos campaign, seed %d\n\n", r.Seed)
	p.f("- seed: %d\n", r.Seed)
	p.f("- replay: `%s`\n", replay)
	p.f("- run: %s to %s (%s)\n", r.Started.Format(time.RFC3339), r.Ended.Format(time.RFC3339), r.Ended.Sub(r.Started).Round(time.Millisecond))
	p.f("- replicas: %d (%s)\n", len(r.Replicas), strings.Join(r.Replicas, ", "))
	overlapping, onPrimary := 0, 0
	for _, f := range r.Faults {
		if len(f.Overlaps) > 0 {
			overlapping++
		}
		if f.Primary {
			onPrimary++
		}
	}
	p.f("- faults: %d (%d overlapping others, %d on the primary)\n", len(r.Faults), overlapping, onPrimary)
	bound := "not set (slow recoveries not judged)"
	if r.Bound > 0 {
		bound = r.Bound.String()
	}
	p.f("- recovery bound (TTL + etcd election timeout + 0.5s + hook time): %s\n", bound)
	accepted := 0
	for _, x := range r.Writes {
		if x.Accepted {
			accepted++
		}
	}
	p.f("- tenures: %d; overlapping pairs: %d (%d excused: frozen or hook-faulted, and fenced)\n", len(v.Tenures), len(v.Overlaps), v.FencedOverlaps)
	p.f("- store writes: %d accepted, %d fenced; acks: %d\n", accepted, len(r.Writes)-accepted, len(r.Acked))
	p.f("- /primary samples: %d; concurrent 200 pairs: %d (+%d excused by a frozen replica)\n", len(r.Samples), v.TwoPrimaryPairs, v.ExcusedPairs)

	p.f("\n## Faults by kind\n\n")
	p.f("| kind | count | overlapping | on primary |\n|---|---:|---:|---:|\n")
	for _, k := range v.Figures {
		if k.Kind != GroupOverlapping {
			p.f("| %s | %d | %d | %d |\n", k.Kind, k.Count, k.Overlapping, k.PrimaryTargeted)
		}
	}

	p.f("\n## Recovery and failover per kind\n\n")
	p.f("Recovery: from the fault's heal (the latest heal of it and the faults overlapping it) to exactly one primary serving. ")
	p.f("Failover: from the primary no longer serving to a primary serving again, for faults that hit the primary. ")
	p.f("p99 is nearest-rank: with 100 values or fewer it is the largest. ")
	p.f("Overlapping faults count under their kind and again under %s.\n\n", GroupOverlapping)
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

	if len(v.Overlaps) > 0 {
		p.f("\n## Overlapping tenures\n\n")
		for _, o := range v.Overlaps {
			status := "EXCUSED (frozen or hook-faulted, fenced)"
			if !o.Excused {
				status = "VIOLATION"
			}
			p.f("- %s: %s token %d and %s token %d, %s..%s (%s)\n", status, o.A.ID, o.A.Token, o.B.ID, o.B.Token,
				clock(o.Start), clock(o.End), o.End.Sub(o.Start).Round(time.Millisecond))
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
// formatted like replicas.Event.String(): clock, event, replica, details.
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
		add(w.Start, "hookfault-start %s", w.Replica)
		add(w.End, "hookfault-end %s", w.Replica)
	}
	for _, x := range r.Exits {
		add(x.At, "exit %s code=%d injected=%t", x.Replica, x.Code, x.Injected)
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
	// token, accepts below the highest (stale) and rejections.
	var highest int64
	for _, w := range r.Writes {
		switch {
		case !w.Accepted:
			add(w.At, "store-reject token=%d value=%d highest=%d", w.Token, w.Value, w.Highest)
		case w.Token > highest:
			add(w.At, "store-accept token=%d value=%d (first with this token)", w.Token, w.Value)
		case w.Token < max(highest, w.Highest):
			add(w.At, "store-accept-stale token=%d value=%d highest=%d", w.Token, w.Value, max(highest, w.Highest))
		}
		if w.Accepted {
			highest = max(highest, w.Token)
		}
	}
	slices.SortStableFunc(ls, func(a, b line) int { return a.at.Compare(b.at) })
	return ls
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
