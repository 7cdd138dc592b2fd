//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/leaderd/leaderd/internal/timeline"
)

// The shared hook timeline: the example hooks append one line per hook
// start and end to $HOOK_TIMELINE (format: internal/timeline). The three
// sidecars append to one file on a shared volume, one write per line, so
// the file's order is the order the hooks ran in, across replicas. Stamps
// are unix nanoseconds where the image's date supports %N; busybox built
// without it writes "<seconds>%N", read as whole seconds.

// fileFormat reads every line strictly, with whole-second stamps allowed.
var fileFormat = timeline.ParseOptions{CoarseStamps: true}

// FilePairing ends a tenure with the demote of its own token: the start-up
// demote (no token) of a replica killed while primary and restarted leaves
// the tenure its crash left open, which a scenario must account for.
var FilePairing = timeline.Pairing{SameToken: true}

// FileRules order the file's tenures by line: whole-second stamps cannot
// order a demote and the next promote.
var FileRules = timeline.Rules{ByPosition: true}

// Timeline reads and parses the hook timeline through the first sidecar
// whose container is running (docker exec needs a running container; the
// volume is the same for all three).
func (s *Stack) Timeline(ctx context.Context) ([]timeline.Event, error) {
	raw, err := s.rawTimeline(ctx)
	if err != nil {
		return nil, err
	}
	return timeline.Parse(strings.NewReader(raw), fileFormat)
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
