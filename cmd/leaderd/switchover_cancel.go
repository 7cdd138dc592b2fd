package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/leaderd/leaderd/election"
)

// The state of a switchover request, as status and --cancel show it.
const (
	requestScheduled = "scheduled" // live, for the leading tenure, not yet due
	requestPending   = "pending"   // due, live, for the leading tenure: being acted on
	requestExpired   = "expired"   // past its expiry: ignored
	requestStale     = "stale"     // names a tenure that does not lead now: ignored
)

// requestState is what r amounts to with cands leading (the first leads)
// at now.
func requestState(r *election.Request, cands []election.Candidate, now time.Time) string {
	switch {
	case len(cands) == 0 || !r.For(cands[0]):
		return requestStale
	case !r.Live(now):
		return requestExpired
	case !r.Due(now):
		return requestScheduled
	}
	return requestPending
}

// statusSwitchover is the switchover request in `leaderd status --json`.
type statusSwitchover struct {
	From         string    `json:"from"`
	FencingToken int64     `json:"fencing_token"`
	To           string    `json:"to"`
	Requested    time.Time `json:"requested"`
	At           time.Time `json:"at,omitzero"` // absent: at once
	Expires      time.Time `json:"expires"`
	// State is scheduled, pending, expired or stale (names a tenure that
	// does not lead now: ignored).
	State string `json:"state"`
}

// switchoverStatus is r as status shows it; nil when there is none.
func switchoverStatus(r *election.Request, cands []election.Candidate, now time.Time) *statusSwitchover {
	if r == nil {
		return nil
	}
	return &statusSwitchover{From: r.From, FencingToken: r.FencingToken, To: r.To,
		Requested: r.Requested, At: r.At, Expires: r.Expires, State: requestState(r, cands, now)}
}

// switchoverTurn is when s changes state by the clock alone: its at while
// scheduled, its expiry while pending; zero when never (none, expired,
// stale).
func switchoverTurn(s *statusSwitchover, now time.Time) time.Time {
	switch {
	case s == nil:
		return time.Time{}
	case s.State == requestScheduled && now.Before(s.At):
		return s.At
	case s.State == requestScheduled || s.State == requestPending:
		return s.Expires
	}
	return time.Time{}
}

// switchoverLine is one line saying what the request is:
// "db-1 (token 41) -> db-2 at 2026-12-01T02:00:00Z (in 9m0s), expires
// 2026-12-01T02:00:30Z: scheduled".
func switchoverLine(s *statusSwitchover, now time.Time) string {
	when := ""
	if !s.At.IsZero() {
		when = " at " + s.At.UTC().Format(time.RFC3339)
		if now.Before(s.At) {
			when += fmt.Sprintf(" (in %s)", durationRounded(s.At.Sub(now)))
		}
	}
	return fmt.Sprintf("%s (token %d) -> %s%s, expires %s: %s",
		s.From, s.FencingToken, s.To, when, s.Expires.UTC().Format(time.RFC3339), s.State)
}

// printSwitchover adds the switchover line to status's text.
func printSwitchover(w io.Writer, s *statusSwitchover, now time.Time) {
	if s != nil {
		fmt.Fprintf(w, "switchover:\t%s\n", switchoverLine(s, now))
	}
}

// cancelSwitchover deletes the switchover request as read, whatever its
// state, and says what it deleted. With none, it says so and succeeds:
// the end state asked for holds. A request that changed between the read
// and the delete (handled, or replaced) is left alone: exit 1.
func cancelSwitchover(ctx context.Context, c *controlRun) error {
	ctl, err := c.control(ctx)
	if err != nil {
		return err
	}
	if ctl.Switchover == nil {
		fmt.Fprintln(c.out, "no switchover request to cancel")
		return nil
	}
	cands, err := c.candidates(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	shown := switchoverStatus(ctl.Switchover, cands, now)
	cctx, cancel := context.WithTimeout(ctx, statusCallTimeout)
	err = c.store.CancelSwitchover(cctx, ctl.Switchover)
	cancel()
	switch {
	case errors.Is(err, election.ErrRequestChanged):
		return errors.New("the switchover request changed since it was read (handled, cancelled or replaced); nothing deleted: see leaderd status")
	case err != nil:
		return etcdError(c.endpoints, err)
	}
	fmt.Fprintf(c.out, "cancelled switchover: %s\n", switchoverLine(shown, now))
	return nil
}
