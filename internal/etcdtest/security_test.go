package etcdtest_test

import (
	"context"
	"crypto/tls"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leaderd/leaderd/internal/etcdtest"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// tlsClient returns a client with cfg's TLS, closed at the end of the test.
func tlsClient(t *testing.T, endpoint string, tlsCfg *tls.Config) *clientv3.Client {
	t.Helper()
	cfg := etcdtest.ClientConfig(endpoint)
	cfg.TLS = tlsCfg
	c, err := clientv3.New(cfg)
	if err != nil {
		t.Fatalf("new TLS client: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestTLSClientCertAuth(t *testing.T) {
	certs, err := etcdtest.NewCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := etcdtest.StartWithOptions(t, etcdtest.Options{Dir: filepath.Join(t.TempDir(), "etcd"), TLS: certs.ServerTLS()})
	if !strings.HasPrefix(s.Endpoint(), "https://127.0.0.1:") {
		t.Fatalf("endpoint %q, want https://127.0.0.1:PORT", s.Endpoint())
	}

	good, err := certs.ClientTLS()
	if err != nil {
		t.Fatal(err)
	}
	put(t, tlsClient(t, s.Endpoint(), good), "/k", "v")

	// A certificate from another CA is refused by the server.
	other, err := tls.LoadX509KeyPair(certs.OtherClientCert, certs.OtherClientKey)
	if err != nil {
		t.Fatal(err)
	}
	wrongCert := good.Clone()
	wrongCert.Certificates = []tls.Certificate{other}
	// No certificate at all is refused too.
	noCert := good.Clone()
	noCert.Certificates = nil
	for name, cfg := range map[string]*tls.Config{"other CA": wrongCert, "no certificate": noCert} {
		if _, err := get(tlsClient(t, s.Endpoint(), cfg), "/k", 2*opTimeout); err == nil {
			t.Errorf("%s: get succeeded, want a TLS failure", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

func TestEnableAuth(t *testing.T) {
	s := etcdtest.Start(t)
	admin := etcdtest.NewClient(t, s.Endpoint())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := etcdtest.EnableAuth(ctx, admin, "app", "secret", "/app/"); err != nil {
		t.Fatal(err)
	}

	cfg := etcdtest.ClientConfig(s.Endpoint())
	cfg.Username, cfg.Password = "app", "secret"
	user, err := clientv3.New(cfg)
	if err != nil {
		t.Fatalf("client as app: %v", err)
	}
	defer user.Close()
	put(t, user, "/app/k", "v")
	lease, err := user.Grant(ctx, 5)
	if err != nil {
		t.Fatalf("grant as app: %v", err)
	}
	if _, err := user.Put(ctx, "/app/leased", "v", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatalf("put with lease as app: %v", err)
	}
	if _, err := user.Revoke(ctx, lease.ID); err != nil {
		t.Fatalf("revoke as app: %v", err)
	}
	if _, err := user.Put(ctx, "/other", "v"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("put outside the prefix: %v, want permission denied", err)
	}
	if _, err := admin.Put(ctx, "/app/k", "v"); !errors.Is(err, rpctypes.ErrUserEmpty) {
		t.Errorf("put without credentials: %v, want %v", err, rpctypes.ErrUserEmpty)
	}

	cfg.Password = "wrong"
	if c, err := clientv3.New(cfg); err == nil {
		c.Close()
		t.Errorf("client with a wrong password: no error")
	} else if !errors.Is(err, rpctypes.ErrAuthFailed) {
		t.Errorf("client with a wrong password: %v, want %v", err, rpctypes.ErrAuthFailed)
	}

	cfg.Username, cfg.Password = "root", etcdtest.RootPassword
	root, err := clientv3.New(cfg)
	if err != nil {
		t.Fatalf("client as root: %v", err)
	}
	defer root.Close()
	put(t, root, "/other", "v")
}
