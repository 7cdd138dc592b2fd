package sidecar

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leaderd/leaderd/internal/etcdtest"
	"github.com/leaderd/leaderd/role"
)

// Integration tests for TLS and etcd user auth against embedded etcd with
// certificates generated per test. A replica with the wrong certificate or
// password must stay standby, say what is wrong in /status, and keep
// retrying without ending Run.

// grantFailureMsg is the sidecar's log message for a failed lease grant.
const grantFailureMsg = "cannot get a lease; retrying"

// retryWindow is how long a failing replica is watched after its second
// failed grant, to see that it keeps retrying and keeps running.
const retryWindow = 3 * time.Second

func TestTLSClientCertificate(t *testing.T) {
	t.Parallel() // it waits out dial and call timeouts; nothing shared
	certs, err := etcdtest.NewCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := newClusterWithOptions(t, etcdtest.Options{TLS: certs.ServerTLS()})

	good := startCounted(c, "good", withTLS(certs.CA, certs.ClientCert, certs.ClientKey))
	bad := map[string]*grantFailures{
		// The server rejects a client certificate from a CA it does not trust.
		"other-ca-cert": startCounted(c, "other-ca-cert", withTLS(certs.CA, certs.OtherClientCert, certs.OtherClientKey)),
		// Client-certificate auth is on: no certificate is refused too.
		"no-cert": startCounted(c, "no-cert", withTLS(certs.CA, "", "")),
		// The replica does not trust the server's certificate (wrong --cacert).
		"wrong-cacert": startCounted(c, "wrong-cacert", withTLS(certs.OtherCA, certs.ClientCert, certs.ClientKey)),
	}

	promote := c.tl.waitFor(t, "the replica with a valid certificate promotes", match(0, event{Hook: "promote", Phase: "end"}))
	if promote.ID != "good" || !promote.OK || promote.Token <= 0 {
		t.Fatalf("promote %s, want a successful one by good", promote)
	}
	waitUntil(t, "good is primary and reachable", func() bool {
		st := c.replica("good").sc.Status()
		return st.Role == role.Primary && st.Phase == role.PhasePrimary && st.Etcd.Reachable
	})
	if n := good.count(); n != 0 {
		t.Errorf("good: %d failed grants, last %q", n, good.last())
	}

	// One window watches all three, which retry side by side.
	for id, msg := range assertKeepRetrying(t, c, bad) {
		// What the operator reads in /status must point at TLS.
		if !mentionsTLS(msg) {
			t.Errorf("%s: /status says %q: nothing about TLS", id, msg)
		}
	}
}

func TestUserAuth(t *testing.T) {
	t.Parallel() // it waits out dial and call timeouts; nothing shared
	c := newClusterWithOptions(t, etcdtest.Options{})
	admin := etcdtest.NewClient(t, c.etcd.Endpoint())
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	if err := etcdtest.EnableAuth(ctx, admin, "leaderd", "s3cret", "/leaderd/"); err != nil {
		t.Fatal(err)
	}

	good := startCounted(c, "good", withAuth("leaderd", "s3cret"))
	bad := startCounted(c, "bad-password", withAuth("leaderd", "wrong"))

	promote := c.tl.waitFor(t, "the replica with the right password promotes", match(0, event{Hook: "promote", Phase: "end"}))
	if promote.ID != "good" || !promote.OK || promote.Token <= 0 {
		t.Fatalf("promote %s, want a successful one by good", promote)
	}
	waitUntil(t, "good is primary and reachable", func() bool {
		st := c.replica("good").sc.Status()
		return st.Role == role.Primary && st.Phase == role.PhasePrimary && st.Etcd.Reachable
	})
	if n := good.count(); n != 0 {
		t.Errorf("good: %d failed grants, last %q", n, good.last())
	}

	msg := assertKeepRetrying(t, c, map[string]*grantFailures{"bad-password": bad})["bad-password"]
	if !strings.Contains(msg, "authentication failed") {
		t.Errorf("bad-password: /status etcd error %q does not say authentication failed", msg)
	}
}

// TestUserAuthEtcdDownAtStart: with a user set, a replica that starts while
// etcd is down waits as standby and promotes once etcd is back, like one
// without auth.
func TestUserAuthEtcdDownAtStart(t *testing.T) {
	t.Parallel() // it waits out dial and call timeouts; nothing shared
	c := newClusterWithOptions(t, etcdtest.Options{})
	admin := etcdtest.NewClient(t, c.etcd.Endpoint())
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	if err := etcdtest.EnableAuth(ctx, admin, "leaderd", "s3cret", "/leaderd/"); err != nil {
		t.Fatal(err)
	}
	c.etcd.Stop()

	f := startCounted(c, "a", withAuth("leaderd", "s3cret"))
	f.waitAtLeast(t, c.replica("a"), 2)
	if st := c.replica("a").sc.Status(); st.Role != role.Standby || st.Etcd.Reachable || st.Etcd.Error == "" {
		t.Fatalf("status while etcd is down: %+v", st)
	}
	rctx, rcancel := context.WithTimeout(context.Background(), waitBound)
	defer rcancel()
	if err := c.etcd.Restart(rctx); err != nil {
		t.Fatal(err)
	}
	promote := c.tl.waitFor(t, "a promotes once etcd is back", match(0, event{ID: "a", Hook: "promote", Phase: "end"}))
	if !promote.OK {
		t.Fatalf("promote %s", promote)
	}
}

// assertKeepRetrying checks that each replica (by id) fails to get a lease
// at least twice, then stays a standby that is not reachable and still
// running through one window shared by all, and returns each one's
// /status etcd error.
func assertKeepRetrying(t *testing.T, c *cluster, failures map[string]*grantFailures) map[string]string {
	t.Helper()
	for id, f := range failures {
		f.waitAtLeast(t, c.replica(id), 2)
	}
	deadline := time.Now().Add(retryWindow)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	msgs := map[string]string{}
	for time.Now().Before(deadline) {
		for id := range failures {
			r := c.replica(id)
			st := r.sc.Status()
			if st.Role != role.Standby || st.Etcd.Reachable || st.Etcd.Error == "" || st.Lease != nil || !st.Healthy {
				t.Fatalf("%s: status %+v, want a healthy standby without a lease, etcd unreachable with an error", id, st)
			}
			msgs[id] = st.Etcd.Error
			select {
			case err := <-r.done:
				r.done <- err
				t.Fatalf("%s: Run returned %v while it should keep retrying", id, err)
			default:
			}
		}
		<-tick.C
	}
	evs, _ := c.tl.snapshot()
	for id, f := range failures {
		if i := match(0, event{ID: id, Hook: "promote"})(evs); i >= 0 {
			t.Fatalf("%s promoted:\n%s", id, formatEvents(evs))
		}
		t.Logf("%s: %d failed grants; /status etcd error: %s", id, f.count(), msgs[id])
	}
	return msgs
}

// mentionsTLS reports whether an error text tells an operator that TLS or a
// certificate is the problem.
func mentionsTLS(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "tls") || strings.Contains(m, "certificate") || strings.Contains(m, "x509")
}

// newClusterWithOptions is newCluster on an etcd started with opts.
func newClusterWithOptions(t *testing.T, opts etcdtest.Options) *cluster {
	opts.Dir = filepath.Join(t.TempDir(), "etcd")
	c := &cluster{t: t, etcd: etcdtest.StartWithOptions(t, opts), tl: newTimeline(), reps: map[string]*replica{}}
	t.Cleanup(c.stopAll)
	return c
}

// withTLS sets the TLS files and makes the endpoints https.
func withTLS(caCert, cert, key string) replicaOption {
	return func(c *Config) {
		c.CACert, c.Cert, c.Key = caCert, cert, key
		for i, ep := range c.Endpoints {
			c.Endpoints[i] = "https://" + strings.TrimPrefix(ep, "http://")
		}
	}
}

func withAuth(user, password string) replicaOption {
	return func(c *Config) { c.User, c.Password = user, password }
}

// startCounted is cluster.start with a logger that also counts the
// replica's failed lease grants.
func startCounted(c *cluster, id string, opts ...replicaOption) *grantFailures {
	c.t.Helper()
	proxy := etcdtest.StartProxy(c.t, c.etcd.Endpoint())
	cfg := c.config(id, proxy.Endpoint())
	for _, o := range opts {
		o(&cfg)
	}
	f := &grantFailures{change: make(chan struct{})}
	logger := slog.New(&countingHandler{Handler: testLogger(c.t, id).Handler(), f: f})
	sc, err := New(cfg, logger)
	if err != nil {
		c.t.Fatalf("new sidecar %s: %v", id, err)
	}
	sc.promote = &recordingRunner{id: id, inner: sc.promote, tl: c.tl}
	sc.demote = &recordingRunner{id: id, inner: sc.demote, tl: c.tl}
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{id: id, proxy: proxy, sc: sc, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- sc.Run(ctx) }()
	c.mu.Lock()
	c.reps[id] = r
	c.mu.Unlock()
	return f
}

// grantFailures counts "cannot get a lease" log records and keeps the
// last error logged with one.
type grantFailures struct {
	mu      sync.Mutex
	n       int
	lastErr string
	change  chan struct{}
}

func (f *grantFailures) add(err string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	f.lastErr = err
	close(f.change)
	f.change = make(chan struct{})
}

func (f *grantFailures) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func (f *grantFailures) last() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastErr
}

// waitAtLeast waits, bounded, until n grants have failed. It fails the
// test if r's Run returns first.
func (f *grantFailures) waitAtLeast(t *testing.T, r *replica, n int) {
	t.Helper()
	deadline := time.NewTimer(waitBound)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		got, change := f.n, f.change
		f.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-change:
		case err := <-r.done:
			r.done <- err // for the cleanup, which waits for it
			t.Fatalf("%s: Run returned %v while it should keep retrying", r.id, err)
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %d failed grants, saw %d", waitBound, n, got)
		}
	}
}

// countingHandler passes records on and counts failed grants.
type countingHandler struct {
	slog.Handler
	f *grantFailures
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == grantFailureMsg {
		var err string
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "err" {
				err = a.Value.String()
				return false
			}
			return true
		})
		h.f.add(err)
	}
	if !h.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h *countingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &countingHandler{Handler: h.Handler.WithAttrs(attrs), f: h.f}
}

func (h *countingHandler) WithGroup(name string) slog.Handler {
	return &countingHandler{Handler: h.Handler.WithGroup(name), f: h.f}
}
