package election

import (
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Store is one election's keys in etcd, bound to a client, a key prefix
// and an election name (as etcd concurrency's Election is bound to its
// session and key prefix). Its methods read, watch and write those keys;
// no caller builds a key path by hand.
//
// The key layout, all under Root (<prefix>/<election>/):
//
//	candidates/<lease hex>    a candidate, on its lease; the oldest leads
//	control/<name>            paused (leaderd pause), resign, switchover
//	history/<token as %020d>  one record per tenure, on no lease
//	members/<id>              a replica's published record, on its lease
type Store struct {
	client   *clientv3.Client
	prefix   string
	election string
	ignored  *ignoredLog // nil: ignored values are not logged
}

// NewStore binds client to the election named election under prefix (for
// example /leaderd, without a trailing slash). The client stays the
// caller's to close.
func NewStore(client *clientv3.Client, prefix, election string, opts ...ReadOption) *Store {
	cfg := readOptions(opts)
	return &Store{client: client, prefix: prefix, election: election, ignored: cfg.ignored}
}

// Client is the etcd client the store was made with.
func (s *Store) Client() *clientv3.Client { return s.client }

// Election is the election's name.
func (s *Store) Election() string { return s.election }

// Root is the prefix every key of the election lives under,
// <prefix>/<election>/. It ends in a slash, as do the prefixes below, so
// that election "web" never reads "web2"'s keys.
func (s *Store) Root() string { return s.prefix + "/" + s.election + "/" }

// CandidatesPrefix is where the candidates' keys live, laid out as etcd's
// concurrency election lays them out (so `etcdctl elect` can observe):
// <prefix>/<election>/candidates/<lease hex>. concurrency.NewElection is
// given this prefix without its trailing slash.
func (s *Store) CandidatesPrefix() string { return s.Root() + "candidates/" }

// ControlPrefix is where the control requests live.
func (s *Store) ControlPrefix() string { return s.Root() + "control/" }

// HistoryPrefix is where the tenure records live, one key per tenure.
func (s *Store) HistoryPrefix() string { return s.Root() + "history/" }

// MembersPrefix is where replicas publish their presence, each on its own
// lease.
func (s *Store) MembersPrefix() string { return s.Root() + "members/" }

// CandidateKey is the key a campaign on lease puts.
func (s *Store) CandidateKey(lease clientv3.LeaseID) string {
	return s.CandidatesPrefix() + LeaseHex(int64(lease))
}

// MemberKey is the key of member id's record.
func (s *Store) MemberKey(id string) string { return s.MembersPrefix() + id }

// historyKey zero-pads the token, so keys sort as the tokens do.
func (s *Store) historyKey(token int64) string {
	return fmt.Sprintf("%s%020d", s.HistoryPrefix(), token)
}
