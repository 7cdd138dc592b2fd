package election

import (
	"context"
	"testing"

	"github.com/leaderd/leaderd/internal/etcdtest"
)

// A tenure carries the candidates its verification read after the win, in
// campaign order and with their priorities: a winner decides on them
// whether it needs a fresh read before promoting (issue 11).
func TestTenureCandidatesAreTheVerifiedRead(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	first, second, third := newCandidacy(t, cli), newCandidacy(t, cli), newCandidacy(t, cli)
	r1 := result(t, campaign(first, context.Background(), "first"))
	if r1.err != nil {
		t.Fatal(r1.err)
	}
	ch2 := make(chan campaignResult, 1)
	go func() {
		ten, err := second.Campaign(context.Background(), `{"id":"second","priority":7}`)
		ch2 <- campaignResult{ten, err}
	}()
	waitCandidates(t, cli, 2)
	ch3 := campaign(third, context.Background(), "third")
	waitCandidates(t, cli, 3)
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	if got := r1.ten.Candidates(); len(got) != 1 || got[0].ID != "first" {
		t.Fatalf("first's verified candidates %+v, want only itself", got)
	}
	if err := r1.ten.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	r2 := result(t, ch2)
	if r2.err != nil {
		t.Fatal(r2.err)
	}
	defer r2.ten.Stop()
	r1.ten.Stop()
	got := r2.ten.Candidates()
	if len(got) != 2 || got[0].ID != "second" || got[0].Priority != 7 || got[1].ID != "third" || got[1].Priority != DefaultPriority {
		t.Fatalf("second's verified candidates %+v, want second (7), third (default)", got)
	}
	if err := third.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if r := result(t, ch3); r.err == nil {
		t.Fatal("third won after its lease was revoked")
	}
}
