package election

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"log/slog"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leaderd/leaderd/internal/etcdtest"
)

// logCapture collects JSON log records.
type logCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func captureLogs() (*slog.Logger, *logCapture) {
	c := &logCapture{}
	return slog.New(slog.NewJSONHandler(c, &slog.HandlerOptions{Level: slog.LevelDebug})), c
}

func (c *logCapture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

// ignored is the "ignoring a value in etcd" records, by key.
func (c *logCapture) ignored(t *testing.T) map[string][]map[string]any {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string][]map[string]any{}
	for line := range strings.SplitSeq(strings.TrimSpace(c.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] != "ignoring a value in etcd" {
			continue
		}
		if rec["level"] != "WARN" {
			t.Errorf("ignored value logged at %v, want WARN: %v", rec["level"], rec)
		}
		if v, _ := rec["value"].(string); len(v) > quotedValueBytes*4+8 {
			t.Errorf("logged value of %d characters: %q", len(v), v)
		}
		key, _ := rec["key"].(string)
		out[key] = append(out[key], rec)
	}
	return out
}

func (c *logCapture) count(t *testing.T, key string) int {
	return len(c.ignored(t)[key])
}

// waitFor polls cond (etcd reads: no event to wait on) until it holds or
// bound passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func getKey(t *testing.T, cli *clientv3.Client, key string) *struct {
	value          string
	lease, created int64
	modified       int64
} {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	kv := resp.Kvs[0]
	return &struct {
		value          string
		lease, created int64
		modified       int64
	}{string(kv.Value), kv.Lease, kv.CreateRevision, kv.ModRevision}
}

func newLoggedCandidacy(t *testing.T, cli *clientv3.Client, logger *slog.Logger) *Candidacy {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	c, err := NewCandidacy(ctx, testStore(cli), testLease, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = c.Close(ctx)
	})
	return c
}

// A candidate value overwritten by someone else (garbage, a value without
// an id, a put that took the key off its lease) is put back, in place:
// the leader's and a waiting candidate's alike. The key's create revision
// (its place in the election, the fencing token) and its lease stay, and
// each overwrite is logged once, quoted and cut short.
func TestOverwrittenCandidateValueIsPutBackInPlace(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	logger, logs := captureLogs()
	leader := newLoggedCandidacy(t, cli, logger)
	waiter := newLoggedCandidacy(t, cli, logger)
	// The back-off is TestCandidateValueKeeperBacksOff's: here each repair
	// may come at once.
	leader.keepPace = backoff{min: 10 * time.Millisecond, max: 100 * time.Millisecond}
	waiter.keepPace = leader.keepPace
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	rl := result(t, campaign(leader, ctx, "leader"))
	if rl.err != nil {
		t.Fatal(rl.err)
	}
	defer rl.ten.Stop()
	wctx, withdraw := context.WithCancel(ctx)
	wch := campaign(waiter, wctx, "waiter")
	waitCandidates(t, cli, 2)

	huge := strings.Repeat("GARBAGE ", 1<<17)
	for _, c := range []struct {
		cand *Candidacy
		id   string
	}{{leader, "leader"}, {waiter, "waiter"}} {
		want := `{"id":"` + c.id + `"}`
		before := getKey(t, cli, c.cand.key)
		if before == nil || before.value != want || before.lease != int64(c.cand.Lease().ID()) {
			t.Fatalf("%s's key before: %+v", c.id, before)
		}
		for _, g := range []struct {
			value string
			opt   clientv3.OpOption
		}{
			{huge, clientv3.WithIgnoreLease()},
			{"{}", clientv3.WithIgnoreLease()},
			{`{"id":"intruder"}`, clientv3.WithIgnoreLease()},
			{want, nil}, // the right value, but off the lease
		} {
			var opts []clientv3.OpOption
			if g.opt != nil {
				opts = append(opts, g.opt)
			}
			put, err := cli.Put(ctx, c.cand.key, g.value, opts...)
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, c.id+"'s value put back", func() bool {
				now := getKey(t, cli, c.cand.key)
				return now != nil && now.modified > put.Header.Revision && now.value == want && now.lease == before.lease
			})
			if now := getKey(t, cli, c.cand.key); now.created != before.created {
				t.Fatalf("%s's key: create revision %d after the repair, want %d unchanged", c.id, now.created, before.created)
			}
		}
		if n := logs.count(t, c.cand.key); n != 4 {
			t.Errorf("%s's key: %d overwrites logged, want 4 (one per overwrite): %v", c.id, n, logs.ignored(t))
		}
	}
	if got := rl.ten.FencingToken(); got != getKey(t, cli, leader.key).created {
		t.Fatalf("fencing token %d, key created at %d", got, getKey(t, cli, leader.key).created)
	}
	select {
	case <-rl.ten.Lost():
		t.Fatalf("the tenure was lost: %v", rl.ten.Err())
	default:
	}
	withdraw()
	<-wch
}

// Someone who keeps overwriting a candidate value (another leaderd with
// the same id, say) gets no tight loop: the keeper backs off between its
// puts, and the value is back once they stop.
func TestCandidateValueKeeperBacksOff(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	cand := newLoggedCandidacy(t, cli, nil)
	// Production's bounds (0.25s to 5s) and the fight below, all half
	// as long: the same number of rewrites, in half the time.
	const scale = 2
	cand.keepPace = backoff{min: keepRetryMin / scale, max: keepRetryMax / scale}
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	r := result(t, campaign(cand, ctx, "me"))
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.ten.Stop()
	want := `{"id":"me"}`
	start := getKey(t, cli, cand.key)

	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	events := cli.Watch(wctx, cand.key, clientv3.WithRev(start.modified+1))
	const fight = 2 * time.Second / scale
	for end := time.Now().Add(fight); time.Now().Before(end); time.Sleep(20 * time.Millisecond / scale) {
		if _, err := cli.Put(ctx, cand.key, `{"id":"twin"}`, clientv3.WithIgnoreLease()); err != nil {
			t.Fatal(err)
		}
	}
	fought := getKey(t, cli, cand.key).modified
	waitFor(t, "the value put back", func() bool { return getKey(t, cli, cand.key).value == want })
	restored := getKey(t, cli, cand.key).modified
	rewrites := 0
	for seen := int64(0); seen < restored; {
		wr, ok := <-events
		if !ok {
			t.Fatal("the watch closed")
		}
		for _, ev := range wr.Events {
			seen = ev.Kv.ModRevision
			if seen <= fought && string(ev.Kv.Value) == want {
				rewrites++
			}
		}
	}
	// Puts at least min, 2min, 4min apart: 4 in 8min (a few more allowed
	// for a slow machine), not one per overwrite (about 100).
	t.Logf("%d rewrites during %s of overwrites", rewrites, fight)
	if rewrites < 1 || rewrites > 6 {
		t.Fatalf("%d rewrites during %s of overwrites every %s, want 1 to 6", rewrites, fight, 20*time.Millisecond/scale)
	}
	if now := getKey(t, cli, cand.key); now.created != start.created || now.lease != start.lease {
		t.Fatalf("key %+v after the fight, want created %d on lease %x", now, start.created, start.lease)
	}
}

// watchCalls runs watch in the background and returns a channel that
// receives a value after each of its callbacks.
func watchCalls(t *testing.T, watch func(ctx context.Context, called func())) <-chan struct{} {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	calls := make(chan struct{}, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		watch(ctx, func() {
			select {
			case calls <- struct{}{}:
			default:
			}
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return calls
}

func waitCall(t *testing.T, calls <-chan struct{}) {
	t.Helper()
	select {
	case <-calls:
	case <-time.After(bound):
		t.Fatal("no callback")
	}
}

// Each value a watch ignores is logged at WARN, once per key and mod
// revision however often the watch reads it again, naming the key and
// why, with the value quoted and cut to 64 bytes.
func TestIgnoredValuesAreLoggedOncePerRevision(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	logger, logs := captureLogs()
	lease, err := cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	candKey := testStore(nil).CandidateKey(lease.ID)
	memberKey := testStore(nil).MemberKey("r1")
	controlKey := testStore(nil).ControlPrefix() + "switchover"
	store := testStore(cli, LogIgnored(logger)) // one memory for the three watches, as in a replica
	leaderCalls := watchCalls(t, func(ctx context.Context, called func()) {
		store.WatchLeader(ctx, func([]Candidate, error) { called() })
	})
	controlCalls := watchCalls(t, func(ctx context.Context, called func()) {
		store.WatchControl(ctx, func(Control, error) { called() })
	})
	memberCalls := watchCalls(t, func(ctx context.Context, called func()) {
		store.WatchMember(ctx, "r1", func(*Member, error) { called() })
	})
	for _, calls := range []<-chan struct{}{leaderCalls, controlCalls, memberCalls} {
		waitCall(t, calls) // the first read
	}

	garbage := `{"id":"GARBAGE` + strings.Repeat("x", 1000)
	for _, k := range []struct {
		key   string
		opts  []clientv3.OpOption
		calls <-chan struct{}
		poke  string // another key under the same watch: a change there reads again
	}{
		{candKey, []clientv3.OpOption{clientv3.WithLease(lease.ID)}, leaderCalls, testStore(nil).CandidatesPrefix() + "stray"},
		{memberKey, nil, memberCalls, memberKey},
		{controlKey, nil, controlCalls, testStore(nil).ControlPrefix() + "other"},
	} {
		if _, err := cli.Put(ctx, k.key, garbage, k.opts...); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the garbage in "+k.key+" logged", func() bool { return logs.count(t, k.key) > 0 })
		if k.poke != k.key {
			// Read again three times: nothing more is logged.
			for range 3 {
				if _, err := cli.Put(ctx, k.poke, "x"); err != nil {
					t.Fatal(err)
				}
				waitCall(t, k.calls)
			}
		}
		recs := logs.ignored(t)[k.key]
		if len(recs) != 1 {
			t.Fatalf("%s: logged %d times for one revision, want once: %v", k.key, len(recs), recs)
		}
		rec := recs[0]
		if want := quoted([]byte(garbage), quotedValueBytes); rec["value"] != want || !strings.HasSuffix(want, `"...`) {
			t.Errorf("%s: logged value %q, want %q", k.key, rec["value"], want)
		}
		if why, _ := rec["why"].(string); why == "" {
			t.Errorf("%s: no reason logged: %v", k.key, rec)
		}
		if rec["value_bytes"] != float64(len(garbage)) {
			t.Errorf("%s: value_bytes %v, want %d", k.key, rec["value_bytes"], len(garbage))
		}
		// A new revision of garbage is logged again.
		if _, err := cli.Put(ctx, k.key, "null", k.opts...); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the second garbage in "+k.key+" logged", func() bool { return logs.count(t, k.key) == 2 })
	}
	if _, err := cli.Put(ctx, testStore(nil).HistoryPrefix()+"00000000000000000007", garbage); err != nil {
		t.Fatal(err)
	}
	history := testStore(cli, LogIgnored(logger)) // one memory for both reads
	for range 2 {
		if _, err := history.History(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}
	if n := logs.count(t, testStore(nil).HistoryPrefix()+"00000000000000000007"); n != 1 {
		t.Fatalf("history garbage logged %d times by two reads, want once", n)
	}
}

// Values without an id are ignored and logged: the members prefix key
// itself and a member value of null are no member; a candidate value
// that is empty, null, {} or has an empty id keeps its place (campaigns
// wait for its key) but shows no id.
func TestEmptyIDsAreIgnored(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	logger, logs := captureLogs()
	members := testStore(nil).MembersPrefix()
	for key, value := range map[string]string{
		members:          `{"id":"squatter","role":"primary"}`,
		members + "null": `null`,
		members + "ok":   `{"role":"standby"}`,
	} {
		if _, err := cli.Put(ctx, key, value); err != nil {
			t.Fatal(err)
		}
	}
	ms, err := testStore(cli, LogIgnored(logger)).Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].ID != "ok" {
		t.Fatalf("members %+v, want only ok", ms)
	}
	for _, key := range []string{members, members + "null"} {
		if n := logs.count(t, key); n != 1 {
			t.Errorf("member key %q ignored and logged %d times, want once", key, n)
		}
	}

	var keys []string
	for _, value := range []string{"", "null", "{}", `{"id":"","addr":"a:1"}`, `{"id":"named"}`} {
		lease, err := cli.Grant(ctx, 60)
		if err != nil {
			t.Fatal(err)
		}
		key := testStore(nil).CandidateKey(lease.ID)
		if _, err := cli.Put(ctx, key, value, clientv3.WithLease(lease.ID)); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key)
	}
	cands, _, err := testStore(cli, LogIgnored(logger)).Candidates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cands) != len(keys) {
		t.Fatalf("%d candidates, want %d: the keys keep their places", len(cands), len(keys))
	}
	for i, c := range cands[:4] {
		if c.Key != keys[i] || c.ID != "" || c.Addr != "" {
			t.Errorf("candidate %d: %+v, want key %s without an id", i, c, keys[i])
		}
		if n := logs.count(t, c.Key); n != 1 {
			t.Errorf("candidate %s logged %d times, want once", c.Key, n)
		}
	}
	if cands[4].ID != "named" || logs.count(t, cands[4].Key) != 0 {
		t.Errorf("the named candidate %+v was not taken as it is", cands[4])
	}
}
