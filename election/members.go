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

// MembersPrefix is where replicas publish their presence:
// <prefix>/<election>/members/<id>, each on its own lease.
func MembersPrefix(prefix, election string) string {
	return prefix + "/" + election + "/members/"
}

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
func PublishMember(ctx context.Context, client *clientv3.Client, prefix, election string, lease clientv3.LeaseID, m Member) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if _, err := client.Put(ctx, MembersPrefix(prefix, election)+m.ID, string(b), clientv3.WithLease(lease)); err != nil {
		return fmt.Errorf("publish member %s: %w", m.ID, err)
	}
	return nil
}

// WatchMember calls fn with the member record of id (nil: there is none)
// at once and after every change, as it is then (a burst of changes may be
// folded into its latest state), and with an error when etcd cannot be
// read, until ctx ends: a read, then a watch of the key from the next
// revision, read again on each change (no polling).
func WatchMember(ctx context.Context, client *clientv3.Client, prefix, election, id string, fn func(*Member, error), opts ...ReadOption) {
	cfg := readOptions(opts)
	key := MembersPrefix(prefix, election) + id
	watchReads(ctx, client, key, false, func(ctx context.Context) (int64, error) {
		resp, err := client.Get(ctx, key)
		if err != nil {
			fn(nil, err)
			return 0, err
		}
		var kv *mvccpb.KeyValue
		if len(resp.Kvs) > 0 {
			kv = resp.Kvs[0]
		}
		fn(decodeMemberLogged(prefix, election, kv, cfg.ignored), nil)
		return resp.Header.Revision, nil
	})
}

// decodeMember is the record in kv, nil when there is none or it is not
// one of ours.
func decodeMember(prefix, election string, kv *mvccpb.KeyValue) *Member {
	m, _ := decodeMemberWhy(prefix, election, kv)
	return m
}

func decodeMemberLogged(prefix, election string, kv *mvccpb.KeyValue, ignored *ignoredLog) *Member {
	m, why := decodeMemberWhy(prefix, election, kv)
	if why != "" {
		ignored.ignore(kv, why)
	}
	return m
}

// decodeMemberWhy is decodeMember, and why kv was ignored ("" when it was
// not, or there is no kv). A record is a JSON object under a key that
// names an id.
func decodeMemberWhy(prefix, election string, kv *mvccpb.KeyValue) (*Member, string) {
	if kv == nil {
		return nil, ""
	}
	id := strings.TrimPrefix(string(kv.Key), MembersPrefix(prefix, election)) // the key is the authority
	if id == "" {
		return nil, "member key names no id"
	}
	var m Member
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
func Members(ctx context.Context, client *clientv3.Client, prefix, election string, opts ...ReadOption) ([]Member, error) {
	cfg := readOptions(opts)
	resp, err := client.Get(ctx, MembersPrefix(prefix, election), clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := make([]Member, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		m := decodeMemberLogged(prefix, election, kv, cfg.ignored)
		if m == nil {
			continue // not ours: skip rather than fail the whole read
		}
		if kv.Lease != 0 {
			if ttl, err := client.TimeToLive(ctx, clientv3.LeaseID(kv.Lease)); err == nil {
				m.LeaseSeconds = ttl.TTL
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
