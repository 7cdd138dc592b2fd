package election

import (
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"

	"github.com/leaderd/leaderd/internal/etcdtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TTL 3s, renew 0.75s, lead 1.5s (demote 1s + margin 0.5s).
var testLease = LeaseOptions{TTL: 3 * time.Second, RenewInterval: 750 * time.Millisecond, StepDownLead: 1500 * time.Millisecond}

const bound = 15 * time.Second

// testStore is election "t" under /leaderd; a nil client serves for key
// paths only.
func testStore(cli *clientv3.Client, opts ...ReadOption) *Store {
	return NewStore(cli, "/leaderd", "t", opts...)
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) time.Time {
	t.Helper()
	select {
	case <-ch:
		return time.Now()
	case <-time.After(bound):
		t.Fatalf("timed out waiting for %s", what)
		return time.Time{}
	}
}

func grant(t *testing.T, cli *clientv3.Client) *Lease {
	t.Helper()
	return grantOpts(t, cli, testLease)
}

func grantOpts(t *testing.T, cli *clientv3.Client, opts LeaseOptions) *Lease {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	l, err := Grant(ctx, cli, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = l.Revoke(ctx)
	})
	return l
}

func TestLeaseRenewalMovesTheDeadline(t *testing.T) {
	srv := etcdtest.Start(t)
	clk := newJumpClock()
	l := grantOpts(t, etcdtest.NewClient(t, srv.Endpoint()), leaseOn(testLease, clk))
	first := l.Deadline()
	if got := l.untilSafeDeadline(); got <= 0 || got > testLease.TTL-testLease.StepDownLead {
		t.Fatalf("safe deadline in %s, want within (0, TTL-lead]", got)
	}
	// Outlive the first TTL: renewals must keep it alive and move the
	// deadline. The clock jumps to each renewal instead of waiting for it;
	// etcd answers them for real.
	for renewals := 0; !l.Deadline().After(first.Add(testLease.TTL)); renewals++ {
		if renewals > 2*int(testLease.TTL/testLease.RenewInterval) {
			t.Fatalf("deadline never moved past one TTL in %d renewals", renewals)
		}
		jumpToRenewal(t, l, clk) // fails if the lease is lost meanwhile
	}
}

// A renewal is announced only once the guard has moved to the renewed
// deadline: a waiter woken by it that then goes past the old safe deadline
// (here the jump clock, while a slow OnRenew holds the loop) must find
// the lease alive.
func TestRenewalIsAnnouncedAfterTheGuardMoved(t *testing.T) {
	srv := etcdtest.Start(t)
	clk := newJumpClock()
	opts := leaseOn(testLease, clk)
	opts.OnRenew = func(error) { time.Sleep(100 * time.Millisecond) } // a slow state update
	l := grantOpts(t, etcdtest.NewClient(t, srv.Endpoint()), opts)
	for range 3 {
		jumpToRenewal(t, l, clk)
		// Past the safe deadline of the renewal before: only the moved
		// guard keeps the lease.
		clk.jump(testLease.RenewInterval)
		select {
		case <-l.Lost():
			t.Fatalf("lease lost after a renewal: %v", l.Err())
		case <-time.After(150 * time.Millisecond):
		}
	}
}

// The safety rule: a cut-off holder gives up while the server still holds
// its lease, at least StepDownLead before it can expire.
func TestLeaseCutOffIsLostBeforeServerExpiry(t *testing.T) {
	srv := etcdtest.Start(t)
	proxy := etcdtest.StartProxy(t, srv.Endpoint())
	l := grant(t, etcdtest.NewClient(t, proxy.Endpoint()))
	direct := etcdtest.NewClient(t, srv.Endpoint())

	cutOff(t, proxy)
	lostAt := waitClosed(t, l.Lost(), "the lease to be lost")
	if !errors.Is(l.Err(), ErrSafeDeadline) {
		t.Fatalf("lost with %v, want ErrSafeDeadline", l.Err())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ttl, err := direct.TimeToLive(ctx, l.ID())
	if err != nil {
		t.Fatal(err)
	}
	// TimeToLive is in whole seconds, rounded down: > 0 means the server
	// still has the lease, with at least that long to run.
	if ttl.TTL <= 0 {
		t.Fatalf("the server had already expired the lease when it was declared lost (TTL %d)", ttl.TTL)
	}
	if margin := l.Deadline().Sub(lostAt); margin < testLease.StepDownLead-100*time.Millisecond {
		t.Fatalf("lost only %s before the earliest expiry, want about %s", margin, testLease.StepDownLead)
	}
}

func TestLeaseRevokedElsewhereIsLost(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	clk := newJumpClock()
	l := grantOpts(t, cli, leaseOn(testLease, clk))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := cli.Revoke(ctx, l.ID()); err != nil {
		t.Fatal(err)
	}
	clk.jump(l.untilRenewal()) // the next renewal finds the lease gone
	waitClosed(t, l.Lost(), "the lease to be lost")
	if !errors.Is(l.Err(), ErrLeaseNotFound) {
		t.Fatalf("lost with %v, want ErrLeaseNotFound", l.Err())
	}
}

func newCandidacy(t *testing.T, cli *clientv3.Client) *Candidacy {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	c, err := NewCandidacy(ctx, testStore(cli), testLease, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = c.Close(ctx)
	})
	return c
}

// cutOff cuts proxy off for the rest of the test. The cleanups registered
// before (the revokes) run once it is healed, instead of each waiting out
// its timeout.
func cutOff(t *testing.T, proxy *etcdtest.Proxy) {
	t.Helper()
	proxy.CutOff()
	t.Cleanup(proxy.Heal)
}

type campaignResult struct {
	ten *Tenure
	err error
}

func campaign(c *Candidacy, ctx context.Context, id string) <-chan campaignResult {
	ch := make(chan campaignResult, 1)
	go func() {
		ten, err := c.Campaign(ctx, `{"id":"`+id+`"}`)
		ch <- campaignResult{ten, err}
	}()
	return ch
}

func result(t *testing.T, ch <-chan campaignResult) campaignResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(bound):
		t.Fatal("campaign did not return")
		return campaignResult{}
	}
}

func TestCampaignResignHandsOverWithHigherToken(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	a, b := newCandidacy(t, cli), newCandidacy(t, cli)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	ra := result(t, campaign(a, ctx, "a"))
	if ra.err != nil {
		t.Fatal(ra.err)
	}
	bch := campaign(b, ctx, "b")
	waitCandidates(t, cli, 2)
	select {
	case r := <-bch:
		t.Fatalf("b won while a leads: %+v", r)
	default:
	}
	cands, _, err := testStore(cli).Candidates(ctx)
	if err != nil || cands[0].ID != "a" || cands[0].FencingToken() != ra.ten.FencingToken() {
		t.Fatalf("candidates %+v %v", cands, err)
	}

	rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
	defer rcancel()
	if err := ra.ten.Resign(rctx); err != nil {
		t.Fatal(err)
	}
	rb := result(t, bch)
	if rb.err != nil {
		t.Fatal(rb.err)
	}
	if rb.ten.FencingToken() <= ra.ten.FencingToken() {
		t.Fatalf("token %d after %d", rb.ten.FencingToken(), ra.ten.FencingToken())
	}
	rb.ten.Stop()
}

func waitCandidates(t *testing.T, cli *clientv3.Client, n int) {
	t.Helper()
	deadline := time.Now().Add(bound)
	tick := time.NewTicker(20 * time.Millisecond) // polling etcd: no event to wait on
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		cands, _, err := testStore(cli).Candidates(ctx)
		cancel()
		if err == nil && len(cands) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %d candidates, have %d (%v)", n, len(cands), err)
		}
		<-tick.C
	}
}

func TestTenureLostWhenKeyDeleted(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	a := newCandidacy(t, cli)
	r := result(t, campaign(a, context.Background(), "a"))
	if r.err != nil {
		t.Fatal(r.err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := cli.Delete(ctx, r.ten.Key()); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, r.ten.Lost(), "the tenure to be lost")
	if !errors.Is(r.ten.Err(), ErrKeyDeleted) {
		t.Fatalf("lost with %v", r.ten.Err())
	}
	// The resign is guarded: it does not delete a key it no longer owns.
	if _, err := cli.Put(ctx, r.ten.Key(), "someone else"); err != nil {
		t.Fatal(err)
	}
	if err := r.ten.Resign(ctx); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("resign of a replaced key = %v, want ErrNotLeader", err)
	}
	if resp, err := cli.Get(ctx, r.ten.Key()); err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("the replaced key was deleted: %v %v", resp, err)
	}
}

func TestTenureLostWithLease(t *testing.T) {
	srv := etcdtest.Start(t)
	proxy := etcdtest.StartProxy(t, srv.Endpoint())
	clk := newJumpClock()
	a := newCandidacyWith(t, etcdtest.NewClient(t, proxy.Endpoint()), leaseOn(testLease, clk))
	r := result(t, campaign(a, context.Background(), "a"))
	if r.err != nil {
		t.Fatal(r.err)
	}
	cutOff(t, proxy)
	// No renewal gets through from now on: move to the safe deadline
	// instead of waiting for it.
	clk.jumpTo(a.Lease().SafeDeadline())
	waitClosed(t, r.ten.Lost(), "the tenure to be lost")
	if !errors.Is(r.ten.Err(), ErrSafeDeadline) {
		t.Fatalf("lost with %v, want ErrSafeDeadline", r.ten.Err())
	}
}

func TestCampaignReturnsWhenLeaseIsLost(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	leader := newCandidacy(t, cli)
	if r := result(t, campaign(leader, context.Background(), "leader")); r.err != nil {
		t.Fatal(r.err)
	}
	proxy := etcdtest.StartProxy(t, srv.Endpoint())
	clk := newJumpClock()
	waiter := newCandidacyWith(t, etcdtest.NewClient(t, proxy.Endpoint()), leaseOn(testLease, clk))
	ch := campaign(waiter, context.Background(), "waiter")
	waitCandidates(t, cli, 2)
	cutOff(t, proxy)
	clk.jumpTo(waiter.Lease().SafeDeadline()) // no renewal gets through: do not wait for it
	r := result(t, ch)
	if !errors.Is(r.err, ErrSafeDeadline) {
		t.Fatalf("campaign returned %v, want ErrSafeDeadline", r.err)
	}
}

// A renewal is due one interval after the last send, not after the answer:
// a grant that took long must not delay the first renewal past the guard.
func TestRenewalCountsFromTheSend(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		sentAgo time.Duration
		want    time.Duration
	}{
		{0, time.Second},
		{400 * time.Millisecond, 600 * time.Millisecond},
		{1700 * time.Millisecond, 0}, // a slow grant: renew at once
	} {
		l := &Lease{clock: realClock{}, ttl: 4 * time.Second, opts: LeaseOptions{RenewInterval: time.Second}, deadline: now.Add(-tc.sentAgo + 4*time.Second)}
		if got := l.untilRenewal(); got > tc.want || got < tc.want-50*time.Millisecond {
			t.Errorf("sent %s ago: next renewal in %s, want %s", tc.sentAgo, got, tc.want)
		}
	}
}
