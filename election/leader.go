package election

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// WatchLeader calls fn with the candidates in campaign order whenever they
// may have changed, and with an error when etcd cannot be read, until ctx
// ends. Its own watch and reads are used because Observe never reports
// deletions and closes silently on errors.
func WatchLeader(ctx context.Context, client *clientv3.Client, prefix, election string, fn func([]Candidate, error)) {
	ctx = clientv3.WithRequireLeader(ctx)
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-retry.C:
		}
		gctx, cancel := context.WithTimeout(ctx, callTimeout)
		cands, rev, err := Candidates(gctx, client, prefix, election)
		cancel()
		if ctx.Err() != nil {
			return
		}
		fn(cands, err)
		if err != nil {
			retry.Reset(time.Second)
			continue
		}
		// Any event under the prefix means: read again.
		wctx, wcancel := context.WithCancel(ctx)
		wch := client.Watch(wctx, CandidatesPrefix(prefix, election)+"/", clientv3.WithPrefix(), clientv3.WithRev(rev+1))
		wr, ok := <-wch
		wcancel()
		for range wch {
			// drain until the watcher closes so nothing is left behind
		}
		if ok && wr.Err() != nil {
			retry.Reset(time.Second)
			continue
		}
		retry.Reset(0)
	}
}
