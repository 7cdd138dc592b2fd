package sidecar

import (
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// slowCloseElector hands out candidacies whose Close (the revoke) hangs
// until released, like a revoke sent while etcd is unreachable (bounded by
// cleanupTimeout, 2s, in production).
type slowCloseElector struct {
	*fakeElector
	release chan struct{}
	closing chan struct{}
}

type slowCloseCandidacy struct {
	*fakeCandidacy
	el *slowCloseElector
}

func (e *slowCloseElector) Grant(ctx context.Context) (candidacy, error) {
	c, err := e.fakeElector.Grant(ctx)
	if err != nil {
		return nil, err
	}
	return slowCloseCandidacy{c.(*fakeCandidacy), e}, nil
}

func (c slowCloseCandidacy) Close(ctx context.Context) error {
	select {
	case c.el.closing <- struct{}{}:
	default:
	}
	select {
	case <-c.el.release:
	case <-ctx.Done():
	}
	return c.fakeCandidacy.Close(ctx)
}

// Issue 7 item 14: /standby is 503 for a replica without a lease, also
// while the revoke of its lost lease is in flight (up to cleanupTimeout
// into an etcd outage).
func TestStandbyEndpointDropsWithTheLease(t *testing.T) {
	cl := newCalls()
	el := &slowCloseElector{fakeElector: &fakeElector{calls: cl, cands: make(chan *fakeCandidacy, 16)},
		release: make(chan struct{}), closing: make(chan struct{}, 1)}
	cfg := DefaultConfig()
	cfg.Election, cfg.ID = "e", "me"
	cfg.Listen = "off" // tests call Handler directly; port 8008 may be taken
	sc := newSidecar(cfg, slog.New(slog.DiscardHandler), el, &fakeHook{calls: cl}, &fakeHook{calls: cl})
	sc.newBackOff = func() backoff.BackOff { return backoff.NewConstantBackOff(time.Millisecond) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sc.Run(ctx) }()
	t.Cleanup(func() {
		close(el.release)
		sc.Abort()
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return")
		}
	})
	var c *fakeCandidacy
	select {
	case c = <-el.cands:
	case <-time.After(5 * time.Second):
		t.Fatal("no lease was granted")
	}
	cl.waitFor(t, "campaign", 1)
	if code := httpCode(sc, "/standby"); code != http.StatusOK {
		t.Fatalf("/standby = %d while campaigning", code)
	}
	c.loseLease()
	select {
	case <-el.closing:
	case <-time.After(5 * time.Second):
		t.Fatal("the lost lease was never closed")
	}
	if code := httpCode(sc, "/standby"); code != http.StatusServiceUnavailable {
		t.Fatalf("/standby = %d with the lease lost (status %+v)", code, sc.Status())
	}
}
