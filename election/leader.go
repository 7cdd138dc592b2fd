package election

import "context"

// WatchLeader calls fn with the candidates in campaign order whenever they
// may have changed, and with an error when etcd cannot be read, until ctx
// ends. Its own watch and reads are used because Observe never reports
// deletions and closes silently on errors.
func (s *Store) WatchLeader(ctx context.Context, fn func([]Candidate, error)) {
	watchPrefix(ctx, s.client, s.CandidatesPrefix(), func(ctx context.Context) (int64, error) {
		cands, rev, err := s.Candidates(ctx)
		fn(cands, err)
		return rev, err
	})
}
