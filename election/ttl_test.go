package election

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leaderd/leaderd/internal/etcdtest"
)

// etcd raises a TTL below its minimum (1.5 x its election timeout, rounded
// up: 5s with a 3s election timeout) without a word. The read-back must see
// the raised TTL, and the guard must run on the figures given for it.
func TestGrantReadsARaisedTTLBackAndRetimesTheGuard(t *testing.T) {
	srv := etcdtest.StartWithOptions(t, etcdtest.Options{
		Dir: filepath.Join(t.TempDir(), "etcd"), ElectionTimeout: 3 * time.Second,
	})
	cli := etcdtest.NewClient(t, srv.Endpoint())
	clk := newJumpClock()
	var got []TTLReadBack
	const renew, lead = 1250 * time.Millisecond, 1800 * time.Millisecond
	opts := testLease // asks for 3s
	opts.ReadBack = func(rb TTLReadBack) (time.Duration, time.Duration) {
		got = append(got, rb)
		return renew, lead
	}
	l := grantOpts(t, cli, leaseOn(opts, clk))

	if len(got) != 1 {
		t.Fatalf("ReadBack called %d times, want once", len(got))
	}
	rb := got[0]
	if rb.Err != nil || rb.Asked != 3*time.Second || rb.Granted != 5*time.Second || rb.GrantResponse != 5*time.Second {
		t.Fatalf("read back %+v, want asked 3s, granted 5s by both TimeToLive and the grant", rb)
	}
	if l.TTL() != 5*time.Second {
		t.Errorf("lease TTL %s, want the granted 5s", l.TTL())
	}
	// The guard: the safe deadline is the returned lead before the deadline,
	// the deadline one granted TTL after the grant, and the next renewal one
	// returned interval after it (the jump clock has not moved).
	if d := l.Deadline().Sub(l.SafeDeadline()); d != lead {
		t.Errorf("step-down lead %s, want the retimed %s", d, lead)
	}
	if u := l.untilRenewal(); u <= testLease.RenewInterval || u > renew {
		t.Errorf("next renewal in %s, want the retimed interval %s (not %s)", u, renew, testLease.RenewInterval)
	}
	if s := l.untilSafeDeadline(); s <= 5*time.Second-lead-time.Second || s > 5*time.Second-lead {
		t.Errorf("safe deadline in %s, want just under 5s - %s", s, lead)
	}
	// It still renews and holds on the granted TTL.
	jumpToRenewal(t, l, clk)
	if l.Err() != nil {
		t.Fatalf("lease lost after a renewal: %v", l.Err())
	}
}

// With etcd's defaults the TTL asked is the TTL granted; the guard keeps
// whatever ReadBack returns for it.
func TestGrantReadsTheAskedTTLBack(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	var got []TTLReadBack
	opts := testLease
	opts.ReadBack = func(rb TTLReadBack) (time.Duration, time.Duration) {
		got = append(got, rb)
		return testLease.RenewInterval, testLease.StepDownLead
	}
	l := grantOpts(t, cli, opts)
	if len(got) != 1 || got[0].Err != nil || got[0].Granted != 3*time.Second || got[0].GrantResponse != 3*time.Second {
		t.Fatalf("read back %+v, want one read-back of 3s", got)
	}
	if d := l.Deadline().Sub(l.SafeDeadline()); d != testLease.StepDownLead || l.TTL() != 3*time.Second {
		t.Errorf("lead %s, TTL %s; want %s and 3s", d, l.TTL(), testLease.StepDownLead)
	}
}

// A campaign on a lease the read-back retimed judges its headroom by the
// retimed renew interval, the guard's, not the one asked for: with etcd
// raising 3s to 5s and the guard renewing every 2s (lead 1.5s), a win
// with 1.5s left before the safe deadline is no win (no renewal comes).
func TestCampaignOnARetimedLeaseNeedsTheRetimedHeadroom(t *testing.T) {
	srv := etcdtest.StartWithOptions(t, etcdtest.Options{
		Dir: filepath.Join(t.TempDir(), "etcd"), ElectionTimeout: 3 * time.Second,
	})
	cli := etcdtest.NewClient(t, srv.Endpoint())
	clk := newJumpClock()
	const renew, lead = 2 * time.Second, 1500 * time.Millisecond
	opts := leaseOn(testLease, clk) // asks for 3s, renews every 750ms
	opts.ReadBack = func(TTLReadBack) (time.Duration, time.Duration) { return renew, lead }
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	attempted := make(chan struct{}, 1)
	l, err := grantWith(ctx, cli, opts, nil, renewFunc(stalledRenewals(cli, attempted, nil)))
	if err != nil {
		t.Fatal(err)
	}
	c := candidacyOn(testStore(cli), l.logger, l) // as NewCandidacy does
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = c.Close(ctx)
	})
	clk.jump(l.untilRenewal()) // the first (retimed) renewal is due: it stalls
	waitClosed(t, attempted, "the first renewal")
	if left := l.untilSafeDeadline(); left >= renew || left < testLease.RenewInterval {
		t.Fatalf("%s left before the safe deadline, want between %s and %s", left, testLease.RenewInterval, renew)
	}

	r := result(t, campaign(c, context.Background(), "late"))
	if r.ten != nil {
		r.ten.Stop()
		t.Fatalf("won with %s left before the safe deadline, less than the guard's renew interval %s", l.untilSafeDeadline(), renew)
	}
	if !errors.Is(r.err, ErrSafeDeadline) {
		t.Fatalf("campaign returned %v, want ErrSafeDeadline", r.err)
	}
}

// TimeToLive's answer judged: an expired lease (TTL -1) and a granted TTL
// that is not positive (garbage) are errors, and the grant's own answer
// stands; a sane one is taken.
func TestJudgeReadBack(t *testing.T) {
	asked := TTLReadBack{Asked: 3 * time.Second, Granted: 5 * time.Second, GrantResponse: 5 * time.Second}
	tests := []struct {
		name    string
		resp    *clientv3.LeaseTimeToLiveResponse
		err     error
		granted time.Duration
		wantErr bool
	}{
		{"sane", &clientv3.LeaseTimeToLiveResponse{TTL: 4, GrantedTTL: 5}, nil, 5 * time.Second, false},
		{"expired", &clientv3.LeaseTimeToLiveResponse{TTL: -1}, nil, 5 * time.Second, true},
		{"granted 0", &clientv3.LeaseTimeToLiveResponse{TTL: 4, GrantedTTL: 0}, nil, 5 * time.Second, true},
		{"granted negative", &clientv3.LeaseTimeToLiveResponse{TTL: 4, GrantedTTL: -7}, nil, 5 * time.Second, true},
		{"failed", nil, context.DeadlineExceeded, 5 * time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rb := judgeReadBack(asked, tt.resp, tt.err)
			if (rb.Err != nil) != tt.wantErr || rb.Granted != tt.granted || rb.GrantResponse != asked.GrantResponse {
				t.Errorf("judged %+v, want granted %s, error %v", rb, tt.granted, tt.wantErr)
			}
		})
	}
	if rb := judgeReadBack(asked, &clientv3.LeaseTimeToLiveResponse{TTL: -1}, nil); !errors.Is(rb.Err, ErrLeaseNotFound) {
		t.Errorf("expired lease: %v, want ErrLeaseNotFound", rb.Err)
	}
}
