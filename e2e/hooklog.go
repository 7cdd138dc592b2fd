//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/leaderd/leaderd/hooks"
	"github.com/leaderd/leaderd/internal/timeline"
	"github.com/leaderd/leaderd/role"
)

// The precise hook timeline. The shared timeline file (timeline.go) has
// whole-second stamps with the busybox image, too coarse to order a demote
// and the next promote. The sidecars' own logs are precise and complete:
// `docker logs --timestamps` stamps every line with the docker daemon's
// nanosecond clock (the host's clock, the same the tests use) when it reads
// it, a few microseconds after leaderd wrote it; the logs survive a pause, a
// network disconnect, a kill and a restart of the container. Per replica:
//
//	msg=elected fencing_token=N         the next promote is tenure N
//	msg="stepping down" fencing_token=N the next demote ends tenure N
//	msg="hook started" hook=H reason=R  a hook run begins
//	msg="hook ended" exit_code=C        ... and ends (hooks never overlap)
//	msg=starting                        the sidecar (re)started
//
// The start-up demote has token 0.

// HookRun is one run of a hook, from a sidecar's log.
type HookRun struct {
	ID       string      // replica: "app1"
	Hook     hooks.Event // promote or demote
	Reason   role.Reason
	Token    int64     // the tenure that begins or ends; 0 at start-up
	Start    time.Time // "hook started"
	End      time.Time // "hook ended"; zero if it never ended (killed)
	ExitCode int       // -1 if it never ended
}

func (r HookRun) String() string {
	end := "never"
	if !r.End.IsZero() {
		end = r.End.Format("15:04:05.000000")
	}
	return fmt.Sprintf("%s %-7s %-16s token %-4d %s .. %s exit %d", r.ID, r.Hook, r.Reason, r.Token,
		r.Start.Format("15:04:05.000000"), end, r.ExitCode)
}

// HookRuns reads all three sidecars' logs and returns their hook runs in
// order of start.
func (s *Stack) HookRuns(ctx context.Context) ([]HookRun, error) {
	var runs []HookRun
	for _, r := range s.Replicas {
		out, err := s.containerLogs(ctx, r.Sidecar)
		if err != nil {
			return nil, err
		}
		runs = append(runs, parseHookRuns(r.ID, out)...)
	}
	sort.SliceStable(runs, func(i, j int) bool { return runs[i].Start.Before(runs[j].Start) })
	return runs, nil
}

// containerLogs is `docker logs --timestamps` of a service, stdout and
// stderr together, lines sorted by their stamps.
func (s *Stack) containerLogs(ctx context.Context, service string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, CommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", "logs", "--timestamps", s.ID(service))
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("docker logs %s: %w: %s", service, err, lastLines(buf.String(), 3))
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	// Two pipes: restore the order by the daemon's stamps (RFC 3339 with a
	// fixed-width fraction sorts as text).
	sort.SliceStable(lines, func(i, j int) bool { return stampOf(lines[i]) < stampOf(lines[j]) })
	return strings.Join(lines, "\n"), nil
}

func stampOf(line string) string {
	stamp, _, _ := strings.Cut(line, " ")
	return stamp
}

func parseHookRuns(id, logs string) []HookRun {
	var runs []HookRun
	open := -1 // index of the running hook, -1 if none
	var electedToken, stepDownToken int64
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		stamp, rest, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, stamp)
		if err != nil {
			continue
		}
		kv := logfmt(rest)
		switch kv["msg"] {
		case "starting":
			open, electedToken, stepDownToken = -1, 0, 0
		case "elected":
			electedToken, _ = strconv.ParseInt(kv["fencing_token"], 10, 64)
		case "stepping down":
			stepDownToken, _ = strconv.ParseInt(kv["fencing_token"], 10, 64)
		case "hook started":
			run := HookRun{ID: id, Hook: hooks.Event(kv["hook"]), Reason: role.Reason(kv["reason"]), Start: at, ExitCode: -1}
			switch {
			case run.Hook == hooks.Promote:
				run.Token = electedToken
			case run.Reason != role.ReasonStartup:
				run.Token = stepDownToken
			}
			open = len(runs)
			runs = append(runs, run)
		case "hook ended":
			if open >= 0 && runs[open].Hook == hooks.Event(kv["hook"]) {
				runs[open].End = at
				runs[open].ExitCode, _ = strconv.Atoi(kv["exit_code"])
				open = -1
			}
		}
	}
	return runs
}

// logfmt parses slog's text format: key=value, value maybe "quoted".
func logfmt(s string) map[string]string {
	kv := map[string]string{}
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			break
		}
		key := s[:eq]
		s = s[eq+1:]
		var val string
		if strings.HasPrefix(s, `"`) {
			if q, err := strconv.QuotedPrefix(s); err == nil {
				val, _ = strconv.Unquote(q)
				s = s[len(q):]
			} else {
				val, s = s, ""
			}
		} else {
			val, s, _ = strings.Cut(s, " ")
		}
		kv[key] = val
	}
	return kv
}

// RunEvents are the hook runs as timeline events, in time order: each run's
// start, and its end if it ended (OK: exit 0).
func RunEvents(runs []HookRun) []timeline.Event {
	var evs []timeline.Event
	for _, r := range runs {
		e := timeline.Event{At: r.Start, Hook: r.Hook, Phase: timeline.PhaseStart, ID: r.ID, Token: r.Token, Reason: r.Reason}
		evs = append(evs, e)
		if !r.End.IsZero() {
			e.At, e.Phase, e.OK = r.End, timeline.PhaseEnd, r.ExitCode == 0
			evs = append(evs, e)
		}
	}
	slices.SortStableFunc(evs, func(a, b timeline.Event) int { return a.At.Compare(b.At) })
	return evs
}

// PTenures pairs each promote run with the same replica's first
// successful demote run for the same token (a failed one is retried), or
// its first failed one when none succeeded, in order of promote start:
// the precise timeline's tenures.
func PTenures(runs []HookRun) []timeline.Tenure {
	return timeline.Pairing{SameToken: true, OnlyOK: true, FailedIfNoneOK: true}.Tenures(RunEvents(runs))
}

// CheckPTenures verifies, on the precise timeline, that fencing tokens
// strictly increase from one tenure to the next and that every tenure's
// demote ended strictly before the next tenure's promote started (both
// stamped by the docker daemon's clock). exempt lists tokens whose tenure
// may end late or never, with why: a crashed replica (no demote ran) or a
// frozen one (it demotes when it wakes, after the next tenure began; the
// apps' fencing covers that).
func CheckPTenures(tenures []timeline.Tenure, exempt map[int64]string) error {
	excused := func(t timeline.Tenure) bool { _, ok := exempt[t.Token]; return ok }
	return timeline.Check(tenures, timeline.Rules{Excused: excused, MinGap: time.Nanosecond})
}

// FormatRuns renders hook runs one per line, for failure messages.
func FormatRuns(runs []HookRun) string {
	var b strings.Builder
	for _, r := range runs {
		fmt.Fprintf(&b, "  %s\n", r)
	}
	return b.String()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
