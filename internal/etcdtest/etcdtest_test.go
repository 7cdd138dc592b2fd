package etcdtest_test

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/leaderd/leaderd/internal/etcdtest"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Bounds for the waits below.
const (
	opTimeout      = 1 * time.Second  // one etcd request
	recoverTimeout = 15 * time.Second // a client reconnecting after a fault
)

func put(t *testing.T, c *clientv3.Client, key, val string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, key, val); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// get does one Get bounded by timeout.
func get(c *clientv3.Client, key string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	resp, err := c.Get(ctx, key)
	if err != nil {
		return "", err
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}

// eventuallyGet retries a Get of key until it returns want or the bound passes.
// The retries are paced by each request's own timeout, not by sleeps.
func eventuallyGet(t *testing.T, c *clientv3.Client, key, want string, bound time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var lastErr error
	for time.Since(start) < bound {
		got, err := get(c, key, opTimeout)
		if err == nil && got == want {
			return time.Since(start)
		}
		lastErr = err
		if err == nil {
			t.Fatalf("get %s = %q, want %q", key, got, want)
		}
		if !isTimeout(err) {
			// Fast failures (connection refused) would spin; wait out the rest
			// of the attempt on a timer bounded by the request timeout.
			<-time.After(opTimeout / 10)
		}
	}
	t.Fatalf("get %s did not return %q within %v: last error %v", key, want, bound, lastErr)
	return 0
}

func isTimeout(err error) bool {
	return errors.Is(err, context.DeadlineExceeded)
}

func TestServerPutGet(t *testing.T) {
	s := etcdtest.Start(t)
	c := etcdtest.NewClient(t, s.Endpoint())
	put(t, c, "k", "v")
	got, err := get(c, "k", opTimeout)
	if err != nil || got != "v" {
		t.Fatalf("get k = %q, %v; want v", got, err)
	}
}

func TestServerStopRestart(t *testing.T) {
	s := etcdtest.Start(t)
	c := etcdtest.NewClient(t, s.Endpoint())
	put(t, c, "k", "before-stop")

	s.Stop()
	s.Stop() // idempotent
	if _, err := get(c, "k", opTimeout); err == nil {
		t.Fatal("get succeeded while etcd was stopped")
	}

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Restart(ctx); err != nil {
		t.Fatalf("restart: %v", err)
	}
	t.Logf("restart took %v", time.Since(start))
	took := eventuallyGet(t, c, "k", "before-stop", recoverTimeout)
	t.Logf("client recovered %v after restart", took)
}

func TestServerRestartWhileRunning(t *testing.T) {
	s := etcdtest.Start(t)
	c := etcdtest.NewClient(t, s.Endpoint())
	put(t, c, "k", "v")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Restart(ctx); err != nil {
		t.Fatalf("restart: %v", err)
	}
	eventuallyGet(t, c, "k", "v", recoverTimeout)
}

func TestServerCloseRemovesTempDir(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := etcdtest.StartServer(ctx, etcdtest.Options{})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	dir := s.Dir()
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("data dir: %v", err)
	}
	s.Close()
	s.Close() // idempotent
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("data dir after Close: %v, want not exist", err)
	}
	if err := s.Restart(ctx); !errors.Is(err, etcdtest.ErrClosed) {
		t.Fatalf("restart after close: %v, want ErrClosed", err)
	}
}

func TestServerCloseKeepsGivenDir(t *testing.T) {
	dir := t.TempDir()
	s := etcdtest.StartWithOptions(t, etcdtest.Options{Dir: dir})
	s.Close()
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		t.Fatalf("given dir after Close: %v entries, err %v; want etcd data kept", len(entries), err)
	}
}

func TestStartServerCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s, err := etcdtest.StartServer(ctx, etcdtest.Options{})
	if err == nil {
		s.Close()
		t.Fatal("StartServer with a cancelled context succeeded")
	}
}

func TestProxyPassesTraffic(t *testing.T) {
	s := etcdtest.Start(t)
	p := etcdtest.StartProxy(t, s.Endpoint())
	c := etcdtest.NewClient(t, p.Endpoint())
	put(t, c, "k", "via-proxy")
	got, err := get(c, "k", opTimeout)
	if err != nil || got != "via-proxy" {
		t.Fatalf("get k = %q, %v; want via-proxy", got, err)
	}
	if p.Accepted() == 0 {
		t.Fatal("proxy accepted no connection")
	}
}

func TestProxyCutOffHeal(t *testing.T) {
	s := etcdtest.Start(t)
	p := etcdtest.StartProxy(t, s.Endpoint())
	viaProxy := etcdtest.NewClient(t, p.Endpoint())
	direct := etcdtest.NewClient(t, s.Endpoint())
	put(t, viaProxy, "k", "v1")

	p.CutOff()
	p.CutOff() // idempotent
	if _, err := get(viaProxy, "k", opTimeout); !isTimeout(err) {
		t.Fatalf("get through a cut-off proxy: %v, want deadline exceeded", err)
	}
	put(t, direct, "k", "v2")
	if got, err := get(direct, "k", opTimeout); err != nil || got != "v2" {
		t.Fatalf("direct get during cut-off = %q, %v; want v2", got, err)
	}
	// A client that connects during the cut-off gets nothing either.
	late := etcdtest.NewClient(t, p.Endpoint())
	if _, err := get(late, "k", opTimeout); !isTimeout(err) {
		t.Fatalf("new client through a cut-off proxy: %v, want deadline exceeded", err)
	}

	p.Heal()
	p.Heal() // idempotent
	took := eventuallyGet(t, viaProxy, "k", "v2", recoverTimeout)
	t.Logf("client recovered %v after heal", took)
	eventuallyGet(t, late, "k", "v2", recoverTimeout)
}

func TestProxyReset(t *testing.T) {
	s := etcdtest.Start(t)
	p := etcdtest.StartProxy(t, s.Endpoint())
	c := etcdtest.NewClient(t, p.Endpoint())
	put(t, c, "k", "v")
	before := p.Accepted()

	p.Reset()
	took := eventuallyGet(t, c, "k", "v", recoverTimeout)
	if p.Accepted() <= before {
		t.Fatalf("accepted %d connections after Reset, want more than %d (a reconnect)", p.Accepted(), before)
	}
	t.Logf("client recovered %v after reset", took)
}

func TestProxyTargetDown(t *testing.T) {
	s := etcdtest.Start(t)
	p := etcdtest.StartProxy(t, s.Endpoint())
	c := etcdtest.NewClient(t, p.Endpoint())
	put(t, c, "k", "v")
	s.Stop()
	if _, err := get(c, "k", opTimeout); err == nil {
		t.Fatal("get through the proxy succeeded while etcd was stopped")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Restart(ctx); err != nil {
		t.Fatalf("restart: %v", err)
	}
	eventuallyGet(t, c, "k", "v", recoverTimeout)
}

func TestProxyClose(t *testing.T) {
	s := etcdtest.Start(t)
	p, err := etcdtest.NewProxy(s.Endpoint())
	if err != nil {
		t.Fatalf("new proxy: %v", err)
	}
	c := etcdtest.NewClient(t, p.Endpoint())
	put(t, c, "k", "v")
	p.CutOff() // Close must also end stalled connections

	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Close()
		p.Close() // idempotent
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("proxy Close did not return within 5s")
	}
	addr := p.Endpoint()[len("http://"):]
	if conn, err := net.DialTimeout("tcp", addr, opTimeout); err == nil {
		conn.Close()
		t.Fatal("proxy still accepts connections after Close")
	}
}

func TestNewProxyTargets(t *testing.T) {
	for _, tc := range []struct {
		target string
		ok     bool
	}{
		{"127.0.0.1:2379", true},
		{"http://127.0.0.1:2379", true},
		{"127.0.0.1", false},
		{"http://%zz", false},
	} {
		t.Run(tc.target, func(t *testing.T) {
			p, err := etcdtest.NewProxy(tc.target)
			if p != nil {
				p.Close()
			}
			if (err == nil) != tc.ok {
				t.Fatalf("NewProxy(%q) error = %v, want ok=%v", tc.target, err, tc.ok)
			}
			if err == nil && p.Target() != "127.0.0.1:2379" {
				t.Fatalf("target = %q", p.Target())
			}
		})
	}
}
