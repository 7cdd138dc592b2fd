package timeline

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/leaderd/leaderd/hooks"
	"github.com/leaderd/leaderd/role"
)

// The line format the example hooks append to $HOOK_TIMELINE, one write
// per line so replicas sharing the file do not interleave:
//
//	<unix nanoseconds> <hook>-<start|end> <id> <fencing token or -> <reason>
const lineFields = 5

// ParseOptions say how forgiving Parse is; the zero value is strict.
type ParseOptions struct {
	// SkipPartial skips a line without five fields (a hook still writing
	// it) instead of failing. Callers that must judge every line count
	// the lines themselves.
	SkipPartial bool
	// CoarseStamps reads a stamp of 12 digits or fewer, or one ending in a
	// literal "%N" (a busybox date without %N), as whole seconds. Without
	// it every stamp is nanoseconds.
	CoarseStamps bool
}

// ReadFile parses a timeline file; a missing file is an empty timeline.
func ReadFile(path string, o ParseOptions) ([]Event, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Parse(f, o)
}

// Parse reads timeline lines; empty lines are skipped.
func Parse(r io.Reader, o ParseOptions) ([]Event, error) {
	var evs []Event
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		e, err := parseLine(line, o)
		if errors.Is(err, errPartial) && o.SkipPartial {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("timeline line %d %q: %w", n, line, err)
		}
		evs = append(evs, e)
	}
	return evs, sc.Err()
}

var errPartial = fmt.Errorf("want %d fields", lineFields)

func parseLine(line string, o ParseOptions) (Event, error) {
	f := strings.Fields(line)
	if len(f) != lineFields {
		return Event{}, errPartial
	}
	at, err := parseStamp(f[0], o.CoarseStamps)
	if err != nil {
		return Event{}, fmt.Errorf("bad stamp: %w", err)
	}
	// Split at the first dash: a leader-change hook writes "follow-<phase>".
	hook, phase, ok := strings.Cut(f[1], "-")
	if !ok {
		return Event{}, fmt.Errorf("bad event %q", f[1])
	}
	e := Event{At: at, Hook: hooks.Event(hook), Phase: Phase(phase), ID: f[2], Reason: role.Reason(f[4]), OK: Phase(phase) == PhaseEnd}
	if f[3] != "-" {
		if e.Token, err = strconv.ParseInt(f[3], 10, 64); err != nil {
			return Event{}, fmt.Errorf("bad token: %w", err)
		}
	}
	return e, nil
}

func parseStamp(s string, coarse bool) (time.Time, error) {
	digits := s
	if coarse {
		digits = strings.TrimSuffix(s, "%N")
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	if coarse && (digits != s || len(digits) <= 12) {
		return time.Unix(n, 0), nil
	}
	return time.Unix(0, n), nil
}
