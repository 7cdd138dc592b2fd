package election

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leaderd/leaderd/internal/etcdtest"
)

// A deployment whose prefix nests inside this one's candidates puts its
// own candidate keys there: on a lease, named by it in hex. They are not
// this election's candidates: a campaign that counted them would wait
// behind them for as long as the nested deployment runs.
func TestCampaignIgnoresANestedDeploymentsCandidateKeys(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	nested := NewStore(cli, testStore(nil).CandidatesPrefix()+"sub", "x")
	other := grant(t, cli)
	if _, err := cli.Put(ctx, nested.CandidateKey(other.ID()), `{"id":"nested"}`, clientv3.WithLease(other.ID())); err != nil {
		t.Fatal(err)
	}
	c := newCandidacy(t, cli)
	wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
	defer wcancel()
	r := result(t, campaign(c, wctx, "a"))
	if r.err != nil {
		t.Fatalf("campaign behind %s, a nested deployment's candidate key: %v", nested.CandidateKey(other.ID()), r.err)
	}
	r.ten.Stop()
}
