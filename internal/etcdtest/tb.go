package etcdtest

import (
	"context"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// TB is the part of testing.TB the wrappers use. Declaring it here keeps
// "testing" out of binaries (`leaderd demo`) that import this package.
type TB interface {
	Helper()
	Cleanup(func())
	Fatalf(format string, args ...any)
	TempDir() string
}

// Start starts a Server with its data in t.TempDir() and closes it at
// t.Cleanup. It fails the test if etcd does not become ready.
func Start(t TB) *Server {
	t.Helper()
	return StartWithOptions(t, Options{Dir: filepath.Join(t.TempDir(), "etcd")})
}

// StartWithOptions is Start with explicit Options.
func StartWithOptions(t TB, opts Options) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	s, err := StartServer(ctx, opts)
	if err != nil {
		t.Fatalf("etcdtest: start server: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// ClientConfig returns the client configuration NewClient uses: 2s dial
// timeout, 1s keepalive time and timeout, and no client logging.
//
// gRPC raises a keepalive time below 10s to 10s, and pings only while an RPC
// or stream (watch, lease keepalive) is open. So behind a blackhole a client
// with an open stream drops the connection 10-11s after the last byte it
// read; an idle client notices only through each request's own deadline.
func ClientConfig(endpoints ...string) clientv3.Config {
	return clientv3.Config{
		Endpoints:            endpoints,
		DialTimeout:          2 * time.Second,
		DialKeepAliveTime:    time.Second,
		DialKeepAliveTimeout: time.Second,
		Logger:               zap.NewNop(),
	}
}

// NewClient returns a client for endpoints with ClientConfig, closed at
// t.Cleanup. It does not wait for a connection.
func NewClient(t TB, endpoints ...string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(ClientConfig(endpoints...))
	if err != nil {
		t.Fatalf("etcdtest: new client %v: %v", endpoints, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// StartProxy starts a Proxy to target and closes it at t.Cleanup.
func StartProxy(t TB, target string) *Proxy {
	t.Helper()
	p, err := NewProxy(target)
	if err != nil {
		t.Fatalf("etcdtest: start proxy: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}
