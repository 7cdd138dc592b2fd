package sidecar

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/role"
)

// slowYieldLog stands for any delay (preemption, a slow log handler)
// between waitReady's notReady() and its untilExpiry(): it holds the
// "not campaigning why=yielding" record until the switchover has expired.
type slowYieldLog struct {
	slog.Handler
	expires time.Time
}

func (h slowYieldLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "not campaigning" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "why" && a.Value.String() == string(role.PhaseYielding) {
				// Wait for the clock itself: the condition under test.
				time.Sleep(time.Until(h.expires) + 50*time.Millisecond)
			}
			return true
		})
	}
	return h.Handler.Handle(ctx, r)
}

func (h slowYieldLog) Enabled(context.Context, slog.Level) bool { return true }

func (h slowYieldLog) WithAttrs(as []slog.Attr) slog.Handler {
	return slowYieldLog{Handler: h.Handler.WithAttrs(as), expires: h.expires}
}

// A bystander yielding to a switchover campaigns again once the request
// expires, however late in waitReady's iteration the expiry falls. A
// request that expired between notReady() and untilExpiry() used to leave
// no timer and no wake-up: the replica yielded until some unrelated control
// or health event, and the election could be stranded.
func TestYieldEndsWhenSwitchoverExpiresMidCheck(t *testing.T) {
	cl := newCalls()
	el := &fakeElector{calls: cl, cands: make(chan *fakeCandidacy, 16), control: make(chan election.Control)}
	expires := time.Now().Add(500 * time.Millisecond)
	logger := slog.New(slowYieldLog{Handler: slog.DiscardHandler, expires: expires})
	cfg := DefaultConfig()
	cfg.Election, cfg.ID = "e", "me"
	cfg.Listen = "off" // tests call Handler directly; port 8008 may be taken
	sc := newSidecar(cfg, logger, el, &fakeHook{calls: cl}, &fakeHook{calls: cl})
	sc.newBackOff = func() backoff.BackOff { return backoff.NewConstantBackOff(time.Millisecond) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sc.Run(ctx) }()
	t.Cleanup(func() {
		sc.Abort()
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return")
		}
	})

	// Control keys not read yet: connecting (the pending wake-up is used up).
	waitUntil(t, "phase connecting", func() bool { return sc.Status().Phase == role.PhaseConnecting })
	// A switchover between two other replicas: this one yields until it expires.
	sc.state.setLeader(candidates("x", "me", "y"))
	el.control <- election.Control{Switchover: &election.Request{From: "x", To: "y", FencingToken: 1,
		Requested: time.Now(), Expires: expires}}
	// Nothing else happens: no control event, no health event. The replica
	// must campaign on its own once the request has expired.
	cl.waitFor(t, "campaign", 1)
}
