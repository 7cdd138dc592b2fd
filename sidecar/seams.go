package sidecar

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/hooks"
)

// What the state machine needs of etcd and of hooks. The etcd adapter
// below and the fakes in tests implement these.

type elector interface {
	// Grant obtains a new lease with its guard running: one attempt.
	Grant(ctx context.Context) (candidacy, error)
	// WatchLeader reports the candidates in campaign order until ctx ends.
	WatchLeader(ctx context.Context, fn func([]election.Candidate, error))
	// RecordTenure writes a tenure to the election's bounded history.
	RecordTenure(ctx context.Context, rec election.TenureRecord) error
	// PublishMember puts this replica's member record on lease.
	PublishMember(ctx context.Context, lease int64, m election.Member) error
	// WatchMember reports the member record of id (nil: none) at once and
	// on every change until ctx ends.
	WatchMember(ctx context.Context, id string, fn func(*election.Member, error))
	// WatchControl reports the control requests until ctx ends.
	WatchControl(ctx context.Context, fn func(election.Control, error))
	// ClearRequest deletes a handled resign or switchover request.
	ClearRequest(ctx context.Context, r *election.Request) error
	// ReadPeers reads the candidates and member records in one revision.
	ReadPeers(ctx context.Context) (election.Peers, error)
	// PutRequest stores a switchover request unless one is pending.
	PutRequest(ctx context.Context, r election.Request) error
	// LeaseRenewed reports whether a lease's holder renews it.
	LeaseRenewed(ctx context.Context, lease int64) (bool, error)
}

type candidacy interface {
	LeaseID() int64
	TTL() time.Duration
	SafeDeadline() time.Time
	// Lost is closed when the lease is gone or its safe deadline passed.
	Lost() <-chan struct{}
	Err() error
	// Campaign blocks until this candidate leads (verified) or the
	// lease is lost or ctx ends.
	Campaign(ctx context.Context, value string) (tenure, error)
	// Close stops the keepalive and revokes the lease.
	Close(ctx context.Context) error
	// Revoke tries the revoke again after a failed Close.
	Revoke(ctx context.Context) error
	// Abandon stops the keepalive without revoking: the lease, and the
	// leader key with it, stay until they expire on the server.
	Abandon()
}

type tenure interface {
	FencingToken() int64
	// Context ends when the tenure ends without our consent; its cause
	// (context.Cause) says why and names the step-down reason.
	Context() context.Context
	// Resign deletes the leader key if it is still ours.
	Resign(ctx context.Context) error
	// Candidates are the candidates as the win's verification read them
	// (nil: not known).
	Candidates() []election.Candidate
}

// appHealth is the local app's health; Changes wakes the single reader (the
// state machine) on a transition, Healthy is the truth.
type appHealth interface {
	Healthy() bool
	Changes() <-chan bool
}

// alwaysHealthy stands in when no health check is configured.
type alwaysHealthy struct{}

func (alwaysHealthy) Healthy() bool        { return true }
func (alwaysHealthy) Changes() <-chan bool { return nil }

type hookRunner interface {
	Run(ctx context.Context, env hooks.Env) hooks.Result
}

// etcdElector adapts package election to the seams above. Its client (and
// the election's Store on it) is made on the first Grant and retried with
// it: with --user, clientv3.New logs in at once, and a wrong password or an
// etcd that is down must leave the replica a retrying standby (after its
// start-up demote), not end it.
type etcdElector struct {
	openStore func() (*election.Store, error)
	lease     election.LeaseOptions
	logger    *slog.Logger
	// ttl reads the first lease's TTL back; nil: no read-back.
	ttl *ttlCheck

	mu    sync.Mutex
	store *election.Store
	ready chan struct{} // closed once store is set
}

func newEtcdElector(openStore func() (*election.Store, error), lease election.LeaseOptions, logger *slog.Logger) *etcdElector {
	return &etcdElector{openStore: openStore, lease: lease, logger: logger, ready: make(chan struct{})}
}

// connect returns the store, making its client if need be (bounded by its
// dial timeout).
func (e *etcdElector) connect() (*election.Store, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.store != nil {
		return e.store, nil
	}
	store, err := e.openStore()
	if err != nil {
		return nil, fmt.Errorf("connect to etcd: %w", err)
	}
	e.store = store
	close(e.ready)
	return e.store, nil
}

// connected waits until the first Grant has made the store; false if ctx
// ended first.
func (e *etcdElector) connected(ctx context.Context) bool {
	select {
	case <-e.ready:
		return true
	case <-ctx.Done():
		return false
	}
}

func (e *etcdElector) Grant(ctx context.Context) (candidacy, error) {
	store, err := e.connect()
	if err != nil {
		return nil, err
	}
	opts := e.ttl.options(e.lease, func(o election.LeaseOptions) { e.lease = o })
	c, err := election.NewCandidacy(ctx, store, opts, e.logger)
	if err != nil {
		return nil, err
	}
	return etcdCandidacy{c}, nil
}

func (e *etcdElector) WatchLeader(ctx context.Context, fn func([]election.Candidate, error)) {
	if e.connected(ctx) {
		e.store.WatchLeader(ctx, fn)
	}
}

func (e *etcdElector) RecordTenure(ctx context.Context, rec election.TenureRecord) error {
	store, err := e.connect()
	if err != nil {
		return err
	}
	return store.RecordTenure(ctx, rec)
}

func (e *etcdElector) PublishMember(ctx context.Context, lease int64, m election.Member) error {
	store, err := e.connect()
	if err != nil {
		return err
	}
	return store.PublishMember(ctx, clientv3.LeaseID(lease), m)
}

func (e *etcdElector) WatchMember(ctx context.Context, id string, fn func(*election.Member, error)) {
	if e.connected(ctx) {
		e.store.WatchMember(ctx, id, fn)
	}
}

func (e *etcdElector) WatchControl(ctx context.Context, fn func(election.Control, error)) {
	if e.connected(ctx) {
		e.store.WatchControl(ctx, fn)
	}
}

func (e *etcdElector) ClearRequest(ctx context.Context, r *election.Request) error {
	store, err := e.connect()
	if err != nil {
		return err
	}
	return store.ClearRequest(ctx, r)
}

func (e *etcdElector) ReadPeers(ctx context.Context) (election.Peers, error) {
	store, err := e.connect()
	if err != nil {
		return election.Peers{}, err
	}
	return store.ReadPeers(ctx)
}

func (e *etcdElector) PutRequest(ctx context.Context, r election.Request) error {
	store, err := e.connect()
	if err != nil {
		return err
	}
	return store.PutRequest(ctx, r)
}

func (e *etcdElector) LeaseRenewed(ctx context.Context, lease int64) (bool, error) {
	store, err := e.connect()
	if err != nil {
		return false, err
	}
	return store.LeaseRenewed(ctx, lease)
}

// Close closes the client, if one was made.
func (e *etcdElector) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.store != nil {
		_ = e.store.Client().Close()
	}
}

type etcdCandidacy struct{ *election.Candidacy }

func (c etcdCandidacy) LeaseID() int64          { return int64(c.Lease().ID()) }
func (c etcdCandidacy) TTL() time.Duration      { return c.Lease().TTL() }
func (c etcdCandidacy) SafeDeadline() time.Time { return c.Lease().SafeDeadline() }
func (c etcdCandidacy) Err() error              { return c.Lease().Err() }
func (c etcdCandidacy) Abandon()                { c.Lease().Stop() }
func (c etcdCandidacy) Revoke(ctx context.Context) error {
	return c.Lease().Revoke(ctx)
}

func (c etcdCandidacy) Campaign(ctx context.Context, value string) (tenure, error) {
	t, err := c.Candidacy.Campaign(ctx, value)
	if err != nil {
		return nil, err
	}
	return t, nil
}
