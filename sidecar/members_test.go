package sidecar

import (
	"context"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/internal/etcdtest"
	"github.com/leaderd/leaderd/role"
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
		ms, err := election.NewStore(cli, "/leaderd", "test").Members(ctx)
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
		return len(ms) == 2 && ms[0].Role == role.Primary && ms[0].Phase == role.PhasePrimary && ms[1].Phase == role.PhaseCampaigning
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
		return len(ms) == 1 && ms[0].ID == "b" && ms[0].Role == role.Primary
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
		return len(ms) == 2 && ms[0].Phase == role.PhasePrimary && ms[1].Phase == role.PhaseCampaigning
	})
	cli := etcdtest.NewClient(t, c.etcd.Endpoint())
	for _, id := range []string{"a", "b"} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := cli.Delete(ctx, election.NewStore(nil, "/leaderd", "test").MemberKey(id))
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
		return len(ms) == 2 && ms[0].Phase == role.PhasePrimary && ms[0].FencingToken == first.Token &&
			ms[1].Phase == role.PhaseCampaigning && ms[1].FencingToken == 0
	})
}

// TestMemberRecordRepairedAfterOverwrite: a member record overwritten with
// valid JSON (another phase, another lease, none) while its lease lives is
// put back as published, on the replica's lease.
func TestMemberRecordRepairedAfterOverwrite(t *testing.T) {
	c := newCluster(t)
	c.start("a", withAdvertise("10.0.0.1:5432"))
	c.tl.waitFor(t, "a's promote", match(0, event{ID: "a", Hook: "promote", Phase: "end"}))
	c.start("b", withAdvertise("10.0.0.2:5432"))
	before := waitMembers(t, c, "a primary, b standby", func(ms []election.Member) bool {
		return len(ms) == 2 && ms[0].Phase == role.PhasePrimary && ms[1].Phase == role.PhaseCampaigning
	})
	cli := etcdtest.NewClient(t, c.etcd.Endpoint())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, election.NewStore(nil, "/leaderd", "test").MembersPrefix()+"a",
		`{"id":"a","role":"standby","phase":"unhealthy","healthy":false}`, clientv3.WithIgnoreLease()); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, election.NewStore(nil, "/leaderd", "test").MembersPrefix()+"b", `{"id":"b","role":"primary"}`); err != nil {
		t.Fatal(err) // b's record is now off its lease
	}
	waitMembers(t, c, "both put back", func(ms []election.Member) bool {
		if len(ms) != 2 {
			return false
		}
		for i := range ms {
			want, got := before[i], ms[i]
			got.LeaseSeconds, want.LeaseSeconds = 0, 0
			if got != want {
				return false
			}
		}
		return true
	})
}

// TestMemberRecordRepairBacksOff: someone who keeps overwriting a member
// record gets no tight loop: leaderd puts it back at a growing interval,
// and for good once they stop.
func TestMemberRecordRepairBacksOff(t *testing.T) {
	c := newCluster(t)
	c.start("a")
	c.tl.waitFor(t, "a's promote", match(0, event{ID: "a", Hook: "promote", Phase: "end"}))
	waitMembers(t, c, "a primary", func(ms []election.Member) bool { return len(ms) == 1 && ms[0].Phase == role.PhasePrimary })
	cli := etcdtest.NewClient(t, c.etcd.Endpoint())
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	key := election.NewStore(nil, "/leaderd", "test").MemberKey("a")
	start, err := cli.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	events := cli.Watch(ctx, key, clientv3.WithRev(start.Header.Revision+1))
	const fight = 2 * time.Second
	var last int64
	for end := time.Now().Add(fight); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		resp, err := cli.Put(ctx, key, `{"id":"a","role":"standby","phase":"twin"}`, clientv3.WithIgnoreLease())
		if err != nil {
			t.Fatal(err)
		}
		last = resp.Header.Revision
	}
	waitMembers(t, c, "a put back", func(ms []election.Member) bool { return len(ms) == 1 && ms[0].Phase == role.PhasePrimary })
	repairs := 0
	for seen := int64(0); seen < last; {
		wr, ok := <-events
		if !ok {
			t.Fatal("the watch closed")
		}
		for _, ev := range wr.Events {
			seen = ev.Kv.ModRevision
			if seen <= last && !strings.Contains(string(ev.Kv.Value), "twin") {
				repairs++
			}
		}
	}
	// Puts at least 0.25s, 0.5s, 1s apart (and on the 0.5s refresh tick):
	// 4 in 2s, a few more allowed for a slow machine; not one per
	// overwrite (about 100).
	t.Logf("%d repairs during %s of overwrites", repairs, fight)
	if repairs < 1 || repairs > 6 {
		t.Fatalf("%d repairs during %s of overwrites every 20ms, want 1 to 6", repairs, fight)
	}
}
