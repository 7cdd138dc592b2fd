package demo

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/leaderd/leaderd/internal/timeline"
)

// logTailLines is how much of each replica's log a failed demo prints.
const logTailLines = 15

// printer serialises the demo's output: the main flow, the role watch and
// (when verbose) the replicas' logs all write through it.
type printer struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func newPrinter(w io.Writer) *printer { return &printer{w: w, start: time.Now()} }

// rel formats t as the time since the demo started.
func (p *printer) rel(t time.Time) string {
	return fmt.Sprintf("+%.3fs", t.Sub(p.start).Seconds())
}

// event prints one line stamped with the time since the start and who.
func (p *printer) event(who, format string, args ...any) {
	line := fmt.Sprintf("  %8s  %-5s  %s\n", p.rel(time.Now()), who, fmt.Sprintf(format, args...))
	_, _ = p.Write([]byte(line))
}

// say prints a line of prose.
func (p *printer) say(format string, args ...any) {
	_, _ = p.Write([]byte(fmt.Sprintf(format, args...) + "\n"))
}

// Write lets the replicas' log lines through (Options.Verbose). Write
// errors are ignored by the callers: the demo's output is best effort.
func (p *printer) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.w.Write(b)
}

// action is something the demo did to a replica, shown in the timeline.
type action struct {
	at   time.Time
	id   string
	what string
}

func (d *demo) printTimeline(evs []timeline.Event) {
	d.p.say("\nHook timeline (written by the example hooks; times since the demo started):\n")
	reasonW := len("reason")
	for _, e := range evs {
		reasonW = max(reasonW, len(e.Reason))
	}
	row := "  %8s  %-7s  %-7s  %-5s  %-*s  %s\n"
	var b strings.Builder
	fmt.Fprintf(&b, row, "time", "replica", "hook", "phase", reasonW, "reason", "fencing token")
	// Hooks append in one write each, so the file is nearly in time order;
	// replicas racing to append can swap neighbours.
	evs = slices.Clone(evs)
	slices.SortStableFunc(evs, func(a, b timeline.Event) int { return a.At.Compare(b.At) })
	acts := d.actions
	for _, e := range evs {
		for len(acts) > 0 && acts[0].at.Before(e.At) {
			fmt.Fprintf(&b, "  %8s  %-7s  ** %s\n", d.p.rel(acts[0].at), acts[0].id, acts[0].what)
			acts = acts[1:]
		}
		token := "-"
		if e.Token != 0 {
			token = fmt.Sprint(e.Token)
		}
		fmt.Fprintf(&b, row, d.p.rel(e.At), e.ID, e.Hook, e.Phase, reasonW, e.Reason, token)
	}
	for _, a := range acts {
		fmt.Fprintf(&b, "  %8s  %-7s  ** %s\n", d.p.rel(a.at), a.id, a.what)
	}
	_, _ = d.p.Write([]byte(b.String()))
}

// summary prints the measured times and the safety checks, and returns an
// error naming every check that failed.
func (d *demo) summary(evs []timeline.Event) error {
	tenures := timeline.Tenures(evs)
	tokensErr := checkTokens(tenures)
	overlapErr := checkOverlap(tenures, d.crashed, d.actionAt(d.crashed.ID, "SIGKILL"))

	d.p.say("\nSummary\n")
	d.p.say("  hand-off   %-8s graceful stop: %s's demote ended -> %s's promote started",
		round(d.handOff.took), d.handOff.from, d.handOff.to)
	d.p.say("  failover   %-8s crash: %s killed -> %s's promote started (lease TTL %s)",
		round(d.failover.took), d.failover.from, d.failover.to, d.opts.TTL)
	tokens := make([]string, len(tenures))
	for i, t := range tenures {
		tokens[i] = fmt.Sprint(t.Token)
	}
	if tokensErr == nil {
		d.p.say("  tokens     ok       fencing tokens %s: strictly increasing", strings.Join(tokens, " < "))
	} else {
		d.p.say("  tokens     FAILED   %v", tokensErr)
	}
	if overlapErr == nil {
		d.p.say("  tenures    ok       %d tenures, no two overlap: each promote started after the", len(tenures))
		d.p.say("                      previous primary's demote ended, except after the crash:")
		d.p.say("                      %s (token %d) could not demote; nobody promoted until its", d.crashed.ID, d.crashed.Token)
		d.p.say("                      lease expired, and its lower fencing token lets the app")
		d.p.say("                      reject anything a stale %s might still send.", d.crashed.ID)
	} else {
		d.p.say("  tenures    FAILED   %v", overlapErr)
	}
	if err := errors.Join(tokensErr, overlapErr); err != nil {
		d.p.say("\nSome checks FAILED.")
		return fmt.Errorf("demo: %w", err)
	}
	d.p.say("\nAll checks passed.")
	return nil
}

func (d *demo) actionAt(id, prefix string) time.Time {
	for _, a := range d.actions {
		if a.id == id && strings.HasPrefix(a.what, prefix) {
			return a.at
		}
	}
	return time.Time{}
}

// checkTokens: each tenure's fencing token is above the previous one's.
func checkTokens(tenures []timeline.Tenure) error {
	if vs := timeline.TokenInversions(tenures); len(vs) > 0 {
		v := vs[0]
		return fmt.Errorf("fencing token %d of %s is not above %d of %s", v.Next.Token, v.Next.ID, v.Prev.Token, v.Prev.ID)
	}
	return nil
}

// checkOverlap: every tenure starts after every earlier one ended. The
// crashed primary's tenure never ends on the timeline (no demote); it is
// taken to end at the kill.
func checkOverlap(tenures []timeline.Tenure, crashed timeline.Event, killAt time.Time) error {
	tenures = slices.Clone(tenures)
	for i, t := range tenures {
		if t.Open() && t.ID == crashed.ID && t.Token == crashed.Token {
			tenures[i].End = killAt
		}
	}
	var errs []error
	for _, o := range timeline.Overlaps(tenures, timeline.Rules{}) {
		errs = append(errs, fmt.Errorf("%s (token %d) promoted while %s (token %d) had not demoted",
			o.B.ID, o.B.Token, o.A.ID, o.A.Token))
	}
	return errors.Join(errs...)
}

// printLogTails shows the end of each replica's log, which the removal of
// the working directory would otherwise take away.
func (d *demo) printLogTails() {
	ids := slices.Sorted(maps.Keys(d.byID))
	for _, id := range ids {
		f, err := os.Open(filepath.Join(d.dir, id+".log"))
		if err != nil {
			continue
		}
		var lines []string
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if len(lines) > logTailLines {
				lines = lines[1:]
			}
		}
		f.Close()
		if len(lines) == 0 {
			continue
		}
		d.p.say("\nLast lines of %s's log:", id)
		for _, l := range lines {
			d.p.say("  %s | %s", id, l)
		}
	}
}

func round(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

func joinIDs(ids []string) string { return strings.Join(ids, ", ") }
