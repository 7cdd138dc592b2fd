//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// HookEvent is one line the example hooks append to $HOOK_TIMELINE:
//
//	<unix time> <promote|demote>-<start|end> <id> <fencing token or -> <reason>
//
// The three sidecars append to one file on a shared volume, one write per
// line, so the file's order (Seq) is the order the hooks ran in, across
// replicas. Stamps are unix nanoseconds where the image's date supports %N;
// busybox built without it writes "<seconds>%N", read here as whole seconds.
type HookEvent struct {
	Seq    int       // line number, from 0
	At     time.Time // from the stamp; whole seconds with a busybox date
	Hook   string    // "promote" or "demote"
	Phase  string    // "start" or "end"
	ID     string    // the replica: "app1"
	Token  int64     // 0 when "-" (the start-up demote)
	Reason string    // LEADERD_REASON
}

func (e HookEvent) String() string {
	return fmt.Sprintf("#%d %s-%s %s %d %s", e.Seq, e.Hook, e.Phase, e.ID, e.Token, e.Reason)
}

// Timeline reads and parses the hook timeline through the first sidecar
// whose container is running (docker exec needs a running container; the
// volume is the same for all three).
func (s *Stack) Timeline(ctx context.Context) ([]HookEvent, error) {
	raw, err := s.rawTimeline(ctx)
	if err != nil {
		return nil, err
	}
	return ParseTimeline(raw)
}

func (s *Stack) rawTimeline(ctx context.Context) (string, error) {
	var errs []error
	for _, r := range s.Replicas {
		out, err := run(ctx, CommandTimeout, "docker", "exec", s.ID(r.Sidecar), "cat", TimelinePath)
		if err == nil {
			return out, nil
		}
		errs = append(errs, err)
	}
	return "", fmt.Errorf("no sidecar could read %s: %w", TimelinePath, errors.Join(errs...))
}

// ParseTimeline parses the timeline file's text.
func ParseTimeline(raw string) ([]HookEvent, error) {
	var events []HookEvent
	for i, line := range strings.Split(strings.TrimSpace(raw), "\n") {
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 5 {
			return nil, fmt.Errorf("timeline line %d %q: want 5 fields", i+1, line)
		}
		hook, phase, ok := strings.Cut(f[1], "-")
		if !ok {
			return nil, fmt.Errorf("timeline line %d %q: bad event %q", i+1, line, f[1])
		}
		e := HookEvent{Seq: len(events), Hook: hook, Phase: phase, ID: f[2], Reason: f[4]}
		if f[3] != "-" {
			t, err := strconv.ParseInt(f[3], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("timeline line %d %q: bad token: %w", i+1, line, err)
			}
			e.Token = t
		}
		stamp := strings.TrimSuffix(f[0], "%N")
		n, err := strconv.ParseInt(stamp, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("timeline line %d %q: bad stamp: %w", i+1, line, err)
		}
		if stamp == f[0] && len(stamp) > 12 {
			e.At = time.Unix(0, n)
		} else {
			e.At = time.Unix(n, 0)
		}
		events = append(events, e)
	}
	return events, nil
}

// Tenure is one replica's time as primary in the timeline: from its
// promote-start to the end of the demote hook for the same token. End is
// -1 while open: still primary, or the sidecar was killed before it could
// demote (a crash), which a scenario must account for.
type Tenure struct {
	ID         string
	Token      int64
	Start, End int // Seq of promote-start and of demote-end; End -1 if open
}

// Tenures pairs each promote-start with the same replica's demote-end for
// the same token.
func Tenures(events []HookEvent) []Tenure {
	var tenures []Tenure
	open := map[string]int{} // id -> index in tenures
	for _, e := range events {
		switch {
		case e.Hook == "promote" && e.Phase == "start":
			open[e.ID] = len(tenures)
			tenures = append(tenures, Tenure{ID: e.ID, Token: e.Token, Start: e.Seq, End: -1})
		case e.Hook == "demote" && e.Phase == "end":
			if i, ok := open[e.ID]; ok && tenures[i].Token == e.Token {
				tenures[i].End = e.Seq
				delete(open, e.ID)
			}
		}
	}
	return tenures
}

// CheckTenures verifies the two safety properties the timeline shows:
// fencing tokens strictly increase from one tenure to the next, and no
// tenure starts before the previous one has ended (its demote hook
// finished). crashed lists replicas whose open tenure ended by a crash (no
// demote ran); their tenures are not required to end.
func CheckTenures(tenures []Tenure, crashed ...string) error {
	isCrashed := map[string]bool{}
	for _, id := range crashed {
		isCrashed[id] = true
	}
	for i := 1; i < len(tenures); i++ {
		prev, cur := tenures[i-1], tenures[i]
		if cur.Token <= prev.Token {
			return fmt.Errorf("fencing token did not increase: %s %d then %s %d", prev.ID, prev.Token, cur.ID, cur.Token)
		}
		if prev.End < 0 && !isCrashed[prev.ID] {
			return fmt.Errorf("tenure %s %d never ended, yet %s %d began", prev.ID, prev.Token, cur.ID, cur.Token)
		}
		if prev.End > cur.Start {
			return fmt.Errorf("tenures overlap: %s %d ended (#%d) after %s %d began (#%d)", prev.ID, prev.Token, prev.End, cur.ID, cur.Token, cur.Start)
		}
	}
	return nil
}
