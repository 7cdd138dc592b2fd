package election

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
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

// Request asks the primary of a given tenure to step down: for a
// switchover, in favour of To only. A request for another tenure (From,
// FencingToken) is stale and ignored.
type Request struct {
	From         string    `json:"from"`
	FencingToken int64     `json:"fencing_token"`
	To           string    `json:"to,omitempty"`
	Requested    time.Time `json:"requested"`
	// At is when a scheduled request becomes due; zero: at once. Nothing
	// acts on a request before it is due, so a far-off At (garbage, or
	// hostile) only ever delays that one request, never the election.
	At      time.Time `json:"at,omitzero"`
	Expires time.Time `json:"expires"`
	// Revision is the key's mod revision, for a guarded clear.
	Revision int64 `json:"-"`
}

// Live reports whether the request has not expired at now.
func (r *Request) Live(now time.Time) bool { return r != nil && now.Before(r.Expires) }

// Due reports whether the request may be acted on at now: it is live and
// its At (if any) has come.
func (r *Request) Due(now time.Time) bool { return r.Live(now) && !now.Before(r.At) }

// UntilDue is how long until the request is due at now: 0 when it is due,
// expired, or nil.
func (r *Request) UntilDue(now time.Time) time.Duration {
	if !r.Live(now) || !now.Before(r.At) {
		return 0
	}
	return r.At.Sub(now)
}

// Same reports whether r and o are the same request: the same tenure,
// target, times (a request is identified by what it asks, not by the
// revision it was read at).
func (r *Request) Same(o *Request) bool {
	return r != nil && o != nil && r.From == o.From && r.FencingToken == o.FencingToken && r.To == o.To &&
		r.Requested.Equal(o.Requested) && r.At.Equal(o.At) && r.Expires.Equal(o.Expires)
}

// For reports whether the request names the tenure of leader (the first
// candidate): its id and fencing token. Only such a request is acted on;
// one for any other tenure is stale, however far off it expires.
func (r *Request) For(leader Candidate) bool {
	return r != nil && r.From != "" && r.From == leader.ID && r.FencingToken == leader.FencingToken()
}

// Control is the election's control state.
type Control struct {
	Paused     bool
	Resign     *Request
	Switchover *Request
}

// ReadControl reads the control keys. Bounded by ctx.
func (s *Store) ReadControl(ctx context.Context) (Control, int64, error) {
	pfx := s.ControlPrefix()
	resp, err := s.client.Get(ctx, pfx, clientv3.WithPrefix())
	if err != nil {
		return Control{}, 0, err
	}
	var c Control
	for _, kv := range resp.Kvs {
		switch name := strings.TrimPrefix(string(kv.Key), pfx); name {
		case controlPaused:
			c.Paused = true
		case controlResign:
			c.Resign = parseRequestLogged(name, kv, s.ignored)
		case controlSwitchover:
			c.Switchover = parseRequestLogged(name, kv, s.ignored)
		}
	}
	return c, resp.Header.Revision, nil
}

// parseRequest reads the request stored under the control key name, or
// nil when the value is not one: garbage, a request that names no tenure,
// or a switchover without a target (answering it would clear the resign
// key instead, and step down for no one in particular).
func parseRequest(name string, kv *mvccpb.KeyValue) *Request {
	r, _ := parseRequestWhy(name, kv)
	return r
}

func parseRequestLogged(name string, kv *mvccpb.KeyValue, ignored *ignoredLog) *Request {
	r, why := parseRequestWhy(name, kv)
	if why != "" {
		ignored.ignore(kv, why)
	}
	return r
}

// parseRequestWhy is parseRequest, and why the value was ignored ("" when
// it was not, or there is no kv).
func parseRequestWhy(name string, kv *mvccpb.KeyValue) (*Request, string) {
	if kv == nil {
		return nil, ""
	}
	var r Request
	if json.Unmarshal(kv.Value, &r) != nil {
		return nil, name + " request is not leaderd's JSON"
	}
	if r.From == "" {
		return nil, name + " request names no tenure (no from)"
	}
	if name == controlSwitchover && r.To == "" {
		return nil, "switchover request names no target (no to)"
	}
	if name == controlResign {
		// A resign names no target; one written with a "to" by another
		// tool must still be cleared from the resign key, which
		// ClearRequest picks by To.
		r.To = ""
	}
	r.Revision = kv.ModRevision
	return &r, ""
}

// WatchControl calls fn with the control state whenever it may have
// changed, and with an error when etcd cannot be read, until ctx ends.
func (s *Store) WatchControl(ctx context.Context, fn func(Control, error)) {
	watchPrefix(ctx, s.client, s.ControlPrefix(), func(ctx context.Context) (int64, error) {
		c, rev, err := s.ReadControl(ctx)
		fn(c, err)
		return rev, err
	})
}

// SetPaused pauses (or resumes) automatic role changes. Bounded by ctx.
func (s *Store) SetPaused(ctx context.Context, paused bool) error {
	key := s.ControlPrefix() + controlPaused
	var err error
	if paused {
		_, err = s.client.Put(ctx, key, time.Now().UTC().Format(time.RFC3339))
	} else {
		_, err = s.client.Delete(ctx, key)
	}
	return err
}

// ErrRequestPending means another resign or switchover request is live.
var ErrRequestPending = errors.New("election: another resign or switchover request is pending")

// PutRequest stores a resign request (r.To empty) or a switchover request,
// unless one of either kind is pending: live, and for the tenure that
// leads now. A stale one (its tenure is over, or it never was one; or its
// value is not a request) is replaced: a hostile request expiring in 9999
// must not block every later one. The check and the put are one
// transaction (both keys unchanged since they were read), so of racing
// requests one wins and the others see it pending. Bounded by ctx.
func (s *Store) PutRequest(ctx context.Context, r Request) error {
	name := controlResign
	if r.To != "" {
		name = controlSwitchover
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	pfx := s.ControlPrefix()
	resignKey, switchoverKey := pfx+controlResign, pfx+controlSwitchover
	for {
		read, err := s.client.Txn(ctx).Then(clientv3.OpGet(resignKey), clientv3.OpGet(switchoverKey),
			clientv3.OpGet(s.CandidatesPrefix(), clientv3.WithPrefix(),
				clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))).Commit()
		if err != nil {
			return fmt.Errorf("read the pending requests: %w", err)
		}
		resign := firstKV(read.Responses[0].GetResponseRange().GetKvs())
		switchover := firstKV(read.Responses[1].GetResponseRange().GetKvs())
		leader, leads := s.decodeCandidate(s.firstCandidate(read.Responses[2].GetResponseRange().GetKvs()))
		pending := func(r *Request) bool { return leads && r.Live(time.Now()) && r.For(leader) }
		if pending(parseRequest(controlResign, resign)) || pending(parseRequest(controlSwitchover, switchover)) {
			return ErrRequestPending
		}
		// A missing key's mod revision compares as 0.
		put, err := s.client.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(resignKey), "=", modRevision(resign)),
				clientv3.Compare(clientv3.ModRevision(switchoverKey), "=", modRevision(switchover))).
			Then(clientv3.OpPut(pfx+name, string(b))).
			Commit()
		if err != nil {
			return fmt.Errorf("store the %s request: %w", name, err)
		}
		if put.Succeeded {
			return nil
		}
		// Another request changed the keys since they were read: read again.
	}
}

func firstKV(kvs []*mvccpb.KeyValue) *mvccpb.KeyValue {
	if len(kvs) == 0 {
		return nil
	}
	return kvs[0]
}

func modRevision(kv *mvccpb.KeyValue) int64 {
	if kv == nil {
		return 0
	}
	return kv.ModRevision
}

// ErrRequestChanged means the request key changed since it was read: it was
// handled, cancelled or replaced meanwhile.
var ErrRequestChanged = errors.New("election: the request changed since it was read")

// CancelSwitchover deletes the switchover request r (as read by
// ReadControl), guarded by its revision so that it never deletes a newer
// request than the one the caller saw: ErrRequestChanged then. Bounded by
// ctx.
func (s *Store) CancelSwitchover(ctx context.Context, r *Request) error {
	key := s.ControlPrefix() + controlSwitchover
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", r.Revision)).
		Then(clientv3.OpDelete(key)).
		Commit()
	if err != nil {
		return fmt.Errorf("cancel the switchover request: %w", err)
	}
	if !resp.Succeeded {
		return ErrRequestChanged
	}
	return nil
}

// ClearRequest deletes a handled request if it was not replaced since it
// was read. Bounded by ctx.
func (s *Store) ClearRequest(ctx context.Context, r *Request) error {
	name := controlResign
	if r.To != "" {
		name = controlSwitchover
	}
	key := s.ControlPrefix() + name
	_, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", r.Revision)).
		Then(clientv3.OpDelete(key)).
		Commit()
	return err
}

// watchPrefix calls read (with a bounded context) at start and after every
// event under pfx, re-establishing the watch with a pause after errors,
// until ctx ends. read returns the revision it read at.
func watchPrefix(ctx context.Context, client *clientv3.Client, pfx string, read func(context.Context) (int64, error)) {
	watchReads(ctx, client, pfx, true, read)
}

// watchReads is watchPrefix for one key (prefix false) or a prefix. Its
// watches require a leader: a watch served by an etcd member cut off from
// its peers would otherwise wait for ever.
//
// One watch is kept for as long as it works, and each event is followed by
// a read, never by a new watch: a watch from a revision etcd has already
// passed (anything was written since the read) is "unsynced", and etcd
// delivers its events only at its next sync, up to 100 ms later.
func watchReads(ctx context.Context, client *clientv3.Client, key string, prefix bool, read func(context.Context) (int64, error)) {
	ctx = clientv3.WithRequireLeader(ctx)
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-retry.C:
		}
		rev, err := boundedRead(ctx, read)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			followReads(ctx, client, key, prefix, rev, read)
			if ctx.Err() != nil {
				return
			}
		}
		// A failed read, or a watch that broke (no leader, compacted).
		retry.Reset(time.Second)
	}
}

// boundedRead calls read with a context bounded by callTimeout.
func boundedRead(ctx context.Context, read func(context.Context) (int64, error)) (int64, error) {
	rctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return read(rctx)
}

// followReads watches key from rev+1 and reads again after every event
// newer than the last read, until the watch breaks, a read fails or ctx
// ends. Events that queued up during a read are answered by one read.
func followReads(ctx context.Context, client *clientv3.Client, key string, prefix bool, rev int64, read func(context.Context) (int64, error)) {
	opts := []clientv3.OpOption{clientv3.WithRev(rev + 1)}
	if prefix {
		opts = append(opts, clientv3.WithPrefix())
	}
	wctx, cancel := context.WithCancel(ctx)
	wch := client.Watch(wctx, key, opts...)
	defer func() {
		cancel()
		for range wch {
			// drain until the watcher closes so nothing is left behind
		}
	}()
	for {
		newer := false
		wr, ok := <-wch
		for ok {
			if wr.Err() != nil {
				return
			}
			newer = newer || newerEvent(wr.Events, rev)
			select {
			case wr, ok = <-wch:
				continue
			default:
			}
			break
		}
		if !ok {
			return
		}
		if !newer {
			continue // already read, or no event (a progress notice)
		}
		var err error
		if rev, err = boundedRead(ctx, read); err != nil {
			return
		}
	}
}

// newerEvent reports whether any event is newer than revision rev.
func newerEvent(evs []*clientv3.Event, rev int64) bool {
	for _, ev := range evs {
		if ev.Kv != nil && ev.Kv.ModRevision > rev {
			return true
		}
	}
	return false
}
