package election

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A candidate value rewritten by the keeper is not rewritten again before
// keepRetryMin, doubling up to keepRetryMax while someone keeps
// overwriting it (another leaderd with the same id, a script): never a
// tight loop. The pace relaxes once the value stayed for keepRetryMax.
const (
	keepRetryMin = 250 * time.Millisecond
	keepRetryMax = 5 * time.Second
)

// backoff bounds the pace of a keeper's rewrites: from min, doubling up to
// max. Production keeps keepRetryMin and keepRetryMax; tests shorten them.
type backoff struct{ min, max time.Duration }

// valueKeeper keeps this replica's value in its candidate key: a value
// overwritten by someone else would show the replica under another name
// (and no switchover could name it).
type valueKeeper struct {
	client *clientv3.Client
	key    string
	value  string
	rev    int64 // the key's create revision: its place and fencing token
	lease  clientv3.LeaseID
	pace   backoff
	logger *slog.Logger
}

// startKeeper keeps value in the candidate key created at rev until stop
// is called, the key is gone or replaced, or the lease is gone. stop does
// not wait: nothing on a step-down path waits for the keeper.
func startKeeper(client *clientv3.Client, key, value string, rev int64, lease clientv3.LeaseID, pace backoff, logger *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(context.Background()))
	k := &valueKeeper{client: client, key: key, value: value, rev: rev, lease: lease, pace: pace, logger: logger}
	go k.run(ctx)
	return cancel
}

// run rewrites the candidate value whenever it is not the kept one, in
// place: the put is guarded by the key's create revision (never recreating
// a key that a resign or the lease's end deleted, nor taking over a key
// made anew) and by the mod revision read (acting only on what was seen),
// and it puts the key on the lease. The create revision, the key's place
// in the election and the fencing token, does not change.
func (k *valueKeeper) run(ctx context.Context) {
	ignored := newIgnoredLog(k.logger)
	var lastRewrite time.Time
	gap := time.Duration(0) // no rewrite before lastRewrite + gap
	nextGap := k.pace.min
	for ctx.Err() == nil {
		gctx, gcancel := context.WithTimeout(ctx, callTimeout)
		resp, err := k.client.Get(gctx, k.key)
		gcancel()
		if err != nil {
			_ = pause(ctx, time.Second)
			continue
		}
		if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != k.rev {
			return // gone or replaced: nothing of ours to keep
		}
		kv := resp.Kvs[0]
		if string(kv.Value) == k.value && kv.Lease == int64(k.lease) {
			if err := k.waitChange(ctx, resp.Header.Revision+1); err != nil {
				_ = pause(ctx, campaignRetry) // the watch broke: read again shortly
			}
			continue
		}
		ignored.ignore(kv, "not the value this replica put in its candidate key: putting it back")
		if time.Since(lastRewrite) > k.pace.max {
			gap, nextGap = 0, k.pace.min
		}
		if d := time.Until(lastRewrite.Add(gap)); d > 0 {
			_ = pause(ctx, d)
			continue // read again: it may have changed meanwhile
		}
		pctx, pcancel := context.WithTimeout(ctx, callTimeout)
		_, err = k.client.Txn(pctx).
			If(clientv3.Compare(clientv3.CreateRevision(k.key), "=", k.rev),
				clientv3.Compare(clientv3.ModRevision(k.key), "=", kv.ModRevision)).
			Then(clientv3.OpPut(k.key, k.value, clientv3.WithLease(k.lease))).
			Commit()
		pcancel()
		switch {
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			return // the lease is gone, and the key with it
		case err != nil:
			_ = pause(ctx, time.Second)
		default:
			// Whether or not the guard held, read again: a failed guard
			// means it changed once more.
			lastRewrite = time.Now()
			gap, nextGap = nextGap, min(2*nextGap, k.pace.max)
		}
	}
}

// waitChange returns once the candidate key changes (or is deleted) after
// fromRev: nil; or when the watch breaks or ctx ends: an error.
func (k *valueKeeper) waitChange(ctx context.Context, fromRev int64) error {
	wctx, cancel := context.WithCancel(ctx)
	wch := k.client.Watch(wctx, k.key, clientv3.WithRev(fromRev))
	defer func() {
		cancel()
		for range wch {
			// drain until the watcher closes so nothing is left behind
		}
	}()
	for wr := range wch {
		if err := wr.Err(); err != nil {
			return err
		}
		if len(wr.Events) > 0 {
			return nil
		}
	}
	return errWatchClosed
}
