package election

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Peers is one consistent read of the candidates (in campaign order) and
// the member records (by id): what a winner needs to decide whether a
// higher-priority replica campaigns.
type Peers struct {
	Candidates []Candidate
	Members    map[string]*Member
	Revision   int64
}

// ReadPeers reads the candidates and the member records in one
// transaction, so both are of the same revision. No lease TTLs are read
// (Members does that, one call each). Bounded by ctx.
func (s *Store) ReadPeers(ctx context.Context) (Peers, error) {
	resp, err := s.client.Txn(ctx).Then(
		clientv3.OpGet(s.CandidatesPrefix(), clientv3.WithPrefix(),
			clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend)),
		clientv3.OpGet(s.MembersPrefix(), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return Peers{}, err
	}
	p := Peers{Members: map[string]*Member{}, Revision: resp.Header.Revision}
	for _, kv := range resp.Responses[0].GetResponseRange().GetKvs() {
		c, ok, why := s.decodeCandidateWhy(kv)
		if why != "" {
			s.ignored.ignore(kv, why)
		}
		if ok {
			p.Candidates = append(p.Candidates, c)
		}
	}
	for _, kv := range resp.Responses[1].GetResponseRange().GetKvs() {
		if m := decodeMemberLogged(s.MembersPrefix(), kv, s.ignored); m != nil {
			p.Members[m.ID] = m
		}
	}
	return p, nil
}

// LeaseRenewed reports whether the lease has at least half its granted
// TTL left: its holder renews it (every TTL/4 for leaderd). A holder that
// was killed leaves its keys until the lease expires; this tells it from
// a live one. A lease that is gone is not renewed. Bounded by ctx.
func (s *Store) LeaseRenewed(ctx context.Context, lease int64) (bool, error) {
	resp, err := s.client.TimeToLive(ctx, clientv3.LeaseID(lease))
	if err != nil {
		return false, err
	}
	return resp.TTL > 0 && 2*resp.TTL >= resp.GrantedTTL, nil
}
