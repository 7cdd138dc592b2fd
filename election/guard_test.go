package election

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leaderd/leaderd/internal/etcdtest"
)

// stalledHandler is a log sink that never returns until released, as a
// full stderr pipe nobody reads.
type stalledHandler struct {
	entered chan struct{} // receives a value when a log call is stuck
	release chan struct{}
}

func (h stalledHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h stalledHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h stalledHandler) WithGroup(string) slog.Handler            { return h }
func (h stalledHandler) Handle(context.Context, slog.Record) error {
	select {
	case h.entered <- struct{}{}:
	default:
	}
	<-h.release
	return nil
}

// A stalled log sink must not keep a cut-off lease from being given up:
// the loss is marked by the guard's own timer, whatever the loop is
// stuck in.
func TestLeaseLossIsMarkedWhileLoggingStalls(t *testing.T) {
	srv := etcdtest.Start(t)
	proxy := etcdtest.StartProxy(t, srv.Endpoint())
	h := stalledHandler{entered: make(chan struct{}, 1), release: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	clk := newJumpClock()
	l, err := Grant(ctx, etcdtest.NewClient(t, proxy.Endpoint()), leaseOn(testLease, clk), slog.New(h))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		close(h.release)
		l.Stop()
	}()

	proxy.CutOff()
	clk.jump(l.untilRenewal()) // the renewal now due fails, and its failure is logged
	waitClosed(t, h.entered, "the lease loop to be stuck in a log call")
	clk.jumpTo(l.SafeDeadline()) // the guard's time, without waiting it out
	waitClosed(t, l.Lost(), "the lease to be lost")
	if !errors.Is(l.Err(), ErrSafeDeadline) {
		t.Fatalf("lost with %v, want ErrSafeDeadline", l.Err())
	}
}

// frozenLease is a lease whose holder was stopped (SIGSTOP) from just
// after sent until now: its guard and its renewal are both overdue when
// its loop runs. Renewals fail, as they must with a passed deadline.
func frozenLease(sent time.Time) *Lease {
	return &Lease{
		ttl:    testLease.TTL,
		opts:   testLease,
		logger: slog.New(slog.DiscardHandler),
		clock:  realClock{},
		renewer: renewFunc(func(ctx context.Context, _ clientv3.LeaseID) (*clientv3.LeaseKeepAliveResponse, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}),
		deadline: sent.Add(testLease.TTL),
		renewed:  make(chan struct{}),
		lost:     newLoss(),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
}

// Woken after a freeze longer than the TTL, the guard finds the lease's
// earliest expiry past: the lease expired while the process was not
// running, which is no etcd outage.
func TestLeaseGuardAfterAFreezeReportsLeaseExpired(t *testing.T) {
	l := frozenLease(time.Now().Add(-2 * testLease.TTL))
	go l.loop()
	defer l.Stop()
	waitClosed(t, l.Lost(), "the lease to be lost")
	if !errors.Is(l.Err(), ErrLeaseExpired) {
		t.Fatalf("lost with %v, want ErrLeaseExpired", l.Err())
	}
}

// The verdict depends only on when the guard runs: before the earliest
// expiry, renewals failed (safe deadline); after it, the process was not
// running.
func TestLeaseLapse(t *testing.T) {
	sent := time.Now()
	l := frozenLease(sent)
	for _, tc := range []struct {
		name string
		at   time.Time
		want error
	}{
		{"at the safe deadline", l.SafeDeadline(), ErrSafeDeadline},
		{"just before the earliest expiry", l.Deadline().Add(-time.Millisecond), ErrSafeDeadline},
		{"at the earliest expiry", l.Deadline(), ErrLeaseExpired},
		{"long after it", l.Deadline().Add(time.Hour), ErrLeaseExpired},
	} {
		if got := l.lapse(tc.at); !errors.Is(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
