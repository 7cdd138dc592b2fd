package election

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leaderd/leaderd/role"
)

// Member is what a replica publishes about itself. The key lives on the
// replica's lease, so a replica that is gone disappears with its lease.
type Member struct {
	ID      string     `json:"id"`
	Role    role.Role  `json:"role"`
	Phase   role.Phase `json:"phase"`   // as in /status
	Healthy bool       `json:"healthy"` // the local app's health
	Since   time.Time  `json:"since"`   // when this record's role began
	Version string     `json:"version"` // leaderd's version
	Addr    string     `json:"addr"`    // --advertise; may be empty
	// Priority is --priority; a record without it (an older leaderd) reads
	// as DefaultPriority.
	Priority int `json:"priority"`
	// FencingToken is the tenure's token while the replica is primary: a
	// record with phase primary and the leader key's token says that
	// tenure's promote has ended. 0 (absent) otherwise.
	FencingToken int64 `json:"fencing_token,omitempty"`
	// LeaseID and LeaseSeconds are filled in by Members from etcd, never
	// published.
	LeaseID      int64 `json:"-"`
	LeaseSeconds int64 `json:"-"`
}

// PublishMember puts m under the members prefix on lease. Bounded by ctx.
func (s *Store) PublishMember(ctx context.Context, lease clientv3.LeaseID, m Member) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if _, err := s.client.Put(ctx, s.MemberKey(m.ID), string(b), clientv3.WithLease(lease)); err != nil {
		return fmt.Errorf("publish member %s: %w", m.ID, err)
	}
	return nil
}

// WatchMember calls fn with the member record of id (nil: there is none)
// at once and after every change, as it is then (a burst of changes may be
// folded into its latest state), and with an error when etcd cannot be
// read, until ctx ends: a read, then a watch of the key from the next
// revision, read again on each change (no polling).
func (s *Store) WatchMember(ctx context.Context, id string, fn func(*Member, error)) {
	key := s.MemberKey(id)
	watchReads(ctx, s.client, key, false, func(ctx context.Context) (int64, error) {
		resp, err := s.client.Get(ctx, key)
		if err != nil {
			fn(nil, err)
			return 0, err
		}
		var kv *mvccpb.KeyValue
		if len(resp.Kvs) > 0 {
			kv = resp.Kvs[0]
		}
		fn(decodeMemberLogged(s.MembersPrefix(), kv, s.ignored), nil)
		return resp.Header.Revision, nil
	})
}

// decodeMember is the record in kv (inside the members prefix pfx), nil
// when there is none or it is not one of ours.
func decodeMember(pfx string, kv *mvccpb.KeyValue) *Member {
	m, _ := decodeMemberWhy(pfx, kv)
	return m
}

func decodeMemberLogged(pfx string, kv *mvccpb.KeyValue, ignored *ignoredLog) *Member {
	m, why := decodeMemberWhy(pfx, kv)
	if why != "" {
		ignored.ignore(kv, why)
	}
	return m
}

// decodeMemberWhy is decodeMember, and why kv was ignored ("" when it was
// not, or there is no kv). A record is a JSON object under a key that
// names an id.
func decodeMemberWhy(pfx string, kv *mvccpb.KeyValue) (*Member, string) {
	if kv == nil {
		return nil, ""
	}
	id := strings.TrimPrefix(string(kv.Key), pfx) // the key is the authority
	if id == "" {
		return nil, "member key names no id"
	}
	m := Member{Priority: DefaultPriority}
	if err := json.Unmarshal(kv.Value, &m); err != nil || !jsonObject(kv.Value) {
		return nil, "member value is not leaderd's JSON record"
	}
	m.ID = id
	m.LeaseID = kv.Lease
	return &m, ""
}

// jsonObject reports whether b, valid JSON, is an object (not null, which
// decodes into a struct without an error).
func jsonObject(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}

// Members reads the registered members, sorted by id, with the seconds
// left on each one's lease (one TimeToLive call per member). Bounded by ctx.
func (s *Store) Members(ctx context.Context) ([]Member, error) {
	resp, err := s.client.Get(ctx, s.MembersPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := make([]Member, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		m := decodeMemberLogged(s.MembersPrefix(), kv, s.ignored)
		if m == nil {
			continue // not ours: skip rather than fail the whole read
		}
		if kv.Lease != 0 {
			ttl, err := s.client.TimeToLive(ctx, clientv3.LeaseID(kv.Lease))
			switch {
			case err == nil:
				m.LeaseSeconds = ttl.TTL
			case ctx.Err() != nil:
				// etcd stopped answering mid-read: the read failed, it did
				// not succeed without the lease times.
				return nil, err
			}
		}
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Availability is healthy members / registered members: the share of the
// replicas that could take over. 0 when none is registered.
func Availability(ms []Member) float64 {
	if len(ms) == 0 {
		return 0
	}
	healthy := 0
	for _, m := range ms {
		if m.Healthy {
			healthy++
		}
	}
	return float64(healthy) / float64(len(ms))
}
