package election

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"

	"github.com/leaderd/leaderd/internal/etcdtest"
)

// renewFunc is a renewer that keeps nothing open: a test's stand-in.
type renewFunc func(context.Context, clientv3.LeaseID) (*clientv3.LeaseKeepAliveResponse, error)

func (f renewFunc) keepAliveOnce(ctx context.Context, id clientv3.LeaseID) (*clientv3.LeaseKeepAliveResponse, error) {
	return f(ctx, id)
}

func (renewFunc) close() {}

// watchedStream is the lease's own stream renewer, telling the test when
// each renewal starts.
type watchedStream struct {
	*keepAliveStream
	started chan struct{}
}

func (w watchedStream) keepAliveOnce(ctx context.Context, id clientv3.LeaseID) (*clientv3.LeaseKeepAliveResponse, error) {
	select {
	case w.started <- struct{}{}:
	default:
	}
	return w.keepAliveStream.keepAliveOnce(ctx, id)
}

// renewResults has opts report every renewal's result on the channel
// returned.
func renewResults(opts *LeaseOptions) <-chan error {
	results := make(chan error, 64)
	opts.OnRenew = func(err error) {
		select {
		case results <- err:
		default: // the loop must not block; a test reads long before 64
		}
	}
	return results
}

// grantStream grants a lease that renews over a watched stream, revoked at
// the end of the test.
func grantStream(t *testing.T, cli *clientv3.Client, opts LeaseOptions) (*Lease, watchedStream) {
	t.Helper()
	ws := watchedStream{keepAliveStream: newKeepAliveStream(cli), started: make(chan struct{}, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	l, err := grantWith(ctx, cli, opts, nil, ws)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = l.Revoke(ctx)
	})
	return l, ws
}

// awaitRenewal waits (bounded) for the next renewal's result.
func awaitRenewal(t *testing.T, results <-chan error) error {
	t.Helper()
	select {
	case err := <-results:
		return err
	case <-time.After(bound):
		t.Fatalf("no renewal result within %s", bound)
		return nil
	}
}

// grpcCount is how many calls of method etcd's servers in this process
// have started (grpc_server_started_total) or ended
// (grpc_server_handled_total), off endpoint's /metrics. The counters are
// shared by every embedded server; the tests do not run in parallel, so a
// difference over one test is that test's.
func grpcCount(t *testing.T, endpoint, metric, method string) int {
	t.Helper()
	hc := http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get(endpoint + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	n, found := 0.0, false
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, metric+"{") || !strings.Contains(line, `grpc_method="`+method+`"`) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		n, found = n+v, true // handled has a line per status code
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Fatalf("no %s for %s in etcd's metrics", metric, method)
	}
	return int(n)
}

// awaitStreamsEnded polls etcd's metrics (bounded) until it has ended as
// many LeaseKeepAlive streams as it started.
func awaitStreamsEnded(t *testing.T, endpoint string) {
	t.Helper()
	for end := time.Now().Add(bound); ; time.Sleep(20 * time.Millisecond) {
		started := grpcCount(t, endpoint, "grpc_server_started_total", "LeaseKeepAlive")
		ended := grpcCount(t, endpoint, "grpc_server_handled_total", "LeaseKeepAlive")
		if started == ended {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("etcd started %d LeaseKeepAlive streams and ended %d", started, ended)
		}
	}
}

// stopBounded stops l and returns how long that took, failing the test
// if it took longer than the bound.
func stopBounded(t *testing.T, l *Lease) time.Duration {
	t.Helper()
	start := time.Now()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		l.Stop()
	}()
	return waitClosed(t, stopped, "Stop to return").Sub(start)
}

// Renewals after the first reuse its stream: one stream for many
// renewals, counted by the renewer and by etcd. Stop ends it, on both
// sides.
func TestRenewalsShareOneStream(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	clk := newJumpClock()
	before := grpcCount(t, srv.Endpoint(), "grpc_server_started_total", "LeaseKeepAlive")
	l, ws := grantStream(t, cli, leaseOn(testLease, clk))
	running := goleak.IgnoreCurrent() // the client's connection included
	const renewals = 6                // two TTLs' worth
	first := l.Deadline()
	for range renewals {
		jumpToRenewal(t, l, clk)
	}
	if !l.Deadline().After(first.Add(testLease.TTL)) {
		t.Fatalf("deadline %s after %d renewals, want past %s", l.Deadline(), renewals, first.Add(testLease.TTL))
	}
	if n := ws.opened.Load(); n != 1 {
		t.Errorf("the renewer opened %d streams for %d renewals, want 1", n, renewals)
	}
	if n := grpcCount(t, srv.Endpoint(), "grpc_server_started_total", "LeaseKeepAlive") - before; n != 1 {
		t.Errorf("etcd started %d LeaseKeepAlive streams for %d renewals, want 1", n, renewals)
	}

	stopBounded(t, l)
	awaitStreamsEnded(t, srv.Endpoint())
	goleak.VerifyNone(t, running)
}

// A stream that stops answering fails its renewal within the renewal's
// bound; once the network heals before the safe deadline, the next
// renewal succeeds on a new stream and the lease was never lost.
func TestStalledStreamFailsInTimeAndANewOneRenews(t *testing.T) {
	srv := etcdtest.Start(t)
	proxy := etcdtest.StartProxy(t, srv.Endpoint())
	clk := newJumpClock()
	// Safe deadline 4.5s after each send: room for a failed renewal (1s)
	// and a retry.
	opts := leaseOn(LeaseOptions{TTL: 6 * time.Second, RenewInterval: time.Second, StepDownLead: 1500 * time.Millisecond}, clk)
	results := renewResults(&opts)
	l, ws := grantStream(t, etcdtest.NewClient(t, proxy.Endpoint()), opts)
	clk.jump(l.untilRenewal())
	waitClosed(t, ws.started, "the first renewal")
	if err := awaitRenewal(t, results); err != nil {
		t.Fatalf("first renewal: %v", err)
	}
	lastGood := l.Deadline()

	proxy.CutOff()
	clk.jump(l.untilRenewal())
	start := waitClosed(t, ws.started, "the renewal behind the cut-off")
	renewBound := min(opts.RenewInterval, l.untilSafeDeadline())
	err := awaitRenewal(t, results)
	took := time.Since(start)
	if err == nil {
		t.Fatal("a renewal through a cut-off network succeeded")
	}
	const slack = time.Second // a loaded 2-core machine under -race
	if took > renewBound+slack {
		t.Errorf("the stalled renewal failed after %s, want within its bound %s (+%s)", took, renewBound, slack)
	}
	t.Logf("stalled renewal failed after %s (bound %s): %v", took.Round(time.Millisecond), renewBound, err)

	proxy.Heal()
	for err != nil {
		if l.untilSafeDeadline() <= 0 {
			t.Fatal("no renewal before the safe deadline after the heal")
		}
		err = awaitRenewal(t, results) // retries every 250ms, without a jump
	}
	if n := ws.opened.Load(); n < 2 {
		t.Errorf("renewed after the heal with %d streams opened in all, want a new one", n)
	}
	if l.Err() != nil || !l.Deadline().After(lastGood) {
		t.Errorf("after the heal: lease error %v, deadline %s (before the cut %s)", l.Err(), l.Deadline(), lastGood)
	}
}

// A kept stream that died between renewals (its connection reset) costs
// no failed renewal: the renewal tries again on a new stream, as a fresh
// KeepAliveOnce would have.
func TestStreamDeadBetweenRenewalsIsReplacedInTheRenewal(t *testing.T) {
	srv := etcdtest.Start(t)
	proxy := etcdtest.StartProxy(t, srv.Endpoint())
	clk := newJumpClock()
	opts := leaseOn(testLease, clk)
	results := renewResults(&opts)
	l, ws := grantStream(t, etcdtest.NewClient(t, proxy.Endpoint()), opts)
	clk.jump(l.untilRenewal())
	if err := awaitRenewal(t, results); err != nil {
		t.Fatalf("first renewal: %v", err)
	}

	proxy.Reset() // the stream's connection, idle between renewals
	clk.jump(l.untilRenewal())
	if err := awaitRenewal(t, results); err != nil {
		t.Fatalf("the renewal after the reset failed: %v", err)
	}
	if n := ws.opened.Load(); n != 2 {
		t.Errorf("%d streams opened, want 2 (the reset one, then one more)", n)
	}
}

// A lease revoked by someone else is reported on the open stream (etcd
// answers TTL 0) as ErrLeaseNotFound, and the lease is lost.
func TestRevokedLeaseIsNotFoundOnTheStream(t *testing.T) {
	srv := etcdtest.Start(t)
	clk := newJumpClock()
	l, ws := grantStream(t, etcdtest.NewClient(t, srv.Endpoint()), leaseOn(testLease, clk))
	jumpToRenewal(t, l, clk) // the stream is open

	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	if _, err := etcdtest.NewClient(t, srv.Endpoint()).Revoke(ctx, l.ID()); err != nil {
		t.Fatal(err)
	}
	clk.jump(l.untilRenewal())
	waitClosed(t, l.Lost(), "the lease to be lost")
	if !errors.Is(l.Err(), ErrLeaseNotFound) {
		t.Fatalf("lost with %v, want ErrLeaseNotFound", l.Err())
	}
	if n := ws.opened.Load(); n != 1 {
		t.Errorf("%d streams opened, want the one the revoke was answered on", n)
	}
}

// Stop cuts a renewal that waits on a stalled stream short, long before
// its bound, and leaves no goroutine of the stream behind.
func TestStopEndsARenewalInFlight(t *testing.T) {
	srv := etcdtest.Start(t)
	proxy := etcdtest.StartProxy(t, srv.Endpoint())
	clk := newJumpClock()
	// A 5s bound per renewal, so a prompt Stop is Stop's doing.
	opts := leaseOn(LeaseOptions{TTL: 30 * time.Second, RenewInterval: 5 * time.Second, StepDownLead: 1500 * time.Millisecond}, clk)
	results := renewResults(&opts)
	l, ws := grantStream(t, etcdtest.NewClient(t, proxy.Endpoint()), opts)
	// Everything running now, the client's connection included, may stay;
	// what the stream starts from here on must end with Stop.
	before := goleak.IgnoreCurrent()
	clk.jump(l.untilRenewal())
	waitClosed(t, ws.started, "the first renewal")
	if err := awaitRenewal(t, results); err != nil {
		t.Fatalf("first renewal: %v", err)
	}

	proxy.CutOff()
	clk.jump(l.untilRenewal())
	waitClosed(t, ws.started, "the renewal behind the cut-off")
	took := stopBounded(t, l)
	if took > time.Second {
		t.Errorf("Stop took %s with a renewal in flight, want well within the renewal's 5s bound", took)
	}
	t.Logf("Stop returned in %s with a renewal in flight", took.Round(time.Microsecond))
	if !errors.Is(l.Err(), ErrLeaseClosed) {
		t.Errorf("stopped with %v, want ErrLeaseClosed", l.Err())
	}
	// etcd's side of the stream waits for the cancel the cut-off swallowed;
	// it ends with the connection, at the proxy's close.
	goleak.VerifyNone(t, before,
		goleak.IgnoreAnyFunction("go.etcd.io/etcd/server/v3/etcdserver/api/v3rpc.(*LeaseServer).LeaseKeepAlive"),
		goleak.IgnoreAnyFunction("go.etcd.io/etcd/server/v3/etcdserver/api/v3rpc.(*LeaseServer).LeaseKeepAlive.func1"),
	)
}

// With etcd's auth on, renewals over the stream carry the client's token
// (a renewal without one is refused) and succeed, on one stream. The
// client logs in at every stream it opens, so one stream is one login.
func TestStreamRenewsWithAuth(t *testing.T) {
	srv := etcdtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	if err := etcdtest.EnableAuth(ctx, etcdtest.NewClient(t, srv.Endpoint()), "app", "secret", "/leaderd/"); err != nil {
		t.Fatal(err)
	}
	cfg := etcdtest.ClientConfig(srv.Endpoint())
	cfg.Username, cfg.Password = "app", "secret"
	cli, err := clientv3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	clk := newJumpClock()
	l, ws := grantStream(t, cli, leaseOn(testLease, clk))
	// A key on the lease: etcd then checks the user may write it at every
	// renewal.
	if _, err := cli.Put(ctx, "/leaderd/t/k", "v", clientv3.WithLease(l.ID())); err != nil {
		t.Fatal(err)
	}
	logins := grpcCount(t, srv.Endpoint(), "grpc_server_started_total", "Authenticate")
	for range 3 {
		jumpToRenewal(t, l, clk)
	}
	if n := ws.opened.Load(); n != 1 {
		t.Errorf("%d streams opened for 3 renewals, want 1", n)
	}
	if n := grpcCount(t, srv.Endpoint(), "grpc_server_started_total", "Authenticate") - logins; n != 1 {
		t.Errorf("%d logins for 3 renewals, want 1 (for the stream)", n)
	}

	// The control: the same stream on a connection without the token.
	anon := etcdtest.NewClient(t, srv.Endpoint())
	_, err = newKeepAliveStream(anon).keepAliveOnce(ctx, l.ID())
	if !errors.Is(err, rpctypes.ErrUserEmpty) {
		t.Errorf("renewal without a token: %v, want %v", err, rpctypes.ErrUserEmpty)
	}
}

// The server's answer judged: another lease's answer and a TTL of 0
// (etcd's "no such lease") are errors that leave the deadline alone.
func TestJudgeKeepAlive(t *testing.T) {
	const id = clientv3.LeaseID(0x1234)
	for _, tc := range []struct {
		name string
		resp *pb.LeaseKeepAliveResponse
		want error
	}{
		{"renewed", &pb.LeaseKeepAliveResponse{ID: int64(id), TTL: 3}, nil},
		{"not found", &pb.LeaseKeepAliveResponse{ID: int64(id), TTL: 0}, rpctypes.ErrLeaseNotFound},
		{"negative TTL", &pb.LeaseKeepAliveResponse{ID: int64(id), TTL: -1}, rpctypes.ErrLeaseNotFound},
		{"another lease", &pb.LeaseKeepAliveResponse{ID: int64(id) + 1, TTL: 3}, errWrongLease},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := judgeKeepAlive(id, tc.resp)
			if !errors.Is(err, tc.want) || (err == nil) != (resp != nil) {
				t.Fatalf("judged %+v, %v; want %v", resp, err, tc.want)
			}
			if err == nil && (resp.ID != id || resp.TTL != 3) {
				t.Errorf("answer %+v, want lease %s TTL 3", resp, LeaseHex(int64(id)))
			}
		})
	}
}

// The server's "lease not found", as a gRPC status or already the
// client's error, is still rpctypes.ErrLeaseNotFound after ContextError,
// which renewOnce checks for.
func TestStreamErrorsMapAsTheClients(t *testing.T) {
	if err := clientv3.ContextError(context.Background(), rpctypes.ErrLeaseNotFound); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Errorf("ErrLeaseNotFound mapped to %v", err)
	}
	if err := clientv3.ContextError(context.Background(), rpctypes.ErrGRPCLeaseNotFound); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Errorf("the gRPC ErrLeaseNotFound mapped to %v", err)
	}
}
