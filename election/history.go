package election

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leaderd/leaderd/role"
)

// HistoryLimit is how many tenure records an election keeps: each
// RecordTenure trims the older ones, so the history never grows beyond it
// (for a moment, HistoryLimit+1).
const HistoryLimit = 100

// ErrBadFencingToken means a tenure record without a positive fencing
// token, which could not be given a key that sorts by token.
var ErrBadFencingToken = errors.New("election: fencing token must be positive")

// TenureRecord is one tenure as its primary recorded it, the JSON value of
// a history key.
type TenureRecord struct {
	ID           string    `json:"id"`
	FencingToken int64     `json:"fencing_token"`
	Start        time.Time `json:"start"`
	// End is zero while the tenure is open, and stays zero if the primary
	// crashed or was cut off before it could record the end (EndReason is
	// then empty too).
	End       time.Time   `json:"end,omitzero"`
	EndReason role.Reason `json:"end_reason,omitempty"`
}

// Open reports whether no end was recorded.
func (r TenureRecord) Open() bool { return r.End.IsZero() }

// RecordTenure writes rec under its fencing token and trims the history to
// the newest HistoryLimit records. A primary calls it twice per tenure: at
// the start (End zero) and at the end, which overwrites the first record.
// The put has no lease, as the history outlives the primary. Bounded by
// ctx: one transaction (put, then list the newest HistoryLimit+1 keys) and,
// once the history is full, one range delete.
func (s *Store) RecordTenure(ctx context.Context, rec TenureRecord) error {
	if rec.FencingToken <= 0 {
		return fmt.Errorf("record tenure %d: %w", rec.FencingToken, ErrBadFencingToken)
	}
	val, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("record tenure %d: %w", rec.FencingToken, err)
	}
	pfx := s.HistoryPrefix()
	resp, err := s.client.Txn(ctx).Then(
		clientv3.OpPut(s.historyKey(rec.FencingToken), string(val)),
		clientv3.OpGet(pfx, clientv3.WithPrefix(), clientv3.WithKeysOnly(),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend),
			clientv3.WithLimit(HistoryLimit+1)),
	).Commit()
	if err != nil {
		return fmt.Errorf("record tenure %d: %w", rec.FencingToken, err)
	}
	kvs := resp.Responses[1].GetResponseRange().GetKvs()
	if len(kvs) <= HistoryLimit {
		return nil
	}
	// kvs[HistoryLimit] is the newest key beyond the limit: delete it and
	// everything below it. The range end is exclusive, hence the NUL.
	// Concurrent writers only add keys above it, so this never deletes
	// one of the newest HistoryLimit.
	oldest := string(kvs[HistoryLimit].Key)
	if _, err := s.client.Delete(ctx, pfx, clientv3.WithRange(oldest+"\x00")); err != nil {
		return fmt.Errorf("record tenure %d: trim history: %w", rec.FencingToken, err)
	}
	return nil
}

// History reads the election's tenure records, newest first, at most limit
// of them (limit <= 0 means HistoryLimit). Open records are returned as
// they are: the caller knows whether the tenure is still current.
func (s *Store) History(ctx context.Context, limit int) ([]TenureRecord, error) {
	if limit <= 0 {
		limit = HistoryLimit
	}
	pfx := s.HistoryPrefix()
	resp, err := s.client.Get(ctx, pfx, clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend),
		clientv3.WithLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	out := make([]TenureRecord, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		rec, why := decodeTenureWhy(pfx, kv.Key, kv.Value)
		if why != "" {
			s.ignored.ignore(kv, why)
		}
		out = append(out, rec)
	}
	return out, nil
}

// decodeTenure is the tenure record stored under key (inside the history
// prefix pfx) with value.
func decodeTenure(pfx string, key, value []byte) TenureRecord {
	rec, _ := decodeTenureWhy(pfx, key, value)
	return rec
}

// decodeTenureWhy is decodeTenure, and why the value was not taken as
// leaderd's record ("" when it was).
func decodeTenureWhy(pfx string, key, value []byte) (TenureRecord, string) {
	var rec TenureRecord
	why := ""
	if err := json.Unmarshal(value, &rec); err != nil {
		// A value written by another tool: show the raw value as the
		// id, as Candidates does.
		rec, why = TenureRecord{ID: string(value)}, "history value is not leaderd's JSON: shown raw as the id"
	}
	// The key is authoritative for the token: it is what sorts.
	if token, err := strconv.ParseInt(strings.TrimPrefix(string(key), pfx), 10, 64); err == nil {
		rec.FencingToken = token
	}
	return rec, why
}
