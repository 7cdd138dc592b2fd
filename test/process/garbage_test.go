package process

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/internal/etcdtest"
	"github.com/leaderd/leaderd/internal/replicas"
	"github.com/leaderd/leaderd/internal/timeline"
	"github.com/leaderd/leaderd/role"
	"github.com/leaderd/leaderd/sidecar"
)

// garbageMarker is in every garbage value that has room for it, so the
// replicas' logs can be searched for what they made of it.
const garbageMarker = "GARBAGE"

// maxGarbageLogLines bounds, per replica, the log lines that quote a
// garbage value: logging what was ignored once per key and episode is
// fine, logging it on every read is a flood. At most 6 values per key
// show the marker in their first 64 bytes (1 MiB, not JSON, two of the
// wrong shape, a wrong id, the final candidate value), and a replica
// reads and may log 9 of the keys (5 under candidates, its own candidate
// key again as it puts it back, its member key, resign, switchover): 54,
// and a stale request's fields once per term.
const maxGarbageLogLines = 60

// requireGarbageLogged: every replica logs some of the garbage it
// ignored (at least its own candidate value, overwritten and put back).
const requireGarbageLogged = true

// garbageValues are written, in this order, to every key: random bytes,
// empty, not JSON, JSON of the wrong shape, and leaderd-shaped JSON with
// hostile values (negative and huge tokens, long ids, ids with newlines,
// a request from a tenure that never was and expires in 9999), then
// random bytes again. hugeValue goes to one key of each kind. Last, each
// key gets its final value (finalValue), which stays.
func garbageValues(primaryID string) [][]byte {
	rng := rand.New(rand.NewPCG(8, 8))
	random := func() []byte {
		b := make([]byte, 512)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	longID := strings.Repeat("x", 4096) + garbageMarker
	return [][]byte{
		random(),
		{},
		[]byte(`{"id":"` + garbageMarker),
		[]byte(`["` + garbageMarker + `",1,2]`),
		[]byte(`"` + garbageMarker + `"`),
		[]byte(`null`),
		[]byte(`{"id":42,"fencing_token":"` + garbageMarker + `","since":"yesterday"}`),
		[]byte(fmt.Sprintf(`{"id":"%s","addr":"%s","since":"9999-12-31T23:59:59Z","role":"primary","phase":"primary","healthy":true,`+
			`"fencing_token":-9,"from":"%s","to":"%s\nto","requested":"1970-01-01T00:00:00Z","expires":"9999-12-31T23:59:59Z",`+
			`"start":"0001-01-01T00:00:00Z","end_reason":"%s\n%s"}`,
			longID, longID, primaryID, garbageMarker, garbageMarker, garbageMarker)),
		[]byte(fmt.Sprintf(`{"id":"%s\nid\n%s","fencing_token":9223372036854775807,"from":"%s","to":"%s",`+
			`"expires":"2000-01-01T00:00:00Z"}`, garbageMarker, primaryID, garbageMarker, longID)),
		random(),
	}
}

// hugeValue is 1 MiB, within etcd's default request limit of 1.5 MiB.
var hugeValue = bytes.Repeat([]byte(garbageMarker+" "), (1<<20)/(len(garbageMarker)+1))

// garbageKey is one key leaderd reads, and how to write it.
type garbageKey struct {
	key   string
	lease clientv3.LeaseID // 0: no lease
	keep  bool             // the key is a live replica's: keep its lease
	huge  bool             // gets hugeValue too
	final []byte           // the value left in place; nil: random bytes
}

// Final values, which stay for the rest of the test: a foreign campaigner
// named ghost and a switchover to it from a tenure that never was, a
// resign from the first primary's id with another token, both expiring
// in 9999 (stale requests: no standby may yield to them, and they may
// block no new request), valid member records that are not what the
// replicas published, and valid candidate values naming another replica
// (each replica must put its own back, and logs what it found).
const (
	finalGhost      = `{"id":"ghost","addr":"` + garbageMarker + `"}`
	finalSwitchover = `{"from":"nobody","fencing_token":-1,"to":"ghost","expires":"9999-12-31T23:59:59Z"}`
	finalResign     = `{"from":"%s","fencing_token":-9,"requested":"1970-01-01T00:00:00Z","expires":"9999-12-31T23:59:59Z"}`
	finalMember     = `{"id":"` + garbageMarker + `","role":"primary","phase":"primary","healthy":true,"fencing_token":9223372036854775807}`
	finalCandidate  = `{"id":"` + garbageMarker + `","addr":"` + garbageMarker + `"}`
)

// TestGarbageInEtcd: garbage in every key leaderd reads under its prefix
// (candidates, members, control requests, history; with no lease and on a
// foreign lease) crashes and wedges no sidecar: each stays alive and
// answers /status, a killed primary is replaced within TTL + 1.5s, a
// switchover still hands over, and the new tenure is recorded. Logging of
// the garbage is bounded.
func TestGarbageInEtcd(t *testing.T) {
	t.Parallel() // its own etcd and replicas; it waits more than it computes
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c := newCluster(t, ttl, demoteTimeout)
	primary := c.startThree(ctx)
	cli := etcdtest.NewClient(t, c.etcd.Endpoint())
	const prefix, name = "/leaderd", "process-test"
	// A foreign lease, never kept alive, outlives the test: keys on it
	// stay as long as the replicas have to live with them.
	foreign, err := cli.Grant(ctx, 600)
	if err != nil {
		t.Fatalf("grant: %v", err)
	}

	store := election.NewStore(cli, prefix, name)
	cands, members, control, history := store.CandidatesPrefix(), store.MembersPrefix(), store.ControlPrefix(), store.HistoryPrefix()
	keys := []garbageKey{
		{key: cands + election.LeaseHex(0x7e57)}, // a candidate's name, no lease
		{key: cands + election.LeaseHex(int64(foreign.ID)), lease: foreign.ID, huge: true, final: []byte(finalGhost)}, // a foreign campaigner
		{key: cands + "not-hex", lease: foreign.ID},
		{key: cands + "nested/" + election.LeaseHex(int64(foreign.ID)), lease: foreign.ID},
		{key: members + "ghost", huge: true},
		{key: members, final: []byte("null")}, // an empty id
		{key: members + "evil\nid", lease: foreign.ID},
		{key: control + "resign", huge: true, final: fmt.Appendf(nil, finalResign, primary.ID)},
		{key: control + "switchover", lease: foreign.ID, final: []byte(finalSwitchover)},
		{key: control + "other"},
		{key: history + "zzz", huge: true},
		{key: history + "-0000000000000000001"},
		{key: history + "00000000000000000000"},
	}
	// The replicas' own keys: the candidate keys (the leader's, whose
	// primary is killed below, and the standbys'), the member records and
	// the history records. Each replica puts its candidate value and its
	// member record back.
	cands0, _, err := store.Candidates(ctx)
	if err != nil || len(cands0) != 3 || cands0[0].ID != primary.ID {
		t.Fatalf("candidates %+v (%v), want %s first of 3", cands0, err, primary.ID)
	}
	for i, cd := range cands0 {
		keys = append(keys, garbageKey{key: cd.Key, keep: true, huge: i == 0, final: []byte(finalCandidate)})
	}
	for _, pfx := range []string{members, history} {
		resp, err := cli.Get(ctx, pfx, clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			t.Fatalf("get %s: %v", pfx, err)
		}
		for _, kv := range resp.Kvs {
			k := garbageKey{key: string(kv.Key), keep: true}
			if pfx == members {
				k.final = []byte(finalMember)
			}
			keys = append(keys, k)
		}
	}

	put := func(k garbageKey, v []byte) clientv3.Op {
		var opts []clientv3.OpOption
		switch {
		case k.keep:
			opts = append(opts, clientv3.WithIgnoreLease())
		case k.lease != 0:
			opts = append(opts, clientv3.WithLease(k.lease))
		}
		return clientv3.OpPut(k.key, string(v), opts...)
	}
	commit := func(ops ...clientv3.Op) {
		t.Helper()
		tctx, tcancel := context.WithTimeout(ctx, 5*time.Second)
		defer tcancel()
		if _, err := cli.Txn(tctx).Then(ops...).Commit(); err != nil {
			t.Fatalf("write garbage: %v", err)
		}
	}
	values := garbageValues(primary.ID)
	began := time.Now()
	for i, v := range values {
		if i == 1 { // 1 MiB to one key of each kind, one at a time
			for _, k := range keys {
				if k.huge {
					commit(put(k, hugeValue))
				}
			}
		}
		// Each value to every key at once: one change per key and value.
		ops := make([]clientv3.Op, 0, len(keys))
		for _, k := range keys {
			ops = append(ops, put(k, v))
		}
		commit(ops...)
	}
	finals := make([]clientv3.Op, 0, len(keys))
	for _, k := range keys {
		if k.final != nil {
			finals = append(finals, put(k, k.final))
		}
	}
	commit(finals...)
	t.Logf("wrote %d garbage values to %d keys in %s", len(values), len(keys), time.Since(began).Round(time.Millisecond))

	// Every sidecar lives through it and still answers /status: the
	// primary serving, the standbys campaigning.
	for id, r := range c.byID {
		want, ok := "standby campaigning", isCampaigningStandby
		if id == primary.ID {
			want, ok = "primary serving", func(st sidecar.Status) bool { return st.Phase == role.PhasePrimary }
		}
		sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
		waitStatus(sctx, t, r, want+" after the garbage", ok)
		scancel()
	}
	// The standbys ignore the stale requests (to ghost, which campaigns)
	// and say so.
	for id, r := range c.byID {
		if id != primary.ID {
			c.waitLog(ctx, r, "ignoring a stale control request")
		}
	}
	// Each replica put its candidate value and its member record back:
	// the election shows the replicas under their names, in their places.
	waitEtcd(ctx, t, "the replicas' candidate values and member records put back", func(ctx context.Context) bool {
		cands, _, err := store.Candidates(ctx)
		if err != nil || len(cands) < 4 {
			return false
		}
		// The nested key on the foreign lease counts too (its name is its
		// lease's id), after ghost: only the first four are checked.
		for i, want := range append(cands0[:3:3], election.Candidate{CandidateValue: election.CandidateValue{ID: "ghost"}}) {
			if cands[i].ID != want.ID || (i < 3 && (cands[i].Key != want.Key || cands[i].CreateRevision != want.CreateRevision)) {
				return false
			}
		}
		ms, err := store.Members(ctx)
		own := 0
		for _, m := range ms {
			if r := c.byID[m.ID]; r != nil && m.FencingToken != 9223372036854775807 {
				own++
			}
		}
		return err == nil && own == 3
	})

	// A crash of the primary is still covered.
	from := len(c.timeline())
	killed := time.Now()
	if err := primary.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL: %v", err)
	}
	if _, err := primary.Wait(exitTimeout); err != nil {
		t.Fatal(err)
	}
	bound := ttl + 1500*time.Millisecond
	next := c.waitEvent(ctx, bound+time.Second, from, timeline.Event{Hook: "promote", Phase: "end"}, otherThan(primary.ID))
	failover := next.At.Sub(killed)
	t.Logf("SIGKILL to %s's promote end: %s", next.ID, failover.Round(time.Millisecond))
	if failover > bound {
		t.Errorf("failover took %s, want at most TTL + 1.5s = %s", failover, bound)
	}
	newPrimary := c.byID[next.ID]
	st := waitStatus(ctx, t, newPrimary, "primary serving", func(st sidecar.Status) bool {
		return st.Role == role.Primary && st.Phase == role.PhasePrimary
	})
	var standby *replicas.Replica
	for id, r := range c.byID {
		if id != primary.ID && id != next.ID {
			standby = r
		}
	}
	waitStatus(ctx, t, standby, "standby campaigning", isCampaigningStandby)

	// The new tenure is recorded in the history, past the garbage records.
	recorded := func() bool {
		recs, err := store.History(ctx, 0)
		for _, r := range recs {
			if err == nil && r.ID == next.ID && r.FencingToken == st.FencingToken {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(5 * time.Second); !recorded(); {
		if time.Now().After(deadline) {
			t.Fatalf("no history record of %s's tenure %d after 5s", next.ID, st.FencingToken)
		}
		time.Sleep(pollInterval)
	}

	// A switchover still hands over, with the garbage still there: the
	// stale requests expiring in 9999 do not block it.
	from = len(c.timeline())
	asked := time.Now()
	out, err := exec.CommandContext(ctx, binary, "switchover", "--endpoints", c.etcd.Endpoint(), "--election", name, "--to", standby.ID).CombinedOutput()
	if err != nil {
		t.Fatalf("leaderd switchover --to %s: %v\n%s", standby.ID, err, out)
	}
	promoted := c.waitEvent(ctx, 5*time.Second, from, timeline.Event{Hook: "promote", Phase: "start", ID: standby.ID}, nil)
	t.Logf("switchover to %s's promote: %s", standby.ID, promoted.At.Sub(asked).Round(time.Millisecond))

	// Every survivor is alive, answers, and did not flood its log.
	for id, r := range c.byID {
		if id == primary.ID {
			continue
		}
		select {
		case <-r.Done():
			t.Errorf("%s exited", id)
		default:
		}
		if _, err := r.Status(ctx); err != nil {
			t.Errorf("%s /status: %v", id, err)
		}
	}
	for id := range c.byID {
		data, err := os.ReadFile(filepath.Join(c.set.Dir, id+".log"))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for line := range strings.SplitSeq(string(data), "\n") {
			if strings.Contains(line, garbageMarker) {
				n++
			}
		}
		t.Logf("%s: %d log lines mention the garbage (of %d bytes of log)", id, n, len(data))
		if n > maxGarbageLogLines {
			t.Errorf("%s logged the garbage %d times, want at most %d", id, n, maxGarbageLogLines)
		}
		if requireGarbageLogged && n == 0 {
			t.Errorf("%s did not log the garbage it ignored", id)
		}
	}
	c.assertSafeTimeline(map[string]time.Time{primary.ID: killed})
}

// waitEtcd polls etcd (no event to wait on) until ok, for at most 10s.
func waitEtcd(ctx context.Context, t *testing.T, what string, ok func(context.Context) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
		done := ok(rctx)
		rcancel()
		if done {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}
