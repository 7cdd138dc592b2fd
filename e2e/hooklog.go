//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"
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
	ID       string // replica: "app1"
	Hook     string // "promote" or "demote"
	Reason   string
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

// PTenure is one tenure in the precise timeline: a promote run and the
// demote run that ended the same token on the same replica.
type PTenure struct {
	ID      string
	Token   int64
	Promote HookRun
	Demote  *HookRun // nil: no demote (still primary, or crashed)
}

// Ended is when the tenure's demote ended (zero if it did not).
func (t PTenure) Ended() time.Time {
	if t.Demote == nil {
		return time.Time{}
	}
	return t.Demote.End
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
			run := HookRun{ID: id, Hook: kv["hook"], Reason: kv["reason"], Start: at, ExitCode: -1}
			switch {
			case run.Hook == "promote":
				run.Token = electedToken
			case run.Reason != "startup":
				run.Token = stepDownToken
			}
			open = len(runs)
			runs = append(runs, run)
		case "hook ended":
			if open >= 0 && runs[open].Hook == kv["hook"] {
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

// PTenures pairs each promote run with the same replica's demote run for
// the same token, in order of promote start.
func PTenures(runs []HookRun) []PTenure {
	var tenures []PTenure
	for _, r := range runs {
		if r.Hook != "promote" {
			continue
		}
		t := PTenure{ID: r.ID, Token: r.Token, Promote: r}
		for _, d := range runs {
			// The last successful demote of the tenure (a failed one is
			// retried).
			if d.ID == r.ID && d.Hook == "demote" && d.Token == r.Token && d.Start.After(r.Start) {
				d := d
				if t.Demote == nil || d.ExitCode == 0 {
					t.Demote = &d
				}
				if d.ExitCode == 0 {
					break
				}
			}
		}
		tenures = append(tenures, t)
	}
	return tenures
}

// CheckPTenures verifies, on the precise timeline, that fencing tokens
// strictly increase from one tenure to the next and that every tenure's
// demote ended before the next tenure's promote started. exempt lists
// tokens whose tenure may end late or never, with why: a crashed replica
// (no demote ran) or a frozen one (it demotes when it wakes, after the
// next tenure began; the apps' fencing covers that).
func CheckPTenures(tenures []PTenure, exempt map[int64]string) error {
	for i := 1; i < len(tenures); i++ {
		prev, cur := tenures[i-1], tenures[i]
		if cur.Token <= prev.Token {
			return fmt.Errorf("fencing token did not increase: %s %d then %s %d", prev.ID, prev.Token, cur.ID, cur.Token)
		}
		if _, ok := exempt[prev.Token]; ok {
			continue
		}
		end := prev.Ended()
		if end.IsZero() {
			return fmt.Errorf("tenure %s %d never demoted, yet %s %d began at %s", prev.ID, prev.Token, cur.ID, cur.Token, cur.Promote.Start.Format("15:04:05.000000"))
		}
		if !end.Before(cur.Promote.Start) {
			return fmt.Errorf("tenures overlap: %s %d's demote ended at %s, %s %d's promote started at %s",
				prev.ID, prev.Token, end.Format("15:04:05.000000"), cur.ID, cur.Token, cur.Promote.Start.Format("15:04:05.000000"))
		}
	}
	return nil
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
