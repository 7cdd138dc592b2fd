package election

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leaderd/leaderd/role"
)

var (
	// ErrNotLeader means a campaign returned but the verification found
	// another key first, or ours gone.
	ErrNotLeader = errors.New("election: not leader")
	// ErrKeyDeleted means the leader key was deleted by someone else.
	ErrKeyDeleted error = &lossError{"election: leader key deleted", role.ReasonKeyDeleted}
)

// callTimeout bounds single etcd requests made outside the lease loop
// (verification, reads, resign).
const callTimeout = 2 * time.Second

// Candidacy is one lease and the candidate key it may put: a replica's
// right to campaign. A lost lease ends it; the next campaign needs a new one.
type Candidacy struct {
	store  *Store
	opts   LeaseOptions
	logger *slog.Logger
	lease  *Lease
	key    string // CandidateKey of the lease, as etcd's concurrency election names it

	keepPace backoff // the candidate value keeper's
}

// NewCandidacy grants a lease with its guard running, for a campaign in
// store's election.
func NewCandidacy(ctx context.Context, store *Store, opts LeaseOptions, logger *slog.Logger) (*Candidacy, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	lease, err := Grant(ctx, store.client, opts, logger)
	if err != nil {
		return nil, err
	}
	return candidacyOn(store, logger, lease), nil
}

// candidacyOn takes the lease's own options, not the ones asked for: a
// read-back may have retimed its guard, and the campaign's headroom must be
// the guard's renew interval.
func candidacyOn(store *Store, logger *slog.Logger, lease *Lease) *Candidacy {
	return &Candidacy{
		store:  store,
		opts:   lease.opts,
		logger: logger,
		lease:  lease,
		key:    store.CandidateKey(lease.ID()),

		keepPace: backoff{min: keepRetryMin, max: keepRetryMax},
	}
}

// Lease is the candidacy's lease.
func (c *Candidacy) Lease() *Lease { return c.lease }

// Lost is closed when the lease is lost or its safe deadline passed.
func (c *Candidacy) Lost() <-chan struct{} { return c.lease.Lost() }

// Close ends the candidacy: stops the keepalive and revokes the lease,
// which deletes the candidate key. Bounded by ctx.
func (c *Candidacy) Close(ctx context.Context) error {
	return c.lease.Revoke(ctx)
}

// Tenure is one term as leader. Its fencing token is the leader key's
// create revision.
type Tenure struct {
	c   *Candidacy
	key string
	rev int64
	// candidates is what verify read: every candidate, in campaign order.
	candidates []Candidate

	lost *loss

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

// FencingToken strictly increases from one tenure to the next.
func (t *Tenure) FencingToken() int64 { return t.rev }

// Candidates are the candidates in campaign order (this one first) as the
// win's verification read them, after the win: a fresh read, not a
// watch's copy. The caller must not modify them.
func (t *Tenure) Candidates() []Candidate { return t.candidates }

// Key is the leader key.
func (t *Tenure) Key() string { return t.key }

// Lost is closed when the tenure ended without our consent: the lease was
// lost, its safe deadline passed or the key was deleted.
func (t *Tenure) Lost() <-chan struct{} { return t.lost.Done() }

// Context is done when the tenure ends without our consent; its cause
// (context.Cause) is Err. A step-down reads its reason off that cause.
func (t *Tenure) Context() context.Context { return t.lost.ctx }

// Err says why Lost is closed; nil while it is not.
func (t *Tenure) Err() error { return t.lost.Err() }

// watch ends the tenure on the first sign of loss. Observe is of no use
// here: it never reports deletions.
func (t *Tenure) watch(fromRev int64) {
	defer close(t.done)
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(context.Background()))
	defer cancel()
	keyGone := make(chan struct{})
	go func() {
		defer close(keyGone)
		t.watchKey(ctx, fromRev)
	}()
	select {
	case <-t.c.lease.Lost():
		t.lost.mark(t.c.lease.Err())
	case <-keyGone:
		// A process resumed after a pause sees its passed deadline and the
		// deletion that the lease's expiry caused at once: name the cause.
		if now := t.c.lease.clock.Now(); !now.Before(t.c.lease.SafeDeadline()) {
			t.lost.mark(t.c.lease.lapse(now))
		} else {
			t.lost.mark(ErrKeyDeleted)
		}
	case <-t.stop:
	}
	cancel()
	<-keyGone
}

// watchKey returns when the key is deleted or ctx ends. A broken watch
// (no leader, compaction, cut off) is re-established after a fresh read.
func (t *Tenure) watchKey(ctx context.Context, fromRev int64) {
	for ctx.Err() == nil {
		wch := t.c.store.client.Watch(ctx, t.key, clientv3.WithRev(fromRev))
		for wr := range wch {
			if wr.Err() != nil {
				break
			}
			for _, ev := range wr.Events {
				if ev.Type == mvccpb.DELETE {
					return
				}
			}
		}
		// The watch ended: read the key again before trusting anything.
		for ctx.Err() == nil {
			gctx, gcancel := context.WithTimeout(ctx, callTimeout)
			resp, err := t.c.store.client.Get(gctx, t.key)
			gcancel()
			if err == nil {
				if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != t.rev {
					return
				}
				fromRev = resp.Header.Revision + 1
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
}

// Resign deletes the leader key if it is still ours (a guarded delete), so
// the next candidate can win at once. Bounded by ctx. The caller revokes
// the lease afterwards whatever the outcome.
func (t *Tenure) Resign(ctx context.Context) error {
	t.Stop()
	resp, err := t.c.store.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(t.key), "=", t.rev)).
		Then(clientv3.OpDelete(t.key)).
		Commit()
	if err != nil {
		return fmt.Errorf("resign: %w", err)
	}
	if !resp.Succeeded {
		return ErrNotLeader
	}
	return nil
}

// Stop ends the tenure's watch. Idempotent.
func (t *Tenure) Stop() {
	t.stopOnce.Do(func() { close(t.stop) })
	<-t.done
}
