package election

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// MembersPrefix is where replicas publish their presence:
// <prefix>/<election>/members/<id>, each on its own lease.
func MembersPrefix(prefix, election string) string {
	return prefix + "/" + election + "/members/"
}

// Member is what a replica publishes about itself. The key lives on the
// replica's lease, so a replica that is gone disappears with its lease.
type Member struct {
	ID      string    `json:"id"`
	Role    string    `json:"role"`    // primary or standby
	Phase   string    `json:"phase"`   // as in /status
	Healthy bool      `json:"healthy"` // the local app's health
	Since   time.Time `json:"since"`   // when this record's role began
	Version string    `json:"version"` // leaderd's version
	Addr    string    `json:"addr"`    // --advertise; may be empty
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

// Members reads the registered members, sorted by id, with the seconds
// left on each one's lease (one TimeToLive call per member). Bounded by ctx.
func Members(ctx context.Context, client *clientv3.Client, prefix, election string) ([]Member, error) {
	resp, err := client.Get(ctx, MembersPrefix(prefix, election), clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := make([]Member, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var m Member
		if err := json.Unmarshal(kv.Value, &m); err != nil {
			continue // not ours: skip rather than fail the whole read
		}
		m.ID = strings.TrimPrefix(string(kv.Key), MembersPrefix(prefix, election)) // the key is the authority
		m.LeaseID = kv.Lease
		if kv.Lease != 0 {
			if ttl, err := client.TimeToLive(ctx, clientv3.LeaseID(kv.Lease)); err == nil {
				m.LeaseSeconds = ttl.TTL
			}
		}
		out = append(out, m)
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
