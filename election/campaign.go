package election

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// campaignRetry paces the campaign's retries after a failed request or a
// broken watch.
const campaignRetry = 250 * time.Millisecond

// errNoHeadroom means a verified win came with less than one renew
// interval left before the safe deadline; the campaign waits for a renewal.
var errNoHeadroom = errors.New("election: too little time left before the safe deadline")

// Campaign puts value under the candidates prefix and waits until this
// candidate is the leader with at least one renew interval left before the
// safe deadline, then verifies it before returning the tenure. It returns
// early when ctx ends or the lease is lost, and retries failed requests
// meanwhile.
//
// The keys and their order are those of etcd's concurrency election
// (Store.CandidateKey, on the lease; the lowest create revision leads), so
// `etcdctl elect` observers and status readers agree. It is our
// own because etcd's watch does not require a leader (a standby watching
// through a member cut off from its peers waits for ever) and, when
// cancelled, resigns on the client's context, which blocks for as long as
// etcd is unreachable. Here every request has its own deadline and nothing
// is resigned: the caller revokes the lease, which deletes the key.
func (c *Candidacy) Campaign(ctx context.Context, value string) (*Tenure, error) {
	cctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	go func() {
		select {
		case <-c.lease.Lost():
			cancel()
		case <-cctx.Done():
		}
	}()
	o := &outage{logger: c.lease.logger} // it names the lease
	rev, err := c.putKey(cctx, value, o)
	if err != nil {
		return nil, c.ended(ctx, err)
	}
	// The value is kept for the campaign and, once won, for the tenure.
	stopKeeping := startKeeper(c.store.client, c.key, value, rev, c.lease.ID(), c.keepPace, c.lease.logger)
	won := false
	defer func() {
		if !won {
			stopKeeping()
		}
	}()
	for {
		turn, err := c.waitTurn(cctx, rev, o)
		if err != nil {
			return nil, c.ended(ctx, err)
		}
		// A win just before the safe deadline would be promoted and
		// demoted at once: wait for a renewal to make room first. The
		// read that found the turn then no longer verifies the win.
		waited, err := c.lease.awaitHeadroom(cctx, c.opts.RenewInterval)
		if err != nil {
			return nil, c.ended(ctx, err)
		}
		if waited {
			turn = nil
		}
		t, err := c.verify(cctx, rev, turn)
		switch {
		case err == nil:
			o.answered()
			won = true
			go afterDone(t.done, stopKeeping) // the tenure's watch ended: lost, or stopped
			return t, nil
		case errors.Is(err, errNoHeadroom):
		case transient(err) && cctx.Err() == nil:
			o.failed("verify", err)
			if err := pause(cctx, campaignRetry); err != nil {
				return nil, c.ended(ctx, err)
			}
		default:
			return nil, c.ended(ctx, err)
		}
	}
}

// ended names why a campaign ended: the lease's loss or ctx's end take
// precedence over the failed request they caused.
func (c *Candidacy) ended(ctx context.Context, err error) error {
	if lerr := c.lease.Err(); lerr != nil {
		return lerr
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("campaign: %w", err)
}

// putKey creates the candidate key on the lease unless it exists, and
// returns its create revision: the fencing token, should it win.
func (c *Candidacy) putKey(ctx context.Context, value string, o *outage) (int64, error) {
	for {
		rev, err := c.putKeyOnce(ctx, value)
		if err == nil {
			o.answered()
		}
		if err == nil || !transient(err) || ctx.Err() != nil {
			return rev, err
		}
		o.failed("put candidate key", err)
		if err := pause(ctx, campaignRetry); err != nil {
			return 0, err
		}
	}
}

func (c *Candidacy) putKeyOnce(ctx context.Context, value string) (int64, error) {
	tctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	put := clientv3.OpPut(c.key, value, clientv3.WithLease(c.lease.ID()))
	resp, err := c.store.client.Txn(tctx).
		If(clientv3.Compare(clientv3.CreateRevision(c.key), "=", 0)).
		Then(put).
		Else(clientv3.OpGet(c.key)).
		Commit()
	if err != nil {
		return 0, err
	}
	if resp.Succeeded {
		return resp.Header.Revision, nil
	}
	// The key is left from an earlier campaign on this lease: keep its
	// place, update its value.
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		return 0, status.Error(codes.Unavailable, "candidate key vanished during the transaction")
	}
	if kvs[0].Lease != int64(c.lease.ID()) {
		// Written by hand, or left by a restore: it would outlive our
		// revoke. Not ours to take over; the next lease gets another key.
		return 0, fmt.Errorf("candidate key %s exists on lease %x, not on ours", c.key, kvs[0].Lease)
	}
	rev := kvs[0].CreateRevision
	if string(kvs[0].Value) != value {
		uresp, err := c.store.client.Txn(tctx).
			If(clientv3.Compare(clientv3.CreateRevision(c.key), "=", rev)).
			Then(put).
			Commit()
		if err != nil {
			return 0, err
		}
		if !uresp.Succeeded {
			return 0, status.Error(codes.Unavailable, "candidate key replaced during the update")
		}
	}
	return rev, nil
}

// waitTurn returns once no candidate key created before rev is left, as
// concurrency's waitDeletes does: it waits for the deletion of the newest
// one ahead, then looks again. It returns the read that found none ahead:
// every candidate key, in campaign order, which verify checks the win on
// without a read of its own.
func (c *Candidacy) waitTurn(ctx context.Context, rev int64, o *outage) (*clientv3.GetResponse, error) {
	for {
		turn, err := c.watchTurn(ctx, rev, o)
		var rerr *readError
		switch {
		case err == nil:
			return turn, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.As(err, &rerr) && !transient(rerr.err):
			return nil, rerr.err
		case rerr != nil:
			o.failed("read the candidates ahead", rerr.err)
		default:
			// The watch broke (no leader, compacted): read again shortly.
			o.failed("watch the candidates ahead", err)
		}
		if err := pause(ctx, campaignRetry); err != nil {
			return nil, err
		}
	}
}

// readError is a failed read of the candidates ahead.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }

// watchTurn is waitTurn on one watch of the candidates' deletes. The watch
// starts at etcd's current revision and is registered before the first
// read, so no delete falls between the two, and etcd serves it at once: a
// watch from a revision it has passed (anything was written since a read)
// is "unsynced", its events delivered only at etcd's next sync, up to
// 100 ms later, which a switchover's target would wait out.
func (c *Candidacy) watchTurn(ctx context.Context, rev int64, o *outage) (*clientv3.GetResponse, error) {
	pfx := c.store.CandidatesPrefix()
	wctx, cancel := context.WithCancel(ctx)
	wch := c.store.client.Watch(wctx, pfx, clientv3.WithPrefix(), clientv3.WithFilterPut(), clientv3.WithCreatedNotify())
	defer func() {
		cancel()
		for range wch {
			// drain until the watcher closes so nothing is left behind
		}
	}()
	if wr, ok := <-wch; !ok {
		return nil, errWatchClosed
	} else if err := wr.Err(); err != nil {
		return nil, err
	}
	for {
		resp, err := c.readCandidates(ctx)
		if err != nil {
			return nil, &readError{err}
		}
		o.answered()
		ahead := c.store.newestAhead(resp.Kvs, rev)
		if ahead == nil {
			return resp, nil
		}
		if err := awaitDelete(wch, string(ahead.Key), resp.Header.Revision); err != nil {
			return nil, err
		}
	}
}

// readCandidates is Store.candidateKVs bounded by callTimeout.
func (c *Candidacy) readCandidates(ctx context.Context) (*clientv3.GetResponse, error) {
	gctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return c.store.candidateKVs(gctx)
}

// awaitDelete returns nil once wch reports the deletion of key after
// revision rev, or an error when the watch breaks or closes (ctx ended).
// ctx must require a leader, so that a watch served by a member cut off
// from its peers breaks instead of waiting for ever.
func awaitDelete(wch clientv3.WatchChan, key string, rev int64) error {
	for wr := range wch {
		if err := wr.Err(); err != nil {
			return err
		}
		for _, ev := range wr.Events {
			if ev.Type == mvccpb.DELETE && string(ev.Kv.Key) == key && ev.Kv.ModRevision > rev {
				return nil
			}
		}
	}
	return errWatchClosed
}

// errWatchClosed means a watch channel closed without an error: ctx ended
// or the client was closed.
var errWatchClosed = errors.New("election: watch closed")

// outage logs a campaign's failed requests once per outage, not once per
// retry, and their recovery.
type outage struct {
	logger  *slog.Logger
	failing bool
}

func (o *outage) failed(request string, err error) {
	if !o.failing {
		o.logger.Warn("campaign request failed; retrying", "request", request, "err", err)
	}
	o.failing = true
}

func (o *outage) answered() {
	if o.failing {
		o.logger.Info("campaign requests answered again")
	}
	o.failing = false
}

// verify checks the win before it is trusted: our key is the first
// created under the prefix, with our create revision, and there is
// headroom before the safe deadline. turn is the read that found our turn,
// if it still counts; nil reads again.
func (c *Candidacy) verify(ctx context.Context, rev int64, turn *clientv3.GetResponse) (*Tenure, error) {
	resp := turn
	if resp == nil {
		var err error
		if resp, err = c.readCandidates(ctx); err != nil {
			return nil, fmt.Errorf("verify leadership: %w", err)
		}
	}
	if first := c.store.firstCandidate(resp.Kvs); first == nil || string(first.Key) != c.key || first.CreateRevision != rev {
		return nil, ErrNotLeader
	}
	left := c.lease.untilSafeDeadline()
	if left <= 0 {
		return nil, ErrSafeDeadline
	}
	if left < c.opts.RenewInterval {
		return nil, errNoHeadroom
	}
	// The read may predate a loss the lease loop has already seen.
	if err := c.lease.Err(); err != nil {
		return nil, err
	}
	t := &Tenure{
		c:          c,
		key:        c.key,
		rev:        rev,
		candidates: make([]Candidate, 0, len(resp.Kvs)),
		lost:       newLoss(),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	for _, kv := range resp.Kvs {
		if cand, ok := c.store.decodeCandidate(kv); ok {
			t.candidates = append(t.candidates, cand)
		}
	}
	go t.watch(resp.Header.Revision + 1)
	return t, nil
}

// transient reports whether a failed request is worth retrying: etcd was
// unreachable, had no leader or did not answer in time. Anything else (no
// permission, a bad request) ends the campaign.
func transient(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	code := status.Code(err)
	var etcdErr rpctypes.EtcdError
	if errors.As(err, &etcdErr) {
		code = etcdErr.Code()
	}
	switch code {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted:
		return true
	}
	return false
}

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// afterDone calls fn once done is closed.
func afterDone(done <-chan struct{}, fn func()) {
	<-done
	fn()
}
