package election

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/leaderd/leaderd/internal/etcdtest"
)

func record(t *testing.T, cli *clientv3.Client, election string, rec TenureRecord) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	if err := NewStore(cli, "/leaderd", election).RecordTenure(ctx, rec); err != nil {
		t.Fatalf("record tenure %d: %v", rec.FencingToken, err)
	}
}

func history(t *testing.T, cli *clientv3.Client, election string, limit int) []TenureRecord {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	recs, err := NewStore(cli, "/leaderd", election).History(ctx, limit)
	if err != nil {
		t.Fatalf("history: %v", err)
	}
	return recs
}

func tokens(recs []TenureRecord) []int64 {
	out := make([]int64, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.FencingToken)
	}
	return out
}

func TestHistoryEndOverwritesStart(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	start := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

	rec := TenureRecord{ID: "app-1", FencingToken: 42, Start: start}
	record(t, cli, "web", rec)
	got := history(t, cli, "web", 0)
	if len(got) != 1 || !got[0].Open() || got[0].EndReason != "" || got[0].ID != "app-1" || !got[0].Start.Equal(start) {
		t.Fatalf("after start: %+v, want one open record of app-1", got)
	}

	rec.End, rec.EndReason = start.Add(90*time.Second), "shutdown"
	record(t, cli, "web", rec)
	got = history(t, cli, "web", 0)
	if len(got) != 1 {
		t.Fatalf("after end: %d records, want the start record overwritten: %+v", len(got), got)
	}
	if g := got[0]; g.Open() || !g.End.Equal(rec.End) || g.EndReason != "shutdown" || g.FencingToken != 42 || !g.Start.Equal(start) {
		t.Errorf("after end: %+v, want %+v", g, rec)
	}

	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	resp, err := cli.Get(ctx, "/leaderd/web/history/00000000000000000042")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || resp.Kvs[0].Lease != 0 {
		t.Errorf("key %+v, want the documented key, without a lease", resp.Kvs)
	}
}

func TestHistoryNewestFirst(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	// Tokens of different digit counts: the zero padding must sort them.
	for _, tok := range []int64{9, 1000, 95, 10, 123456} {
		record(t, cli, "web", TenureRecord{ID: fmt.Sprint("app-", tok), FencingToken: tok, Start: time.Now()})
	}
	// Another election, and one whose name extends "web": not ours.
	record(t, cli, "web2", TenureRecord{ID: "other", FencingToken: 5000, Start: time.Now()})
	record(t, cli, "api", TenureRecord{ID: "other", FencingToken: 7, Start: time.Now()})

	got := tokens(history(t, cli, "web", 0))
	want := []int64{123456, 1000, 95, 10, 9}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("tokens %v, want %v", got, want)
	}
	if got := history(t, cli, "empty", 0); len(got) != 0 {
		t.Errorf("empty election: %+v, want none", got)
	}
}

func TestHistoryLimitParam(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	for tok := int64(1); tok <= 5; tok++ {
		record(t, cli, "web", TenureRecord{ID: "app", FencingToken: tok, Start: time.Now()})
	}
	for _, tt := range []struct {
		limit int
		want  []int64
	}{
		{1, []int64{5}},
		{3, []int64{5, 4, 3}},
		{10, []int64{5, 4, 3, 2, 1}},
		{0, []int64{5, 4, 3, 2, 1}},
		{-1, []int64{5, 4, 3, 2, 1}},
	} {
		t.Run(fmt.Sprint(tt.limit), func(t *testing.T) {
			if got := tokens(history(t, cli, "web", tt.limit)); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("tokens %v, want %v", got, tt.want)
			}
		})
	}
}

func TestHistoryIsBounded(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	const n = HistoryLimit + 25
	for tok := int64(1); tok <= n; tok++ {
		// Odd gaps between tokens, as real create revisions have.
		rec := TenureRecord{ID: "app", FencingToken: tok * 7, Start: time.Now()}
		record(t, cli, "web", rec)
		rec.End, rec.EndReason = time.Now(), "lease-lost"
		record(t, cli, "web", rec)
	}
	// A neighbour election's history must survive the trimming.
	record(t, cli, "web2", TenureRecord{ID: "other", FencingToken: 1, Start: time.Now()})

	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	resp, err := cli.Get(ctx, NewStore(nil, "/leaderd", "web").HistoryPrefix(), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Count != HistoryLimit {
		t.Fatalf("%d keys under the history prefix, want %d", resp.Count, HistoryLimit)
	}
	got := history(t, cli, "web", HistoryLimit+50)
	if len(got) != HistoryLimit {
		t.Fatalf("History returned %d records, want %d", len(got), HistoryLimit)
	}
	for i, r := range got {
		if want := int64(n-i) * 7; r.FencingToken != want || r.Open() {
			t.Fatalf("record %d: %+v, want the ended tenure %d", i, r, want)
		}
	}
	if got := history(t, cli, "web2", 0); len(got) != 1 {
		t.Errorf("web2 history: %+v, want its one record", got)
	}
}

func TestRecordTenureRejectsBadToken(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := etcdtest.NewClient(t, srv.Endpoint())
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	for _, tok := range []int64{0, -3} {
		err := NewStore(cli, "/leaderd", "web").RecordTenure(ctx, TenureRecord{ID: "app", FencingToken: tok})
		if !errors.Is(err, ErrBadFencingToken) {
			t.Errorf("token %d: err %v, want ErrBadFencingToken", tok, err)
		}
	}
}

func TestRecordTenureBoundedByContext(t *testing.T) {
	srv := etcdtest.Start(t)
	proxy := etcdtest.StartProxy(t, srv.Endpoint())
	cli := etcdtest.NewClient(t, proxy.Endpoint())
	proxy.CutOff()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := NewStore(cli, "/leaderd", "web").RecordTenure(ctx, TenureRecord{ID: "app", FencingToken: 1, Start: time.Now()})
	if err == nil {
		t.Error("RecordTenure succeeded through a cut-off proxy")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("returned after %s, want about the 500ms deadline", took)
	}
}
