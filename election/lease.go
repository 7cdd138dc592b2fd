package election

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leaderd/leaderd/role"
)

// Why a lease is lost. Each names the reason a primary steps down for it.
var (
	// ErrLeaseNotFound means the server no longer has the lease: it
	// expired or was revoked.
	ErrLeaseNotFound error = &lossError{"election: lease not found", role.ReasonLeaseLost}
	// ErrSafeDeadline means renewals failed for so long that the lease
	// could expire on the server before a demote hook would end.
	ErrSafeDeadline error = &lossError{"election: safe deadline passed", role.ReasonEtcdUnreachable}
	// ErrLeaseClosed means the lease was closed by its owner.
	ErrLeaseClosed error = &lossError{"election: lease closed", role.ReasonLeaseLost}
	// ErrLeaseExpired means the guard found the lease's earliest expiry
	// already past: the process did not run for longer than the step-down
	// lead (SIGSTOP, a frozen VM), so the server may well have expired it
	// although etcd was reachable all along.
	ErrLeaseExpired error = &lossError{"election: lease expired while the process was not running", role.ReasonLeaseLost}
)

// LeaseOptions sets the lease guard's timing. See docs/design.md, "The lease guard".
type LeaseOptions struct {
	// TTL is asked of etcd, in whole seconds.
	TTL time.Duration
	// RenewInterval is the time between renewals; TTL/4 in leaderd.
	RenewInterval time.Duration
	// StepDownLead is how long before the earliest server-side expiry the
	// lease counts as lost: demote-timeout + margin.
	StepDownLead time.Duration
	// OnRenew, if set, is called after every renewal attempt, from the
	// lease's own goroutine; it must not block.
	OnRenew func(err error)
	// ReadBack, if set, has the grant read back with TimeToLive before the
	// guard starts, and is given what was found. etcd raises a TTL below
	// its minimum without a word; when the TTL differs, the guard runs on
	// the figures ReadBack returns for the granted TTL.
	ReadBack func(TTLReadBack) (renewInterval, stepDownLead time.Duration)

	// clock times the guard and the renewals; nil is the real one. Tests
	// set theirs.
	clock clock
}

// TTLReadBack is what reading a new lease's TTL back found.
type TTLReadBack struct {
	// Asked is the TTL asked for; Granted the one TimeToLive reports,
	// and GrantResponse the one in the grant's answer (they should agree).
	Asked, Granted, GrantResponse time.Duration
	// Err is the TimeToLive's failure; Granted is then GrantResponse.
	Err error
}

// readBackTimeout bounds the TimeToLive that reads a grant back.
const readBackTimeout = 2 * time.Second

// readBackTTL asks etcd what TTL it granted lease id.
func readBackTTL(ctx context.Context, client *clientv3.Client, id clientv3.LeaseID, asked, answered time.Duration) TTLReadBack {
	rb := TTLReadBack{Asked: asked, Granted: answered, GrantResponse: answered}
	ctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), readBackTimeout)
	defer cancel()
	resp, err := client.TimeToLive(ctx, id)
	return judgeReadBack(rb, resp, err)
}

// judgeReadBack fills in rb from TimeToLive's answer. A granted TTL that is
// not positive is garbage (etcd grants at least its minimum), an error: it
// would leave the guard no time at all.
func judgeReadBack(rb TTLReadBack, resp *clientv3.LeaseTimeToLiveResponse, err error) TTLReadBack {
	switch {
	case err != nil:
		rb.Err = fmt.Errorf("read the lease's TTL back: %w", err)
	case resp.TTL < 0: // -1: etcd no longer has the lease
		rb.Err = fmt.Errorf("read the lease's TTL back: %w", ErrLeaseNotFound)
	case resp.GrantedTTL <= 0:
		rb.Err = fmt.Errorf("read the lease's TTL back: granted TTL %d is not a TTL", resp.GrantedTTL)
	default:
		rb.Granted = time.Duration(resp.GrantedTTL) * time.Second
	}
	return rb
}

// Lease is an etcd lease kept alive by its own loop, one renewal at a time
// over one LeaseKeepAlive stream of its own (see keepAliveStream). It
// tracks the earliest time the server may expire the lease and declares
// itself lost StepDownLead before that, because etcd's client learns of an
// expiry only after the fact.
type Lease struct {
	client *clientv3.Client
	id     clientv3.LeaseID
	ttl    time.Duration
	opts   LeaseOptions
	logger *slog.Logger
	clock  clock // every time compared with the deadline is read off it

	// renewer sends the renewals: the lease's stream, or a test's stand-in.
	renewer renewer

	mu       sync.Mutex
	deadline time.Time     // sent time of the last successful renewal + its TTL
	renewed  chan struct{} // closed (and replaced) by each successful renewal

	lost *loss

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// Grant asks etcd for a lease and starts its keepalive loop. The call is
// bounded by ctx and by one renew interval (at least 2s).
func Grant(ctx context.Context, client *clientv3.Client, opts LeaseOptions, logger *slog.Logger) (*Lease, error) {
	return grantWith(ctx, client, opts, logger, newKeepAliveStream(client))
}

// grantWith is Grant with the renewer given, so that tests can stall it.
func grantWith(ctx context.Context, client *clientv3.Client, opts LeaseOptions, logger *slog.Logger, r renewer) (*Lease, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	clk := opts.clock
	if clk == nil {
		clk = realClock{}
	}
	gctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), max(opts.RenewInterval, 2*time.Second))
	defer cancel()
	sent := clk.Now()
	resp, err := client.Grant(gctx, int64(opts.TTL/time.Second))
	if err != nil {
		return nil, fmt.Errorf("grant lease: %w", err)
	}
	ttl := time.Duration(resp.TTL) * time.Second
	if opts.ReadBack != nil {
		rb := readBackTTL(ctx, client, resp.ID, opts.TTL, ttl)
		// The shorter of the two answers, should they differ: the deadline
		// must never be later than etcd's expiry.
		ttl = min(ttl, rb.Granted)
		opts.RenewInterval, opts.StepDownLead = opts.ReadBack(rb)
		opts.TTL = ttl
	}
	l := &Lease{
		client:   client,
		id:       resp.ID,
		ttl:      ttl,
		opts:     opts,
		logger:   logger.With("lease", LeaseHex(int64(resp.ID))),
		clock:    clk,
		renewer:  r,
		deadline: sent.Add(ttl),
		renewed:  make(chan struct{}),
		lost:     newLoss(),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	if l.untilSafeDeadline() <= 0 {
		// The grant took so long that no safe time is left: give it back.
		l.lost.mark(ErrSafeDeadline)
		r.close()
		close(l.done)
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_ = l.revoke(rctx)
		return nil, fmt.Errorf("grant lease: %w (the grant took %s)", ErrSafeDeadline, clk.Now().Sub(sent).Round(time.Millisecond))
	}
	go l.loop()
	return l, nil
}

// ID is the lease's id.
func (l *Lease) ID() clientv3.LeaseID { return l.id }

// TTL is the TTL etcd granted.
func (l *Lease) TTL() time.Duration { return l.ttl }

// Deadline is the earliest time the server may expire the lease.
func (l *Lease) Deadline() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.deadline
}

// SafeDeadline is the time the holder must have started stepping down by.
func (l *Lease) SafeDeadline() time.Time { return l.Deadline().Add(-l.opts.StepDownLead) }

// untilSafeDeadline is the time left before the safe deadline, on the
// lease's clock; negative once it passed.
func (l *Lease) untilSafeDeadline() time.Duration { return l.SafeDeadline().Sub(l.clock.Now()) }

// Lost is closed once the lease is gone on the server or its safe deadline
// passed, or it was closed.
func (l *Lease) Lost() <-chan struct{} { return l.lost.Done() }

// Err says why Lost is closed; nil while it is not.
func (l *Lease) Err() error { return l.lost.Err() }

// loop renews the lease until it is lost or stopped. The guard is a timer
// of its own that marks the loss without waiting on anything, so a loop
// stuck in a log call (a stalled stderr) still gives the lease up in time;
// the loop logs only after the loss is marked.
func (l *Lease) loop() {
	defer close(l.done)
	defer l.renewer.close() // before done: Stop returns with the stream ended
	retry := max(200*time.Millisecond, l.opts.RenewInterval/4)
	renew := l.clock.NewTimer(l.untilRenewal())
	defer renew.Stop()
	guard := l.clock.AfterFunc(l.untilSafeDeadline(), func() { l.lost.mark(l.lapse(l.clock.Now())) })
	defer guard.Stop()
	failing := false
	for {
		select {
		case <-l.stop:
			l.lost.mark(ErrLeaseClosed)
			return
		case <-l.lost.Done():
			if errors.Is(l.lost.Err(), ErrLeaseExpired) {
				l.logger.Warn("lease expired while the process was not running", "deadline_ago", l.clock.Now().Sub(l.Deadline()).Round(time.Millisecond))
			} else {
				l.logger.Warn("lease safe deadline passed", "deadline_in", l.Deadline().Sub(l.clock.Now()).Round(time.Millisecond))
			}
			return
		case <-renew.C():
		}
		err := l.renewOnce()
		if err == nil {
			// The guard moves before the renewal is announced: whoever
			// waits on it (awaitHeadroom, a test's jump clock) must never
			// find the deadline moved and the guard still at the old one.
			guard.Reset(l.untilSafeDeadline())
			renew.Reset(l.untilRenewal())
			l.announceRenewal()
		}
		if l.opts.OnRenew != nil {
			l.opts.OnRenew(err)
		}
		switch {
		case err == nil:
			if failing {
				l.logger.Info("lease renewal recovered")
			}
			failing = false
		case errors.Is(err, ErrLeaseNotFound):
			l.lost.mark(ErrLeaseNotFound)
			l.logger.Warn("lease not found on the server")
			return
		default:
			renew.Reset(retry)
			if !failing {
				// Logged once per outage, not once per attempt.
				l.logger.Warn("lease renewal failed", "err", err)
			}
			failing = true
		}
	}
}

// lapse names why the guard fired at now: past the earliest server-side
// expiry, the process cannot have been running (the guard is due a whole
// StepDownLead before it), so the lease may be gone; before it, renewals
// failed.
func (l *Lease) lapse(now time.Time) error {
	if now.Before(l.Deadline()) {
		return ErrSafeDeadline
	}
	return ErrLeaseExpired
}

// renewal is closed at the next successful renewal.
func (l *Lease) renewal() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.renewed
}

// awaitHeadroom returns once at least headroom is left before the safe
// deadline, waiting for renewals to restore it if need be (waited), or with
// the lease's error once it is lost, or with ctx's.
func (l *Lease) awaitHeadroom(ctx context.Context, headroom time.Duration) (waited bool, err error) {
	for {
		renewed := l.renewal() // before the check, so no renewal is missed
		if l.untilSafeDeadline() >= headroom {
			return waited, nil
		}
		waited = true
		select {
		case <-renewed:
		case <-l.lost.Done():
			return waited, l.lost.Err()
		case <-ctx.Done():
			return waited, ctx.Err()
		}
	}
}

// untilRenewal is the time left until one renew interval after the last
// successful send. Counting from the send, not the answer, keeps a slow
// grant or renewal from eating into the guard's two spare renewals.
func (l *Lease) untilRenewal() time.Duration {
	lastSent := l.Deadline().Add(-l.ttl)
	return max(0, lastSent.Add(l.opts.RenewInterval).Sub(l.clock.Now()))
}

// renewOnce sends one keepalive. Its deadline never passes the safe
// deadline, so the loop is back in time to see the guard's verdict; a
// renewal that runs out of it, or is cut short by Stop, ends the stream it
// was sent on.
func (l *Lease) renewOnce() error {
	// A timeout, not a deadline: the lease's clock need not be the
	// context's.
	ctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(context.Background()),
		min(l.opts.RenewInterval, l.untilSafeDeadline()))
	defer cancel()
	go func() {
		// Stopping the lease cuts a renewal in flight short.
		select {
		case <-l.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	sent := l.clock.Now()
	resp, err := l.renewer.keepAliveOnce(ctx, l.id)
	if err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return ErrLeaseNotFound
		}
		return err
	}
	l.mu.Lock()
	if d := sent.Add(time.Duration(resp.TTL) * time.Second); d.After(l.deadline) {
		l.deadline = d
	}
	l.mu.Unlock()
	return nil
}

// announceRenewal closes the channel renewal handed out, once the loop
// has moved its timers to the renewed deadline.
func (l *Lease) announceRenewal() {
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.renewed)
	l.renewed = make(chan struct{})
}

// Stop ends the keepalive loop and its stream without revoking; the lease
// then expires on the server by itself. Idempotent.
func (l *Lease) Stop() {
	l.stopOnce.Do(func() { close(l.stop) })
	<-l.done
}

// Revoke stops the loop and revokes the lease, which deletes every key
// attached to it. Bounded by ctx.
func (l *Lease) Revoke(ctx context.Context) error {
	l.Stop()
	return l.revoke(ctx)
}

func (l *Lease) revoke(ctx context.Context) error {
	_, err := l.client.Revoke(ctx, l.id)
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return nil
	}
	return err
}
