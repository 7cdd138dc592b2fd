package election

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leaderd/leaderd/internal/etcdtest"
)

// calledFromCampaign reports whether Campaign is on the caller's stack.
func calledFromCampaign() bool {
	pcs := make([]uintptr, 32)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs)])
	for {
		f, more := frames.Next()
		if strings.HasSuffix(f.Function, "(*Candidacy).Campaign") {
			return true
		}
		if !more {
			return false
		}
	}
}

// hookClock is a jumpClock that runs hook once, at a Now() from Campaign
// after it is armed (skip lets that many pass first).
type hookClock struct {
	*jumpClock
	mu   sync.Mutex
	hook func()
	skip int // Campaign's calls to let pass before the hook runs
}

func (c *hookClock) arm(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hook = f
}

func (c *hookClock) Now() time.Time {
	c.mu.Lock()
	f := c.hook
	if f != nil && !calledFromCampaign() {
		f = nil
	}
	if f != nil && c.skip > 0 {
		c.skip--
		f = nil
	}
	if f != nil {
		c.hook = nil
	}
	c.mu.Unlock()
	if f != nil {
		f()
	}
	return c.jumpClock.Now()
}

// The lease is revoked on the server, and the loop has seen it
// (ErrLeaseNotFound marked), after the campaign's last read but before
// Campaign returns. The campaign must not return a tenure on a lease it
// already knows is lost, whose key is gone: verify checks the lease's error
// last (without that check both tests fail).
func TestCampaignRefusesAWinWhoseLeaseWasLostAfterTheTurnRead(t *testing.T) {
	// Campaign's first reading of the lease clock follows the turn read:
	// the headroom check before verify.
	campaignLosingLeaseAt(t, 0)
}

func TestCampaignRefusesAWinWhoseLeaseWasLostAfterTheLastRead(t *testing.T) {
	// Its second follows the last read: verify's headroom check.
	campaignLosingLeaseAt(t, 1)
}

// campaignLosingLeaseAt revokes and marks the lease lost at Campaign's
// (skip+1)th reading of the lease's clock; on the jump clock nothing else
// reads it meanwhile (only calls from Campaign count).
func campaignLosingLeaseAt(t *testing.T, skip int) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	admin := etcdtest.NewClient(t, srv.Endpoint())
	hc := &hookClock{jumpClock: newJumpClock(), skip: skip}
	opts := testLease
	opts.clock = hc
	c := newCandidacyWith(t, cli, opts)
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	hc.arm(func() {
		if _, err := admin.Revoke(ctx, c.lease.ID()); err != nil {
			t.Error(err)
		}
		c.lease.lost.mark(ErrLeaseNotFound) // what the next renewal answers
		// Let the campaign's Lost watcher cancel its context, as it would
		// have by the time of another request.
		time.Sleep(50 * time.Millisecond)
	})
	r := result(t, campaign(c, ctx, "a"))
	if r.err == nil {
		defer r.ten.Stop()
		resp, err := admin.Get(ctx, c.key)
		if err != nil {
			t.Fatal(err)
		}
		t.Fatalf("Campaign won (token %d) although its lease was lost (%v) and its key gone (%d keys) before it returned",
			r.ten.FencingToken(), c.lease.Err(), len(resp.Kvs))
	}
	t.Logf("refused: %v", r.err)
}
