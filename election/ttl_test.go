package election

import (
	"path/filepath"
	"testing"
	"time"

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
