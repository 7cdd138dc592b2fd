package sidecar

import (
	"context"
	"testing"
	"time"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/internal/etcdtest"
)

func withAdvertise(addr string) replicaOption {
	return func(c *Config) { c.Advertise, c.Version = addr, "test" }
}

// waitMembers polls the member records until ok accepts them.
func waitMembers(t *testing.T, c *cluster, what string, ok func([]election.Member) bool) []election.Member {
	t.Helper()
	cli := etcdtest.NewClient(t, c.etcd.Endpoint())
	deadline := time.Now().Add(waitBound)
	tick := time.NewTicker(50 * time.Millisecond) // records are republished every memberRefresh
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ms, err := election.Members(ctx, cli, "/leaderd", "test")
		cancel()
		if err == nil && ok(ms) {
			return ms
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for members %s; have %+v (%v)", what, ms, err)
		}
		<-tick.C
	}
}

func TestMembersPublished(t *testing.T) {
	c := newCluster(t)
	c.start("a", withAdvertise("10.0.0.1:5432"))
	c.tl.waitFor(t, "a's promote", match(0, event{ID: "a", Hook: "promote", Phase: "end"}))
	c.start("b", withAdvertise("10.0.0.2:5432"))
	ms := waitMembers(t, c, "a primary, b standby", func(ms []election.Member) bool {
		return len(ms) == 2 && ms[0].Role == RolePrimary && ms[0].Phase == PhasePrimary && ms[1].Phase == PhaseCampaigning
	})
	for i, want := range []struct{ id, addr string }{{"a", "10.0.0.1:5432"}, {"b", "10.0.0.2:5432"}} {
		m := ms[i]
		if m.ID != want.id || m.Addr != want.addr || m.Version != "test" || !m.Healthy || m.LeaseID == 0 || m.LeaseSeconds <= 0 {
			t.Errorf("member %d = %+v", i, m)
		}
	}
	if p := election.Availability(ms); p != 1 {
		t.Errorf("availability %v, want 1", p)
	}
	// A graceful stop takes the record with the lease; the other's role
	// follows its promote.
	if err := c.stop("a"); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, c, "b alone, primary", func(ms []election.Member) bool {
		return len(ms) == 1 && ms[0].ID == "b" && ms[0].Role == RolePrimary
	})
}

// TestMemberRecordRepublishedAfterDelete: a member record deleted while
// its lease lives comes back, so `leaderd status` and `switchover --to`
// keep seeing the replica.
func TestMemberRecordRepublishedAfterDelete(t *testing.T) {
	c := newCluster(t)
	c.start("a", withAdvertise("10.0.0.1:5432"))
	c.tl.waitFor(t, "a's promote", match(0, event{ID: "a", Hook: "promote", Phase: "end"}))
	c.start("b", withAdvertise("10.0.0.2:5432"))
	before := waitMembers(t, c, "a primary, b standby", func(ms []election.Member) bool {
		return len(ms) == 2 && ms[0].Phase == PhasePrimary && ms[1].Phase == PhaseCampaigning
	})
	cli := etcdtest.NewClient(t, c.etcd.Endpoint())
	for _, id := range []string{"a", "b"} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := cli.Delete(ctx, election.MembersPrefix("/leaderd", "test")+id)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	after := waitMembers(t, c, "both back", func(ms []election.Member) bool { return len(ms) == 2 })
	for i := range after {
		if after[i].LeaseID != before[i].LeaseID || after[i].Phase != before[i].Phase {
			t.Errorf("member %s back as %+v, was %+v", after[i].ID, after[i], before[i])
		}
	}
}

// TestMemberRecordCarriesTheFencingTokenWhilePrimary: the primary's record
// has its tenure's token, a standby's none.
func TestMemberRecordCarriesTheFencingTokenWhilePrimary(t *testing.T) {
	c := newCluster(t)
	c.start("a")
	first := c.tl.waitFor(t, "a's promote", match(0, event{ID: "a", Hook: "promote", Phase: "end"}))
	c.start("b")
	waitMembers(t, c, "a primary with its token, b standby without", func(ms []election.Member) bool {
		return len(ms) == 2 && ms[0].Phase == PhasePrimary && ms[0].FencingToken == first.Token &&
			ms[1].Phase == PhaseCampaigning && ms[1].FencingToken == 0
	})
}
