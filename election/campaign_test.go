package election

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/leaderd/leaderd/internal/etcdtest"
)

// A standby whose campaign watch is served by a member cut off from its
// peers must still take over: its watch requires a leader, so that member
// cancels it once it has none, and the standby reads again elsewhere.
// etcd's own Campaign waited for ever there, its renewals succeeding
// through the other members.
func TestCampaignTakesOverWhenItsWatchMemberIsIsolated(t *testing.T) {
	cluster := etcdtest.StartCluster(t, 3)
	lead := waitClusterLeader(t, cluster)
	iso, other := (lead+1)%3, (lead+2)%3
	// A long TTL: a renewal sent to the isolated member may hang until
	// its own deadline before the next one goes elsewhere.
	opts := LeaseOptions{TTL: 10 * time.Second, RenewInterval: 2500 * time.Millisecond, StepDownLead: 1500 * time.Millisecond}

	primaryCli := etcdtest.NewClient(t, cluster.Endpoint(lead))
	primary := newCandidacyWith(t, primaryCli, opts)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rp := result(t, campaign(primary, ctx, "primary"))
	if rp.err != nil {
		t.Fatal(rp.err)
	}
	defer rp.ten.Stop()

	// The standby reaches only the member to be isolated while it starts
	// to wait, so its watch is served there.
	watchOpened := make(chan struct{}, 1)
	cfg := etcdtest.ClientConfig(cluster.Endpoint(iso))
	cfg.DialOptions = append(cfg.DialOptions, grpc.WithChainStreamInterceptor(
		func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			if strings.HasSuffix(method, "/Watch") {
				select {
				case watchOpened <- struct{}{}:
				default:
				}
			}
			return streamer(ctx, desc, cc, method, opts...)
		}))
	standbyCli, err := clientv3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer standbyCli.Close()
	standby := newCandidacyWith(t, standbyCli, opts)
	sch := campaign(standby, ctx, "standby")
	waitClosed(t, watchOpened, "the standby's watch")
	// The standby's read of the key ahead is done (it precedes the watch):
	// cut its member off, and let its renewals reach the others.
	cluster.Isolate(iso)
	standbyCli.SetEndpoints(cluster.Endpoint(iso), cluster.Endpoint(lead), cluster.Endpoint(other))

	rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
	defer rcancel()
	if err := rp.ten.Resign(rctx); err != nil {
		t.Fatal(err)
	}
	resigned := time.Now()
	rs := result(t, sch)
	t.Logf("the standby took over %s after the resign", time.Since(resigned).Round(time.Millisecond))
	if rs.err != nil {
		t.Fatalf("the standby's campaign: %v", rs.err)
	}
	defer rs.ten.Stop()
	if rs.ten.FencingToken() <= rp.ten.FencingToken() {
		t.Fatalf("token %d after %d", rs.ten.FencingToken(), rp.ten.FencingToken())
	}
	select {
	case <-standby.Lost():
		t.Fatalf("the standby's lease was lost: %v", standby.Lease().Err())
	default:
	}
}

func waitClusterLeader(t *testing.T, c *etcdtest.Cluster) int {
	t.Helper()
	deadline := time.Now().Add(bound)
	tick := time.NewTicker(20 * time.Millisecond) // no event to wait on
	defer tick.Stop()
	for {
		lead, agreed := c.Leader(0), true
		for i := 1; i < c.Size(); i++ {
			agreed = agreed && c.Leader(i) == lead
		}
		if lead >= 0 && agreed {
			return lead
		}
		if time.Now().After(deadline) {
			t.Fatal("the cluster agreed on no leader")
		}
		<-tick.C
	}
}

func newCandidacyWith(t *testing.T, cli *clientv3.Client, opts LeaseOptions) *Candidacy {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	c, err := NewCandidacy(ctx, testStore(cli), opts, nil)
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

// A campaign given up while etcd is unreachable returns at once and
// leaves nothing behind: etcd's resigned on the client's context, which
// blocked until etcd answered again.
func TestCampaignAbandonedDuringOutageLeavesNoGoroutine(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	leader := newCandidacy(t, cli)
	rl := result(t, campaign(leader, context.Background(), "leader"))
	if rl.err != nil {
		t.Fatal(rl.err)
	}
	defer rl.ten.Stop()
	proxy := etcdtest.StartProxy(t, srv.Endpoint())
	waiter := newCandidacy(t, etcdtest.NewClient(t, proxy.Endpoint()))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := campaign(waiter, ctx, "waiter")
	waitCandidates(t, cli, 2)

	cutOff(t, proxy)
	cancel()
	if r := result(t, ch); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("abandoned campaign returned %+v, want context.Canceled", r)
	}
	waitNoGoroutine(t, "leaderd/election.(*Candidacy)", "client/v3/concurrency.")
}

// waitNoGoroutine waits (bounded) until no goroutine's stack mentions any
// of the given function names.
func waitNoGoroutine(t *testing.T, names ...string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond) // goroutines end without telling
	defer tick.Stop()
	for {
		left := goroutinesMentioning(names...)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutine(s) left behind:\n\n%s", len(left), strings.Join(left, "\n\n"))
		}
		<-tick.C
	}
}

func goroutinesMentioning(names ...string) []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if runs(g, names) {
			out = append(out, g)
		}
	}
	return out
}

// runs reports whether a goroutine's stack has a frame of one of names;
// the "created by" line names only its creator.
func runs(stack string, names []string) bool {
	for _, line := range strings.Split(stack, "\n") {
		if strings.HasPrefix(line, "created by ") {
			continue
		}
		for _, name := range names {
			if strings.Contains(line, name) {
				return true
			}
		}
	}
	return false
}

// Headroom: TTL 3s, renewals every second, lead 1.5s. The first renewal is
// due 1s after the grant, when only 0.5s is left before the safe deadline:
// less than one renew interval.
var headroomLease = LeaseOptions{TTL: 3 * time.Second, RenewInterval: time.Second, StepDownLead: 1500 * time.Millisecond}

// stalledRenewals returns a renewal call that reports each attempt and
// hangs until release is closed, then renews for real.
func stalledRenewals(cli *clientv3.Client, attempted chan<- struct{}, release <-chan struct{}) func(context.Context, clientv3.LeaseID) (*clientv3.LeaseKeepAliveResponse, error) {
	return func(ctx context.Context, id clientv3.LeaseID) (*clientv3.LeaseKeepAliveResponse, error) {
		select {
		case attempted <- struct{}{}:
		default:
		}
		select {
		case <-release:
			return cli.KeepAliveOnce(ctx, id)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func grantStalled(t *testing.T, cli *clientv3.Client, clk *jumpClock, keepAlive func(context.Context, clientv3.LeaseID) (*clientv3.LeaseKeepAliveResponse, error)) *Candidacy {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	opts := leaseOn(headroomLease, clk)
	l, err := grantWith(ctx, cli, opts, nil, renewFunc(keepAlive))
	if err != nil {
		t.Fatal(err)
	}
	c := candidacyOn(testStore(cli), l.logger, l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = c.Close(ctx)
	})
	return c
}

// A win with less than a renew interval left before the safe deadline,
// and no renewal to restore it, is no win: the campaign ends with the
// lease instead of handing out a tenure that is over at once.
func TestCampaignWithoutHeadroomReturnsNoTenure(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	attempted := make(chan struct{}, 1)
	clk := newJumpClock()
	c := grantStalled(t, cli, clk, stalledRenewals(cli, attempted, nil))
	clk.jump(c.Lease().untilRenewal())            // the first renewal is due: do not wait for it
	waitClosed(t, attempted, "the first renewal") // from now on, less than a renew interval is left
	if left := c.Lease().untilSafeDeadline(); left >= headroomLease.RenewInterval {
		t.Fatalf("%s left before the safe deadline at the first renewal, want less than %s", left, headroomLease.RenewInterval)
	}

	r := result(t, campaign(c, context.Background(), "late"))
	if r.ten != nil {
		r.ten.Stop()
		t.Fatalf("won with %s left before the safe deadline", c.Lease().untilSafeDeadline())
	}
	if !errors.Is(r.err, ErrSafeDeadline) {
		t.Fatalf("campaign returned %v, want ErrSafeDeadline", r.err)
	}
}

// The same late win, once a renewal restores the headroom, is a win.
func TestCampaignWinsOnceARenewalRestoresHeadroom(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	attempted, release := make(chan struct{}, 1), make(chan struct{})
	clk := newJumpClock()
	c := grantStalled(t, cli, clk, stalledRenewals(cli, attempted, release))
	clk.jump(c.Lease().untilRenewal()) // the first renewal is due: do not wait for it
	waitClosed(t, attempted, "the first renewal")
	granted := c.Lease().Deadline()

	type won struct {
		ten      *Tenure
		err      error
		deadline time.Time // the lease's, as the campaign returned
	}
	ch := make(chan won, 1)
	go func() {
		ten, err := c.Campaign(context.Background(), `{"id":"late"}`)
		ch <- won{ten, err, c.Lease().Deadline()}
	}()
	waitCandidates(t, cli, 1)
	close(release)

	var w won
	select {
	case w = <-ch:
	case <-time.After(bound):
		t.Fatal("campaign did not return")
	}
	if w.err != nil {
		t.Fatalf("campaign: %v", w.err)
	}
	defer w.ten.Stop()
	if !w.deadline.After(granted) {
		t.Fatal("won before any renewal restored the headroom")
	}
}

// Campaigning again on the same lease keeps the candidate's place (its
// create revision, the fencing token it would win with) and updates its
// value, as etcd's concurrency election does.
func TestCampaignAgainKeepsItsPlace(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	leader, waiter := newCandidacy(t, cli), newCandidacy(t, cli)
	rl := result(t, campaign(leader, context.Background(), "leader"))
	if rl.err != nil {
		t.Fatal(rl.err)
	}
	first, cancelFirst := context.WithCancel(context.Background())
	ch := campaign(waiter, first, "old")
	waitCandidates(t, cli, 2)
	cancelFirst()
	if r := result(t, ch); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled campaign returned %+v", r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	before, _, err := testStore(cli).Candidates(ctx)
	if err != nil || len(before) != 2 {
		t.Fatalf("candidates %+v %v", before, err)
	}

	ch = campaign(waiter, ctx, "new")
	deadline := time.Now().Add(bound)
	for {
		cands, _, err := testStore(cli).Candidates(ctx)
		if err == nil && len(cands) == 2 && cands[1].ID == "new" {
			if cands[1].CreateRevision != before[1].CreateRevision {
				t.Fatalf("the key was created anew: revision %d, was %d", cands[1].CreateRevision, before[1].CreateRevision)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the value was never updated: %+v %v", cands, err)
		}
		time.Sleep(20 * time.Millisecond) // polling etcd: no event to wait on
	}
	if err := rl.ten.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	r := result(t, ch)
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.ten.Stop()
	if r.ten.FencingToken() != before[1].CreateRevision {
		t.Fatalf("won with token %d, want the key's create revision %d", r.ten.FencingToken(), before[1].CreateRevision)
	}
}

// Keys under the candidates prefix that no campaign made (no lease, or a
// name that is not their lease's id: a stray put, the keys of a deployment
// whose prefix nests inside this one's candidates) never go away by
// themselves; a campaign must not wait behind them for ever, and status
// readers must not show them as the leader.
func TestCampaignIgnoresKeysNoCampaignMade(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	pfx := testStore(nil).CandidatesPrefix()
	if _, err := cli.Put(ctx, pfx+"stray", "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, pfx+"history/00000000000000000042", `{"id":"nested"}`); err != nil {
		t.Fatal(err)
	}
	other := grant(t, cli)
	if _, err := cli.Put(ctx, pfx+"members/a", `{"id":"a"}`, clientv3.WithLease(other.ID())); err != nil {
		t.Fatal(err)
	}
	c := newCandidacy(t, cli)
	r := result(t, campaign(c, ctx, "a"))
	if r.err != nil {
		t.Fatalf("campaign behind keys no campaign made: %v", r.err)
	}
	r.ten.Stop()
	cands, _, err := testStore(cli).Candidates(ctx)
	if err != nil || len(cands) != 1 || cands[0].ID != "a" {
		t.Fatalf("candidates %+v, %v; want only a", cands, err)
	}
}

// A key with our candidate key's name on another lease (written by hand,
// left by a restore) is not taken over: it would outlive our revoke.
func TestCampaignRefusesItsKeyOnAnotherLease(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	c := newCandidacy(t, cli)
	if _, err := cli.Put(ctx, c.key, `{"id":"impostor"}`); err != nil {
		t.Fatal(err)
	}
	r := result(t, campaign(c, ctx, "a"))
	if r.err == nil {
		r.ten.Stop()
		t.Fatal("campaigned on a key that is not on its lease")
	}
}

// TestCampaignVerifiesOnTheReadThatFoundItsTurn: a waiting candidate
// reads the candidates once when it starts waiting and once after the
// deletion of the key ahead, and that second read is its verification: a
// hand-off costs one linearizable read, not two.
func TestCampaignVerifiesOnTheReadThatFoundItsTurn(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	var prefixReads atomic.Int64
	pfx := testStore(nil).CandidatesPrefix()
	countReads := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if r, ok := req.(*etcdserverpb.RangeRequest); ok && string(r.Key) == pfx {
			prefixReads.Add(1) // once answered
		}
		return err
	}
	cfg := etcdtest.ClientConfig(srv.Endpoint())
	cfg.DialOptions = append(cfg.DialOptions, grpc.WithChainUnaryInterceptor(countReads))
	counted, err := clientv3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = counted.Close() })

	a, b := newCandidacy(t, cli), newCandidacy(t, counted)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ra := result(t, campaign(a, ctx, "a"))
	if ra.err != nil {
		t.Fatal(ra.err)
	}
	bch := campaign(b, ctx, "b")
	waitCandidates(t, cli, 2)
	deadline := time.Now().Add(bound)
	for prefixReads.Load() < 1 { // b has read a ahead: it waits on the watch
		if time.Now().After(deadline) {
			t.Fatal("b never read the candidates")
		}
		time.Sleep(5 * time.Millisecond) // polling a counter: no event to wait on
	}
	rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
	defer rcancel()
	if err := ra.ten.Resign(rctx); err != nil {
		t.Fatal(err)
	}
	rb := result(t, bch)
	if rb.err != nil {
		t.Fatal(rb.err)
	}
	defer rb.ten.Stop()
	if got := prefixReads.Load(); got != 2 {
		t.Fatalf("b read the candidates %d times to win after a's resign, want 2 (one to wait, one that found its turn and verified it)", got)
	}
	if c := rb.ten.Candidates(); len(c) != 1 || c[0].ID != "b" {
		t.Fatalf("the tenure's candidates are %+v, want b alone", c)
	}
}
