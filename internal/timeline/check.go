package timeline

import (
	"errors"
	"fmt"
	"time"
)

// Rules say which tenures Overlaps compares and in what order. The zero
// value compares every pair by time, and an open tenure never ends.
type Rules struct {
	// OtherReplicasOnly skips pairs of one replica's own tenures: a tenure
	// it left open is then not held against its next one.
	OtherReplicasOnly bool
	// Excused says a tenure's end is not held against the tenures that
	// started after it: it may end late or never (a crashed replica runs
	// no demote; a frozen one demotes when it wakes, fenced meanwhile; an
	// end that is only the restarted process's start-up demote). It is
	// still compared with the tenures that started before it.
	Excused func(Tenure) bool
	// ByPosition orders by the events' positions (StartSeq, EndSeq), not
	// their stamps: for a file whose whole-second stamps cannot order a
	// demote and the next promote, but whose lines are in write order.
	ByPosition bool
	// MinGap is the least time from a tenure's end to a later one's start
	// (by time only). Zero lets them touch; a positive gap demands that
	// much daylight between them (1ns: the end strictly before the start);
	// a negative one would forgive that much clock skew between stamps
	// taken on different clocks.
	MinGap time.Duration
}

// Overlap is two tenures whose intervals intersect.
type Overlap struct {
	A, B Tenure // A started first: the older primary
	// Start and End are the intersection by time; End is zero when both
	// tenures are open.
	Start, End time.Time
	byPosition bool
}

func (o Overlap) String() string {
	switch {
	case o.byPosition && o.A.Open():
		return fmt.Sprintf("tenure %s token %d never ended, yet %s token %d began (#%d)",
			o.A.ID, o.A.Token, o.B.ID, o.B.Token, o.B.StartSeq)
	case o.byPosition:
		return fmt.Sprintf("tenures overlap: %s token %d ended (#%d) after %s token %d began (#%d)",
			o.A.ID, o.A.Token, o.A.EndSeq, o.B.ID, o.B.Token, o.B.StartSeq)
	}
	d := "for good"
	if !o.End.IsZero() {
		d = "for " + o.End.Sub(o.Start).Round(time.Microsecond).String()
	}
	return fmt.Sprintf("tenures overlap %s: %s token %d [%s, %s] and %s token %d [%s, %s]", d,
		o.A.ID, o.A.Token, clock(o.A.Start), clockOrOpen(o.A.End), o.B.ID, o.B.Token, clock(o.B.Start), clockOrOpen(o.B.End))
}

// Overlaps lists every pair of tenures that intersect under r, in the
// order of ts (each tenure with those after it).
func Overlaps(ts []Tenure, r Rules) []Overlap {
	var out []Overlap
	for i := range ts {
		for j := i + 1; j < len(ts); j++ {
			a, b := ts[i], ts[j]
			if r.OtherReplicasOnly && a.ID == b.ID {
				continue
			}
			if r.startsBefore(b, a) {
				a, b = b, a
			}
			if r.Excused != nil && r.Excused(a) {
				continue
			}
			if !r.intersect(a, b) {
				continue
			}
			out = append(out, Overlap{A: a, B: b, Start: b.Start, End: earliestEnd(a, b), byPosition: r.ByPosition})
		}
	}
	return out
}

func (r Rules) startsBefore(x, y Tenure) bool {
	if r.ByPosition {
		return x.StartSeq < y.StartSeq
	}
	return x.Start.Before(y.Start)
}

// intersect: the later start comes before the earlier end (an open
// tenure never ends). a started no later than b.
func (r Rules) intersect(a, b Tenure) bool {
	if r.ByPosition {
		end := -1 // open
		for _, t := range []Tenure{a, b} {
			if !t.Open() && (end < 0 || t.EndSeq < end) {
				end = t.EndSeq
			}
		}
		return end < 0 || b.StartSeq < end
	}
	end := earliestEnd(a, b)
	return end.IsZero() || b.Start.Before(end.Add(r.MinGap))
}

func earliestEnd(a, b Tenure) time.Time {
	switch {
	case a.Open():
		return b.End
	case b.Open() || a.End.Before(b.End):
		return a.End
	}
	return b.End
}

// Inversion is a tenure whose fencing token is not above the one before.
type Inversion struct{ Prev, Next Tenure }

func (v Inversion) String() string {
	return fmt.Sprintf("fencing token did not increase: %s token %d, then %s token %d", v.Prev.ID, v.Prev.Token, v.Next.ID, v.Next.Token)
}

// TokenInversions lists each tenure, in the order of ts, whose token is
// not above the previous one's: tokens come from new campaign keys, so
// they must strictly increase from one tenure to the next.
func TokenInversions(ts []Tenure) []Inversion {
	var out []Inversion
	for i := 1; i < len(ts); i++ {
		if ts[i].Token <= ts[i-1].Token {
			out = append(out, Inversion{Prev: ts[i-1], Next: ts[i]})
		}
	}
	return out
}

// Check verifies the two safety properties a timeline shows: fencing
// tokens strictly increase along ts, and no two tenures overlap under r.
// Its error names every violation.
func Check(ts []Tenure, r Rules) error {
	var errs []error
	for _, v := range TokenInversions(ts) {
		errs = append(errs, errors.New(v.String()))
	}
	for _, o := range Overlaps(ts, r) {
		errs = append(errs, errors.New(o.String()))
	}
	return errors.Join(errs...)
}

func clock(t time.Time) string { return t.Format("15:04:05.000000") }

func clockOrOpen(t time.Time) string {
	if t.IsZero() {
		return "open"
	}
	return clock(t)
}
