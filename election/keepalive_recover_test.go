package election

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leaderd/leaderd/internal/etcdtest"
)

// A kept stream whose token etcd dropped (the user's
// password changed: etcd invalidates its simple tokens) fails its next
// renewal with an auth error; the retry on a new stream logs in again and
// renews, so no renewal fails.
func TestKeptStreamRenewsAfterItsTokenIsInvalidated(t *testing.T) {
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
	rcfg := etcdtest.ClientConfig(srv.Endpoint())
	rcfg.Username, rcfg.Password = "root", etcdtest.RootPassword
	root, err := clientv3.New(rcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = root.Close() })

	clk := newJumpClock()
	opts := leaseOn(testLease, clk)
	results := renewResults(&opts)
	l, ws := grantStream(t, cli, opts)
	if _, err := cli.Put(ctx, "/leaderd/t/k", "v", clientv3.WithLease(l.ID())); err != nil {
		t.Fatal(err)
	}
	jumpToRenewal(t, l, clk)
	if err := awaitRenewal(t, results); err != nil {
		t.Fatal(err)
	}
	// Same password: only the tokens go. Then an unrelated auth change
	// bumps the auth revision too.
	if _, err := root.UserChangePassword(ctx, "app", "secret"); err != nil {
		t.Fatal(err)
	}
	if _, err := root.RoleAdd(ctx, "unrelated"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		jumpToRenewal(t, l, clk)
		if err := awaitRenewal(t, results); err != nil {
			t.Fatalf("renewal after the token was dropped: %v", err)
		}
	}
	t.Logf("streams opened: %d", ws.opened.Load())
	if n := ws.opened.Load(); n != 2 {
		t.Errorf("%d streams opened, want 2 (the first, and one after the token was dropped)", n)
	}
}

// etcd restarts (same address) while the stream is
// idle between renewals; the next renewal finds the kept stream dead and
// renews on a new one, without a failed renewal.
func TestKeptStreamRenewsAfterEtcdRestarted(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	clk := newJumpClock()
	// Long enough that no renewal falls due, and no guard fires, while
	// etcd restarts.
	opts := leaseOn(LeaseOptions{TTL: 60 * time.Second, RenewInterval: 20 * time.Second, StepDownLead: 10 * time.Second}, clk)
	results := renewResults(&opts)
	l, ws := grantStream(t, cli, opts)
	jumpToRenewal(t, l, clk)
	if err := awaitRenewal(t, results); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	start := time.Now()
	srv.Stop()
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	// Wait until etcd serves again, on another connection's stream of the
	// same client (a Get through the client also reconnects it).
	if _, err := cli.Get(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	t.Logf("etcd down and back in %s", time.Since(start).Round(time.Millisecond))
	jumpToRenewal(t, l, clk)
	if err := awaitRenewal(t, results); err != nil {
		t.Fatalf("renewal after the restart: %v", err)
	}
	if n := ws.opened.Load(); n != 2 {
		t.Errorf("%d streams opened, want 2", n)
	}
}
