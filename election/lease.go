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
)

var (
	// ErrLeaseNotFound means the server no longer has the lease: it
	// expired or was revoked.
	ErrLeaseNotFound = errors.New("election: lease not found")
	// ErrSafeDeadline means renewals failed for so long that the lease
	// could expire on the server before a demote hook would end.
	ErrSafeDeadline = errors.New("election: safe deadline passed")
	// ErrLeaseClosed means the lease was closed by its owner.
	ErrLeaseClosed = errors.New("election: lease closed")
)

// LeaseOptions sets the lease guard's timing. See DESIGN.md, "Safety".
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
}

// Lease is an etcd lease kept alive by its own KeepAliveOnce loop. It
// tracks the earliest time the server may expire the lease and declares
// itself lost StepDownLead before that, because etcd's client learns of an
// expiry only after the fact.
type Lease struct {
	client *clientv3.Client
	id     clientv3.LeaseID
	ttl    time.Duration
	opts   LeaseOptions
	logger *slog.Logger

	mu       sync.Mutex
	deadline time.Time // sent time of the last successful renewal + its TTL

	lost *loss

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// Grant asks etcd for a lease and starts its keepalive loop. The call is
// bounded by ctx and by one renew interval (at least 2s).
func Grant(ctx context.Context, client *clientv3.Client, opts LeaseOptions, logger *slog.Logger) (*Lease, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	gctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), max(opts.RenewInterval, 2*time.Second))
	defer cancel()
	sent := time.Now()
	resp, err := client.Grant(gctx, int64(opts.TTL/time.Second))
	if err != nil {
		return nil, fmt.Errorf("grant lease: %w", err)
	}
	l := &Lease{
		client:   client,
		id:       resp.ID,
		ttl:      time.Duration(resp.TTL) * time.Second,
		opts:     opts,
		logger:   logger.With("lease", LeaseHex(int64(resp.ID))),
		deadline: sent.Add(time.Duration(resp.TTL) * time.Second),
		lost:     newLoss(),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	if time.Until(l.SafeDeadline()) <= 0 {
		// The grant took so long that no safe time is left: give it back.
		l.lost.mark(ErrSafeDeadline)
		close(l.done)
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_ = l.revoke(rctx)
		return nil, fmt.Errorf("grant lease: %w (the grant took %s)", ErrSafeDeadline, time.Since(sent).Round(time.Millisecond))
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

// Lost is closed once the lease is gone on the server or its safe deadline
// passed, or it was closed.
func (l *Lease) Lost() <-chan struct{} { return l.lost.ch }

// Err says why Lost is closed; nil while it is not.
func (l *Lease) Err() error { return l.lost.Err() }

func (l *Lease) loop() {
	defer close(l.done)
	retry := max(200*time.Millisecond, l.opts.RenewInterval/4)
	renew := time.NewTimer(l.untilRenewal())
	defer renew.Stop()
	guard := time.NewTimer(time.Until(l.SafeDeadline()))
	defer guard.Stop()
	failing := false
	for {
		select {
		case <-l.stop:
			l.lost.mark(ErrLeaseClosed)
			return
		case <-guard.C:
			l.logger.Warn("lease safe deadline passed", "deadline_in", time.Until(l.Deadline()).Round(time.Millisecond))
			l.lost.mark(ErrSafeDeadline)
			return
		case <-renew.C:
		}
		err := l.renewOnce()
		if l.opts.OnRenew != nil {
			l.opts.OnRenew(err)
		}
		switch {
		case err == nil:
			if failing {
				l.logger.Info("lease renewal recovered")
			}
			failing = false
			guard.Reset(time.Until(l.SafeDeadline()))
			renew.Reset(l.untilRenewal())
		case errors.Is(err, ErrLeaseNotFound):
			l.logger.Warn("lease not found on the server")
			l.lost.mark(ErrLeaseNotFound)
			return
		default:
			if !failing {
				// Logged once per outage, not once per attempt.
				l.logger.Warn("lease renewal failed", "err", err)
			}
			failing = true
			renew.Reset(retry)
		}
	}
}

// untilRenewal is the time left until one renew interval after the last
// successful send. Counting from the send, not the answer, keeps a slow
// grant or renewal from eating into the guard's two spare renewals.
func (l *Lease) untilRenewal() time.Duration {
	lastSent := l.Deadline().Add(-l.ttl)
	return max(0, time.Until(lastSent.Add(l.opts.RenewInterval)))
}

// renewOnce sends one keepalive. Its deadline never passes the safe
// deadline, so the guard timer is served on time.
func (l *Lease) renewOnce() error {
	callDeadline := time.Now().Add(l.opts.RenewInterval)
	if sd := l.SafeDeadline(); sd.Before(callDeadline) {
		callDeadline = sd
	}
	ctx, cancel := context.WithDeadline(clientv3.WithRequireLeader(context.Background()), callDeadline)
	defer cancel()
	go func() {
		// Stopping the lease cuts a renewal in flight short.
		select {
		case <-l.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	sent := time.Now()
	resp, err := l.client.KeepAliveOnce(ctx, l.id)
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

// Stop ends the keepalive loop without revoking; the lease then expires on
// the server by itself. Idempotent.
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
