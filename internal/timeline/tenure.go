package timeline

import (
	"time"

	"github.com/leaderd/leaderd/hooks"
	"github.com/leaderd/leaderd/role"
)

// Tenure is one primary term read off a timeline: from its promote's start
// to the end of the demote that closed it.
type Tenure struct {
	ID         string
	Token      int64
	Start, End time.Time // End is zero while the tenure is open
	EndReason  role.Reason
	// Promoted is when the promote hook ended, successful or not (zero: it
	// has not, or it was killed).
	Promoted time.Time
	// StartSeq and EndSeq are the positions, in the events paired, of the
	// promote start and of the event that closed the tenure (EndSeq is -1
	// while open): the order the hooks wrote them in, which orders events
	// that whole-second stamps cannot.
	StartSeq, EndSeq int
}

// Open says whether no demote has closed the tenure (yet).
func (t Tenure) Open() bool { return t.End.IsZero() }

// Pairing says which event closes a replica's tenure. The zero value is
// the plainest rule: the replica's next demote end, whatever it carried.
type Pairing struct {
	// SameToken closes a tenure only with a demote carrying its token, so
	// the start-up demote (no token) of a replica restarted after a crash
	// leaves the tenure the crash left open.
	SameToken bool
	// OnlyOK closes it only with a demote that succeeded: a failed one
	// is retried and has not demoted the app. For timelines that record
	// failed ends (a file holds none).
	OnlyOK bool
	// FailedIfNoneOK, with OnlyOK, ends a tenure that no successful demote
	// closed at the end of its first failed demote, if it had one: the end
	// the e2e hook-log check has always read for a replica whose demotes
	// all failed before it was killed.
	FailedIfNoneOK bool
	// NextPromoteCloses ends a tenure still open when its replica promotes
	// again, at that promote's start, instead of leaving it open for good.
	NextPromoteCloses bool
}

// Tenures pairs events with the zero Pairing.
func Tenures(evs []Event) []Tenure { return Pairing{}.Tenures(evs) }

// Tenures pairs each promote start with the event that closes it under p,
// in the order of the promote starts in evs.
func (p Pairing) Tenures(evs []Event) []Tenure {
	var out []Tenure
	open := map[string]int{}     // replica id -> index in out
	firstFailed := map[int]int{} // index in out -> seq of its first failed demote end
	for seq, e := range evs {
		i, isOpen := open[e.ID]
		switch {
		case e.Is(hooks.Promote, PhaseStart):
			if isOpen && p.NextPromoteCloses {
				out[i].End, out[i].EndSeq = e.At, seq
			}
			open[e.ID] = len(out)
			out = append(out, Tenure{ID: e.ID, Token: e.Token, Start: e.At, StartSeq: seq, EndSeq: -1})
		case e.Is(hooks.Promote, PhaseEnd):
			if isOpen && out[i].Promoted.IsZero() {
				out[i].Promoted = e.At
			}
		case e.Is(hooks.Demote, PhaseEnd):
			if !isOpen || (p.SameToken && e.Token != out[i].Token) {
				continue
			}
			if p.OnlyOK && !e.OK {
				if _, seen := firstFailed[i]; !seen {
					firstFailed[i] = seq
				}
				continue
			}
			out[i].End, out[i].EndReason, out[i].EndSeq = e.At, e.Reason, seq
			delete(open, e.ID)
		}
	}
	if p.OnlyOK && p.FailedIfNoneOK {
		for i, seq := range firstFailed {
			if out[i].Open() {
				out[i].End, out[i].EndReason, out[i].EndSeq = evs[seq].At, evs[seq].Reason, seq
			}
		}
	}
	return out
}
