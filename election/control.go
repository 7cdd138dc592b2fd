package election

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Control requests live under <prefix>/<election>/control/, so that any
// host with etcd access can steer the election (`leaderd resign`,
// `switchover`, `pause`, `resume`).
const (
	controlPaused     = "paused"
	controlResign     = "resign"
	controlSwitchover = "switchover"
)

// ControlPrefix is the prefix of the control keys.
func ControlPrefix(prefix, election string) string {
	return prefix + "/" + election + "/control/"
}

// Request asks the primary of a given tenure to step down: for a
// switchover, in favour of To only. A request for another tenure (From,
// FencingToken) is stale and ignored.
type Request struct {
	From         string    `json:"from"`
	FencingToken int64     `json:"fencing_token"`
	To           string    `json:"to,omitempty"`
	Requested    time.Time `json:"requested"`
	Expires      time.Time `json:"expires"`
	// Revision is the key's mod revision, for a guarded clear.
	Revision int64 `json:"-"`
}

// Live reports whether the request has not expired at now.
func (r *Request) Live(now time.Time) bool { return r != nil && now.Before(r.Expires) }

// Control is the election's control state.
type Control struct {
	Paused     bool
	Resign     *Request
	Switchover *Request
}

// ReadControl reads the control keys. Bounded by ctx.
func ReadControl(ctx context.Context, client *clientv3.Client, prefix, election string) (Control, int64, error) {
	pfx := ControlPrefix(prefix, election)
	resp, err := client.Get(ctx, pfx, clientv3.WithPrefix())
	if err != nil {
		return Control{}, 0, err
	}
	var c Control
	for _, kv := range resp.Kvs {
		switch strings.TrimPrefix(string(kv.Key), pfx) {
		case controlPaused:
			c.Paused = true
		case controlResign, controlSwitchover:
			var r Request
			if json.Unmarshal(kv.Value, &r) != nil {
				continue
			}
			r.Revision = kv.ModRevision
			if strings.HasSuffix(string(kv.Key), controlResign) {
				c.Resign = &r
			} else {
				c.Switchover = &r
			}
		}
	}
	return c, resp.Header.Revision, nil
}

// WatchControl calls fn with the control state whenever it may have
// changed, and with an error when etcd cannot be read, until ctx ends.
func WatchControl(ctx context.Context, client *clientv3.Client, prefix, election string, fn func(Control, error)) {
	watchPrefix(ctx, client, ControlPrefix(prefix, election), func(ctx context.Context) (int64, error) {
		c, rev, err := ReadControl(ctx, client, prefix, election)
		fn(c, err)
		return rev, err
	})
}

// SetPaused pauses (or resumes) automatic role changes. Bounded by ctx.
func SetPaused(ctx context.Context, client *clientv3.Client, prefix, election string, paused bool) error {
	key := ControlPrefix(prefix, election) + controlPaused
	var err error
	if paused {
		_, err = client.Put(ctx, key, time.Now().UTC().Format(time.RFC3339))
	} else {
		_, err = client.Delete(ctx, key)
	}
	return err
}

// ErrRequestPending means another resign or switchover request is live.
var ErrRequestPending = errors.New("election: another resign or switchover request is pending")

// PutRequest stores a resign request (r.To empty) or a switchover request,
// unless a live one of either kind exists. Bounded by ctx.
func PutRequest(ctx context.Context, client *clientv3.Client, prefix, election string, r Request) error {
	c, _, err := ReadControl(ctx, client, prefix, election)
	if err != nil {
		return err
	}
	now := time.Now()
	if c.Resign.Live(now) || c.Switchover.Live(now) {
		return ErrRequestPending
	}
	name := controlResign
	if r.To != "" {
		name = controlSwitchover
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := client.Put(ctx, ControlPrefix(prefix, election)+name, string(b)); err != nil {
		return fmt.Errorf("store the %s request: %w", name, err)
	}
	return nil
}

// ClearRequest deletes a handled request if it was not replaced since it
// was read. Bounded by ctx.
func ClearRequest(ctx context.Context, client *clientv3.Client, prefix, election string, r *Request) error {
	name := controlResign
	if r.To != "" {
		name = controlSwitchover
	}
	key := ControlPrefix(prefix, election) + name
	_, err := client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", r.Revision)).
		Then(clientv3.OpDelete(key)).
		Commit()
	return err
}

// watchPrefix calls read (with a bounded context) at start and after every
// event under pfx, re-establishing the watch with a pause after errors,
// until ctx ends. read returns the revision it read at.
func watchPrefix(ctx context.Context, client *clientv3.Client, pfx string, read func(context.Context) (int64, error)) {
	ctx = clientv3.WithRequireLeader(ctx)
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-retry.C:
		}
		rctx, cancel := context.WithTimeout(ctx, callTimeout)
		rev, err := read(rctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			retry.Reset(time.Second)
			continue
		}
		wctx, wcancel := context.WithCancel(ctx)
		wch := client.Watch(wctx, pfx, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
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
