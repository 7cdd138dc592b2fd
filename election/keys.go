// Package election is the etcd side of leaderd: the etcd client
// (NewClient), a Store bound to one election's keys (candidates, control
// requests, tenure history, members), a lease with its own keepalive loop
// and safe deadline, and a guarded campaign and resign.
package election

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// CandidateValue is the JSON value of a candidate key.
type CandidateValue struct {
	ID    string    `json:"id"`
	Addr  string    `json:"addr"`
	Since time.Time `json:"since"`
	// Priority is the replica's --priority, so that a winner can see from
	// the candidates alone whether a higher one campaigns. A value without
	// it (an older leaderd, a hand-written key) reads as DefaultPriority.
	Priority int `json:"priority"`
}

// DefaultPriority is the priority of a replica without --priority, and of
// a candidate or member record that does not name one.
const DefaultPriority = 100

// Candidate is one key under the candidates prefix.
type Candidate struct {
	CandidateValue
	Key            string `json:"key"`
	LeaseID        int64  `json:"lease_id"`
	CreateRevision int64  `json:"create_revision"`
}

// FencingToken is the leader key's create revision: it strictly increases
// from one tenure to the next.
func (c Candidate) FencingToken() int64 { return c.CreateRevision }

// Candidates reads the candidates in campaign order (oldest key first): the
// first one is the leader. It returns the response revision too.
func (s *Store) Candidates(ctx context.Context) ([]Candidate, int64, error) {
	resp, err := s.candidateKVs(ctx)
	if err != nil {
		return nil, 0, err
	}
	out := make([]Candidate, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		c, ok, why := s.decodeCandidateWhy(kv)
		if why != "" {
			s.ignored.ignore(kv, why)
		}
		if ok {
			out = append(out, c)
		}
	}
	return out, resp.Header.Revision, nil
}

// candidateKVs reads every key under the candidates prefix in campaign
// order (by create revision), one linearizable read. Not WithKeysOnly: it
// drops the lease, which tells candidate keys apart.
func (s *Store) candidateKVs(ctx context.Context) (*clientv3.GetResponse, error) {
	return s.client.Get(ctx, s.CandidatesPrefix(), clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
}

// decodeCandidate is the candidate in kv; false when kv is not a candidate
// key (see isCandidateKey).
func (s *Store) decodeCandidate(kv *mvccpb.KeyValue) (Candidate, bool) {
	c, ok, _ := s.decodeCandidateWhy(kv)
	return c, ok
}

// decodeCandidateWhy is decodeCandidate, and why the value was not taken
// as leaderd's ("" when it was). A candidate key keeps its place whatever
// its value: campaigns wait for it, so status must show it where it is.
// A value without an id (empty, null, {}) is ignored: the candidate is
// shown with an empty id, which is no replica's (nor a switchover
// target's).
func (s *Store) decodeCandidateWhy(kv *mvccpb.KeyValue) (Candidate, bool, string) {
	if kv == nil || !s.isCandidateKey(kv) {
		return Candidate{}, false, ""
	}
	c := Candidate{Key: string(kv.Key), LeaseID: kv.Lease, CreateRevision: kv.CreateRevision}
	c.Priority = DefaultPriority // unless the value names one
	why := ""
	switch err := json.Unmarshal(kv.Value, &c.CandidateValue); {
	case len(kv.Value) == 0:
		c.CandidateValue, why = CandidateValue{Priority: DefaultPriority}, "empty candidate value"
	case err != nil:
		// A value written by another tool (etcdctl elect): show the raw
		// value as the id, and nothing a partial decode left in the other
		// fields.
		c.CandidateValue, why = CandidateValue{ID: string(kv.Value), Priority: DefaultPriority}, "candidate value is not leaderd's JSON: shown raw as the id"
	case c.ID == "":
		c.CandidateValue, why = CandidateValue{Priority: DefaultPriority}, "candidate value has no id"
	}
	return c, true, why
}

// isCandidateKey reports whether kv is a candidate key as campaigns make
// them: on a lease, named by that lease's id in hex, right under the
// candidates prefix. Anything else under the prefix (a stray put, the keys
// of a deployment whose prefix nests inside this one's candidates) never
// goes away by itself, or with another deployment's replicas, and would
// block the election if it counted: it is ignored, here and in every
// campaign.
func (s *Store) isCandidateKey(kv *mvccpb.KeyValue) bool {
	return kv.Lease != 0 && string(kv.Key) == s.CandidateKey(clientv3.LeaseID(kv.Lease))
}

// firstCandidate is the first candidate key in kvs, or nil.
func (s *Store) firstCandidate(kvs []*mvccpb.KeyValue) *mvccpb.KeyValue {
	for _, kv := range kvs {
		if s.isCandidateKey(kv) {
			return kv
		}
	}
	return nil
}

// newestAhead is the candidate key created last before rev in kvs, sorted
// by create revision; nil when none is ahead.
func (s *Store) newestAhead(kvs []*mvccpb.KeyValue, rev int64) *mvccpb.KeyValue {
	var ahead *mvccpb.KeyValue
	for _, kv := range kvs {
		if kv.CreateRevision >= rev {
			break
		}
		if s.isCandidateKey(kv) {
			ahead = kv
		}
	}
	return ahead
}

// LeaseHex formats a lease id as etcd's election keys do.
func LeaseHex(id int64) string { return strconv.FormatInt(id, 16) }
