package election

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// WatchLeader calls fn with the candidates in campaign order whenever they
// may have changed, and with an error when etcd cannot be read, until ctx
// ends. Its own watch and reads are used because Observe never reports
// deletions and closes silently on errors.
func WatchLeader(ctx context.Context, client *clientv3.Client, prefix, election string, fn func([]Candidate, error), opts ...ReadOption) {
	watchPrefix(ctx, client, CandidatesPrefix(prefix, election)+"/", func(ctx context.Context) (int64, error) {
		cands, rev, err := Candidates(ctx, client, prefix, election, opts...)
		fn(cands, err)
		return rev, err
	})
}
