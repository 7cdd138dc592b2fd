package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leaderd/leaderd/internal/etcdtest"
)

// Bounds for the waits below.
const (
	opTimeout      = 2 * time.Second  // one etcd request
	recoverTimeout = 15 * time.Second // raft electing a leader, a member catching up
)

func startTestCluster(t *testing.T) *Cluster {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithTimeout(t.Context(), clusterReadyTimeout)
	defer cancel()
	c, err := StartCluster(ctx, t.TempDir(), 3, logger)
	if err != nil {
		t.Fatalf("StartCluster: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// clientOf is a client that reaches member i only.
func clientOf(t *testing.T, c *Cluster, i int) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(etcdtest.ClientConfig(c.ClientURL(i)))
	if err != nil {
		t.Fatalf("client of member %d: %v", i, err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

func put(cli *clientv3.Client, key, value string) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	_, err := cli.Put(ctx, key, value)
	return err
}

// get is a linearizable read: it needs the member to reach a leader.
func get(cli *clientv3.Client, key string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	resp, err := cli.Get(ctx, key)
	if err != nil {
		return "", err
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}

// waitFor polls cond, bounded by recoverTimeout, and returns how long it
// took: raft state has no event to wait on.
func waitFor(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Since(start) > recoverTimeout {
			t.Fatalf("timed out after %s waiting for %s", recoverTimeout, what)
		}
		<-tick.C
	}
	return time.Since(start)
}

// waitLeader waits for a leader that every running member follows.
func waitLeader(t *testing.T, c *Cluster) int {
	t.Helper()
	waitFor(t, "a leader every running member follows", func() bool {
		l := c.Leader()
		if l < 0 {
			return false
		}
		for i := range c.Size() {
			if c.Running(i) && c.LeaderOf(i) != l {
				return false
			}
		}
		return true
	})
	return c.Leader()
}

// waitValue waits until a linearizable read through cli returns want.
func waitValue(t *testing.T, cli *clientv3.Client, key, want string) time.Duration {
	t.Helper()
	var last string
	var lastErr error
	took := waitFor(t, fmt.Sprintf("%s=%s to be readable", key, want), func() bool {
		last, lastErr = get(cli, key)
		return lastErr == nil && last == want
	})
	return took
}

func TestClusterServesWritesThroughEveryMember(t *testing.T) {
	c := startTestCluster(t)
	if got := c.ElectionTimeout(); got != time.Second {
		t.Errorf("ElectionTimeout = %s, want embed's default 1s", got)
	}
	lead := waitLeader(t, c)
	t.Logf("leader: member %d", lead)
	for i := range c.Size() {
		if !c.Running(i) {
			t.Fatalf("member %d not running after start", i)
		}
		key := fmt.Sprintf("k%d", i)
		if err := put(clientOf(t, c, i), key, "v"); err != nil {
			t.Fatalf("put through member %d: %v", i, err)
		}
		// Linearizable, through another member: the write went through raft.
		if v, err := get(clientOf(t, c, (i+1)%c.Size()), key); err != nil || v != "v" {
			t.Fatalf("read %s through member %d = %q, %v; want v", key, (i+1)%c.Size(), v, err)
		}
	}
}

// A link cut between the leader and a follower takes only that follower
// out: it loses its leader, but cannot depose the one the third member
// still follows (pre-vote), so the cluster keeps its leader and serves
// writes. Mended, the follower catches up.
func TestCutLinkLeaderFollower(t *testing.T) {
	c := startTestCluster(t)
	lead := waitLeader(t, c)
	follower, third := (lead+1)%3, (lead+2)%3
	c.CutLink(lead, follower)
	took := waitFor(t, "the cut-off follower to lose its leader", func() bool { return c.LeaderOf(follower) == -1 })
	t.Logf("follower %d lost leader %d after %s", follower, lead, took)

	// Writes through the leader and the third member succeed for several
	// election timeouts, in which the follower campaigns in vain.
	viaLead, viaThird := clientOf(t, c, lead), clientOf(t, c, third)
	deadline := time.Now().Add(3 * c.ElectionTimeout())
	for n := 0; time.Now().Before(deadline); n++ {
		if err := put(viaLead, "during-cut", fmt.Sprint(n)); err != nil {
			t.Fatalf("put through the leader during the cut: %v", err)
		}
		if err := put(viaThird, "during-cut", fmt.Sprint(n)); err != nil {
			t.Fatalf("put through the third member during the cut: %v", err)
		}
	}
	if l := c.Leader(); l != lead {
		t.Fatalf("leader changed from %d to %d though a majority kept it", lead, l)
	}
	if l := c.LeaderOf(follower); l != -1 {
		t.Fatalf("cut-off follower %d follows %d", follower, l)
	}

	c.MendLink(lead, follower)
	if err := put(viaLead, "after-mend", "x"); err != nil {
		t.Fatalf("put after mend: %v", err)
	}
	took = waitValue(t, clientOf(t, c, follower), "after-mend", "x")
	t.Logf("follower %d read the new key %s after the mend", follower, took)
}

// An isolated leader is replaced by the other two; its clients still
// reach it but it cannot serve linearizable reads; rejoined, it catches up.
func TestIsolateLeaderAndRejoin(t *testing.T) {
	c := startTestCluster(t)
	old := waitLeader(t, c)
	viaOld := clientOf(t, c, old)
	if err := put(viaOld, "before", "1"); err != nil {
		t.Fatalf("put before the isolation: %v", err)
	}

	c.Isolate(old)
	var lead int
	took := waitFor(t, "the other two to elect a new leader", func() bool {
		lead = c.Leader()
		return lead >= 0 && lead != old && c.LeaderOf((old+1)%3) == lead && c.LeaderOf((old+2)%3) == lead
	})
	t.Logf("member %d leads %s after isolating leader %d", lead, took, old)

	viaNew := clientOf(t, c, lead)
	if err := put(viaNew, "during", "2"); err != nil {
		t.Fatalf("put through the new leader: %v", err)
	}
	other := 3 - old - lead
	if err := put(clientOf(t, c, other), "during-other", "3"); err != nil {
		t.Fatalf("put through the other member: %v", err)
	}
	start := time.Now()
	_, err := get(viaOld, "during")
	if !isDeadline(err) {
		t.Fatalf("linearizable read through the isolated member: %v, want a deadline error", err)
	}
	t.Logf("linearizable read through the isolated member failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
	// Its clients still reach it: a serializable read is served locally.
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	resp, err := viaOld.Get(ctx, "before", clientv3.WithSerializable())
	cancel()
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "1" {
		t.Fatalf("serializable read through the isolated member: %v %v, want before=1", resp, err)
	}

	c.Rejoin(old)
	took = waitValue(t, viaOld, "during", "2")
	t.Logf("rejoined member %d read the key written meanwhile after %s", old, took)
}

// The server sees the client's deadline too (gRPC carries it), and when it
// fires there first the answer is etcd's "request timed out" rather than
// the client's own DeadlineExceeded: the same timeout, reported by the other end.
func isDeadline(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, rpctypes.ErrTimeout) ||
		(err != nil && strings.Contains(err.Error(), "DeadlineExceeded"))
}

// A killed leader is replaced; restarted, it serves the data written
// while it was down. Kill is abrupt: a client's open watch stream does
// not hold it up for etcd's 7s request timeout, as embed's Close alone
// would.
func TestKillLeaderAndRestart(t *testing.T) {
	c := startTestCluster(t)
	old := waitLeader(t, c)
	viaOld := clientOf(t, c, old)
	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	watch := viaOld.Watch(watchCtx, "watched")
	if err := put(viaOld, "watched", "1"); err != nil {
		t.Fatalf("put: %v", err)
	}
	select { // the watch stream is open
	case <-watch:
	case <-time.After(opTimeout):
		t.Fatal("no watch event")
	}
	start := time.Now()
	if err := c.Kill(old); err != nil {
		t.Fatalf("Kill(%d): %v", old, err)
	}
	took := time.Since(start)
	t.Logf("Kill(%d) with a watch open took %s", old, took.Round(time.Millisecond))
	if took > 3*time.Second {
		t.Errorf("Kill(%d) took %s with a watch open, want it abrupt", old, took)
	}
	if c.Running(old) {
		t.Fatalf("member %d running after Kill", old)
	}
	if err := c.Kill(old); err != nil {
		t.Fatalf("second Kill(%d): %v", old, err)
	}
	var lead int
	took = waitFor(t, "a new leader", func() bool { lead = c.Leader(); return lead >= 0 && lead != old })
	t.Logf("member %d leads %s after the kill (measured from Kill's return)", lead, took)
	if err := put(clientOf(t, c, lead), "while-down", "x"); err != nil {
		t.Fatalf("put while member %d is down: %v", old, err)
	}

	start = time.Now()
	if err := c.Restart(t.Context(), old); err != nil {
		t.Fatalf("Restart(%d): %v", old, err)
	}
	t.Logf("Restart(%d) was ready after %s", old, time.Since(start).Round(time.Millisecond))
	if !c.Running(old) {
		t.Fatalf("member %d not running after Restart", old)
	}
	if v, err := get(viaOld, "while-down"); err != nil || v != "x" {
		t.Fatalf("read through the restarted member = %q, %v; want x", v, err)
	}
}

// Two members down (killed concurrently): no quorum, writes time out;
// both restarted (concurrently), writes succeed again.
func TestQuorumLossAndRecovery(t *testing.T) {
	c := startTestCluster(t)
	lead := waitLeader(t, c)
	survivor := (lead + 1) % 3
	down := []int{lead, (lead + 2) % 3}
	viaSurvivor := clientOf(t, c, survivor)

	var wg sync.WaitGroup
	errs := make(chan error, 2*len(down))
	for _, i := range down {
		wg.Go(func() { errs <- c.Kill(i) })
	}
	wg.Wait()
	if err := put(viaSurvivor, "no-quorum", "x"); !isDeadline(err) {
		t.Fatalf("put without quorum: %v, want a deadline error", err)
	}

	start := time.Now()
	for _, i := range down {
		wg.Go(func() { errs <- c.Restart(t.Context(), i) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Kill or Restart: %v", err)
		}
	}
	t.Logf("both members ready %s after their concurrent restart", time.Since(start).Round(time.Millisecond))
	if err := put(viaSurvivor, "quorum-back", "y"); err != nil {
		t.Fatalf("put after the restarts: %v", err)
	}
	for _, i := range down {
		if v, err := get(clientOf(t, c, i), "quorum-back"); err != nil || v != "y" {
			t.Fatalf("read through restarted member %d = %q, %v; want y", i, v, err)
		}
	}
}

// Restarting into a cluster without quorum cannot become ready: Restart
// returns ErrNotReady within its bound and leaves the member running, and
// the member becomes ready once another one restarts.
func TestRestartWithoutQuorumReturnsNotReady(t *testing.T) {
	c := startTestCluster(t)
	var wg sync.WaitGroup
	for i := range c.Size() {
		wg.Go(func() {
			if err := c.Kill(i); err != nil {
				t.Errorf("Kill(%d): %v", i, err)
			}
		})
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Restart(ctx, 0)
	if !errors.Is(err, ErrNotReady) {
		t.Fatalf("Restart(0) without quorum: %v, want ErrNotReady", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("Restart(0) without quorum took %s, beyond its context", took)
	}
	if !c.Running(0) {
		t.Fatal("member 0 not running after ErrNotReady")
	}
	if err := c.Restart(t.Context(), 1); err != nil {
		t.Fatalf("Restart(1) completing a quorum: %v", err)
	}
	if err := put(clientOf(t, c, 0), "k", "v"); err != nil {
		t.Fatalf("put through member 0 once a quorum formed: %v", err)
	}
}

// Faults injected from several goroutines at once, as the campaign does,
// are safe (-race); once all are healed the cluster serves writes through
// every member again.
func TestConcurrentFaultsHealToAServingCluster(t *testing.T) {
	c := startTestCluster(t)
	waitLeader(t, c)
	flapping, stop := context.WithTimeout(t.Context(), 3*time.Second)
	defer stop()
	// every paces one kind of fault; the point is their overlap.
	every := func(d time.Duration, fault func(n int)) func() {
		return func() {
			tick := time.NewTicker(d)
			defer tick.Stop()
			for n := 0; ; n++ {
				fault(n)
				select {
				case <-flapping.Done():
					return
				case <-tick.C:
				}
			}
		}
	}
	var wg sync.WaitGroup
	wg.Go(every(30*time.Millisecond, func(n int) {
		if a, b := n%3, (n+1)%3; n%2 == 0 {
			c.CutLink(a, b)
		} else {
			c.MendLink(a, b)
		}
	}))
	wg.Go(every(70*time.Millisecond, func(n int) {
		if n%2 == 0 {
			c.Isolate(n % 3)
		} else {
			c.Rejoin((n - 1) % 3)
		}
	}))
	wg.Go(every(200*time.Millisecond, func(n int) {
		if n%2 == 0 {
			if err := c.Kill(2); err != nil {
				t.Errorf("Kill(2): %v", err)
			}
			return
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		if err := c.Restart(ctx, 2); err != nil && !errors.Is(err, ErrNotReady) {
			t.Errorf("Restart(2): %v", err)
		}
	}))
	wg.Go(every(10*time.Millisecond, func(int) {
		_ = c.Leader()
		for i := range c.Size() {
			_, _ = c.LeaderOf(i), c.Running(i)
		}
	}))
	wg.Wait()

	for i := range c.Size() {
		c.Rejoin(i)
		if !c.Running(i) {
			if err := c.Restart(t.Context(), i); err != nil {
				t.Fatalf("Restart(%d) after the faults: %v", i, err)
			}
		}
	}
	waitLeader(t, c)
	for i := range c.Size() {
		cli := clientOf(t, c, i)
		waitFor(t, fmt.Sprintf("a write through member %d", i), func() bool { return put(cli, "healed", fmt.Sprint(i)) == nil })
	}
}

func TestCloseIsIdempotentAndEndsFaults(t *testing.T) {
	c := startTestCluster(t)
	c.CutLink(0, 1)
	c.Isolate(2)
	c.Close()
	c.Close()
	if err := c.Kill(0); !errors.Is(err, ErrClosed) {
		t.Errorf("Kill after Close: %v, want ErrClosed", err)
	}
	if err := c.Restart(t.Context(), 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Restart after Close: %v, want ErrClosed", err)
	}
	for i := range c.Size() {
		if c.Running(i) {
			t.Errorf("member %d running after Close", i)
		}
	}
	if l := c.Leader(); l != -1 {
		t.Errorf("Leader after Close = %d, want -1", l)
	}
}

// The proxy sees every request on a connection, not only the first: a
// kept-alive connection that carried a header-less probe and then a
// request from a cut-off member is reset before that request is forwarded.
// Bodies pass intact, chunked ones (snapshots) too.
func TestPeerProxyChecksEveryRequest(t *testing.T) {
	var mu sync.Mutex
	blocked := map[string]bool{}
	var seen []string
	backend := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.Path)
		mu.Unlock()
		n, _ := io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/raft/snapshot" { // streamed, chunked, like rafthttp's snapshots
			_, _ = fmt.Fprintf(w, "%d %v", n, r.TransferEncoding)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})}
	backendLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = backend.Serve(backendLn) }()
	t.Cleanup(func() { _ = backend.Close(); <-served })

	proxyLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admit := func(fromID string) bool { mu.Lock(); defer mu.Unlock(); return !blocked[fromID] }
	p := newPeerProxy(proxyLn, 2, backendLn.Addr().String(), admit, slog.New(slog.DiscardHandler))
	t.Cleanup(p.close)

	conn, err := net.DialTimeout("tcp", p.addr(), opTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(recoverTimeout))
	br := bufio.NewReader(conn)
	send := func(path, from string, body io.Reader) (string, error) {
		req, _ := http.NewRequest(http.MethodPost, "http://peer"+path, body)
		if from != "" {
			req.Header.Set("X-Server-From", from)
		}
		if err := req.Write(conn); err != nil {
			return "", err
		}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if got, err := send("/raft/probing", "", nil); err != nil || got != "ok" {
		t.Fatalf("probe: %q, %v", got, err)
	}
	if got, err := send("/raft", "a", strings.NewReader("message")); err != nil || got != "ok" {
		t.Fatalf("raft message from an admitted member: %q, %v", got, err)
	}
	// An unknown length makes the request chunked.
	snapshot := io.LimitReader(neverEnding('s'), 1<<20)
	if got, err := send("/raft/snapshot", "a", io.MultiReader(snapshot)); err != nil || got != "1048576 [chunked]" {
		t.Fatalf("chunked snapshot from an admitted member: %q, %v; want 1048576 [chunked]", got, err)
	}
	mu.Lock()
	blocked["a"] = true
	mu.Unlock()
	if got, err := send("/raft", "a", strings.NewReader("message")); err == nil {
		t.Fatalf("raft message from a cut-off member got through: %q", got)
	}
	mu.Lock()
	if want := []string{"/raft/probing", "/raft", "/raft/snapshot"}; strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Errorf("member saw %v, want %v", seen, want)
	}
	mu.Unlock()

	// enforce resets a live connection whose source is no longer admitted.
	conn2, err := net.DialTimeout("tcp", p.addr(), opTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	_ = conn2.SetDeadline(time.Now().Add(recoverTimeout))
	conn, br = conn2, bufio.NewReader(conn2)
	if got, err := send("/raft/stream/message/x", "b", nil); err != nil || got != "ok" {
		t.Fatalf("request from member b: %q, %v", got, err)
	}
	mu.Lock()
	blocked["b"] = true
	mu.Unlock()
	p.enforce()
	if n, err := conn2.Read(make([]byte, 1)); err == nil {
		t.Fatalf("connection from b still open after enforce (read %d bytes)", n)
	}
}

// Members' ports stay clear of the ephemeral range, where an outgoing
// connection could take a killed member's port before it restarts.
func TestFreePortsAvoidTheEphemeralRange(t *testing.T) {
	lo, hi := stablePortRange()
	if lo == hi {
		t.Skip("the kernel's ephemeral port range is unknown here (not Linux?)")
	}
	ports, err := freePorts(6)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p < lo || p >= hi || seen[p] {
			t.Errorf("port %d: want distinct ports in [%d, %d)", p, lo, hi)
		}
		seen[p] = true
	}
}

// neverEnding is an endless stream of one byte.
type neverEnding byte

func (b neverEnding) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}
