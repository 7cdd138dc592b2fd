package sidecar

import (
	"context"
	"time"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/role"
)

// stepDownCause ends a tenure's context when the sidecar ends the tenure
// itself: a stop, a failed promote, or a reason found while serving. A
// resign or switchover request it answers goes with it, to be cleared once
// handled.
type stepDownCause struct {
	reason  role.Reason
	request *election.Request // nil: none
}

func (c *stepDownCause) Error() string { return "stepping down: " + string(c.reason) }

// StepDownReason is the reason the step-down reports.
func (c *stepDownCause) StepDownReason() role.Reason { return c.reason }

// stepDownFor is the cause for reason, answering no request.
func stepDownFor(reason role.Reason) *stepDownCause { return &stepDownCause{reason: reason} }

// serve holds the tenure until tctx ends (the tenure was lost, or the
// sidecar stops), or until it finds a reason to step down, which it
// returns (nil: tctx ended). While the election is paused no role
// changes but a forced one: resign and switchover requests are ignored,
// and so is an unhealthy app.
func (s *Sidecar) serve(tctx context.Context, el elector, token int64) *stepDownCause {
	var ignored int64 // the control request last logged as ignored
	fb := s.newFailback(el, token)
	defer fb.stop()
	for {
		c := s.controlState()
		now := time.Now()
		resign := s.state.takeResign(token)
		if c.Paused {
			if r := dueRequest(c, now); r != nil && r.Revision != ignored {
				s.logger.Info("request ignored: the election is paused", "from", r.From, "to", r.To)
				ignored = r.Revision
			}
			if resign {
				s.logger.Info("POST /resign ignored: the election is paused")
			}
		} else {
			if !s.state.appHealthy() {
				return stepDownFor(role.ReasonUnhealthy)
			}
			if resign {
				return stepDownFor(role.ReasonResigned)
			}
			if r := c.Resign; r.Due(now) && r.From == s.cfg.ID && r.FencingToken == token {
				return &stepDownCause{reason: role.ReasonResigned, request: r}
			}
			// A request acts only once due (a scheduled one at its at). A
			// switchover waits until the target is next in line: the other
			// standbys yield, so the target and nobody else takes over.
			if r := c.Switchover; r.Due(now) && r.From == s.cfg.ID && r.FencingToken == token && s.state.nextCandidate() == r.To {
				return &stepDownCause{reason: role.ReasonSwitchover, request: r}
			}
			// Failback asks for a switchover only while no request for this
			// tenure is pending, due or scheduled: an operator's, or its own,
			// is respected.
			if !pendingFor(c.Resign, s.cfg.ID, token, now) && !pendingFor(c.Switchover, s.cfg.ID, token, now) {
				fb.check(tctx, now)
			} else {
				// It may expire unanswered, by the clock alone: look again then.
				for _, r := range []*election.Request{c.Resign, c.Switchover} {
					if pendingFor(r, s.cfg.ID, token, now) {
						fb.wakeAt(r.Expires, now)
					}
				}
			}
		}
		due, stopDue := s.untilDue(func(r *election.Request) bool { return r.From == s.cfg.ID && r.FencingToken == token })
		select {
		case <-tctx.Done():
			stopDue()
			return nil
		case <-s.resignRequests:
		case <-s.state.health.Changes():
		case <-s.controlChanged:
		case <-s.candidatesChanged:
		case <-due:
		case <-fb.wake():
		}
		stopDue()
	}
}

// dueRequest is the due resign or switchover request, if any.
func dueRequest(c election.Control, now time.Time) *election.Request {
	if c.Resign.Due(now) {
		return c.Resign
	}
	if c.Switchover.Due(now) {
		return c.Switchover
	}
	return nil
}

// pendingFor reports whether r is live (due or not yet) and names the
// tenure (id, token).
func pendingFor(r *election.Request, id string, token int64, now time.Time) bool {
	return r.Live(now) && r.From == id && r.FencingToken == token
}
