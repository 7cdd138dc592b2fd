package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestParseGRPCCounter(t *testing.T) {
	in := `# HELP grpc_server_started_total Total number of RPCs started on the server.
# TYPE grpc_server_started_total counter
grpc_server_started_total{grpc_method="LeaseKeepAlive",grpc_service="etcdserverpb.Lease",grpc_type="bidi_stream"} 120
grpc_server_started_total{grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 7
grpc_server_started_total{grpc_method="Range",grpc_service="etcdserverpb.Other",grpc_type="unary"} 3
grpc_server_handled_total{grpc_code="OK",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 99
grpc_server_msg_received_total{grpc_method="LeaseKeepAlive",grpc_service="etcdserverpb.Lease",grpc_type="bidi_stream"} 360
grpc_server_started_total{grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"} 1.5e+03
`
	body := in + "etcd_disk_wal_fsync_duration_seconds_sum 0.5\netcd_disk_wal_fsync_duration_seconds_count 100\n"
	if sum, count := histogramTotals([]byte(body), "etcd_disk_wal_fsync_duration_seconds"); sum != 0.5 || count != 100 {
		t.Errorf("histogram totals %v %v", sum, count)
	}
	if got := unlabelled([]byte("etcd_debugging_mvcc_watcher_total 12\n"), "etcd_debugging_mvcc_watcher_total"); got != 12 {
		t.Errorf("watchers %v", got)
	}
	if got := meanSince(0.5, 100, 1.5, 300); got != 5*time.Millisecond {
		t.Errorf("mean %s, want 5ms", got)
	}
	got, err := parseGRPCCounter(strings.NewReader(in), "grpc_server_started_total")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"LeaseKeepAlive": 120, "Range": 10, "Watch": 1500}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %v, want %v", k, got[k], v)
		}
	}
	received, err := parseGRPCCounter(strings.NewReader(in), "grpc_server_msg_received_total")
	if err != nil || len(received) != 1 || received["LeaseKeepAlive"] != 360 {
		t.Errorf("messages received: got %v, %v; want LeaseKeepAlive 360 alone", received, err)
	}
	if _, err := parseGRPCCounter(strings.NewReader(`grpc_server_started_total{grpc_method="Range"} x`), "grpc_server_started_total"); err == nil {
		t.Error("a bad value parsed")
	}
}

func TestParseNs(t *testing.T) {
	got, err := parseNs("100, 300,1000")
	if err != nil || len(got) != 3 || got[0] != 100 || got[1] != 300 || got[2] != 1000 {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, bad := range []string{"", "0", "10,x", "-3"} {
		if _, err := parseNs(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestScaleGrowthAndTargets(t *testing.T) {
	mk := func(n int, rps, cpu float64, handoff, excess time.Duration) *scaleResult {
		return &scaleResult{N: n, Sidecars: 3 * n, Start: time.Duration(n) * 10 * time.Millisecond, RPS: rps,
			EtcdCPU: []float64{cpu / 3, cpu / 3, cpu / 3}, EtcdRSS: []int64{1, 1, 1},
			Handoff:  &dist{Name: "hand-off", Values: []time.Duration{handoff}},
			Excess:   &dist{Name: "excess", Values: []time.Duration{excess}},
			Killed:   1,
			ByMethod: map[string]float64{"LeaseKeepAlive": rps}}
	}
	r := &scaleReport{Results: []*scaleResult{
		mk(100, 80, 0.1, 10*time.Millisecond, 100*time.Millisecond),
		mk(1000, 800, 1.2, 40*time.Millisecond, 2*time.Second),
	}}
	md := r.markdown()
	for _, want := range []string{
		"| etcd requests/s | ×10.00 |",
		"| sidecars | ×10.00 |",
		"| hand-off p99 | ×4.00 |",
		"steady state < 1 core of etcd: 1.20 cores, MISSED",
		"hand-off p99 ≤ 50.0 ms: 40.0 ms, met",
		"worst excess 2000.0 ms over 1 of 1, MISSED",
		"| LeaseKeepAlive | 80.0 | 800.0 |",
		"| 1000 | 3000 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if got := ratio(0, 5); got != "–" {
		t.Errorf("ratio over zero: %q", got)
	}
	if r.ok() != true {
		t.Error("a report without failures is not ok")
	}
	r.Results[1].Violations = 1
	if r.ok() {
		t.Error("a report with a violation is ok")
	}
}

func TestHandoffSample(t *testing.T) {
	got := handoffSample(100, 30)
	n := 0
	for i, in := range got {
		if in {
			n++
			if i%killEvery == killEvery-1 {
				t.Errorf("election %d is in both samples", i)
			}
		}
	}
	if n != 30 {
		t.Errorf("%d elections sampled, want 30", n)
	}
	if got := handoffSample(10, 30); len(got) != 10 {
		t.Errorf("sample of %d for 10 elections", len(got))
	}
}

func TestHandoffSteps(t *testing.T) {
	var sink logSink
	at := func(ms int) time.Time { return time.Unix(100, 0).Add(time.Duration(ms) * time.Millisecond) }
	log := func(ms int, id, election, msg string, args ...any) {
		l := slog.New(sink.handler()).With("id", id, "election", election)
		r := slog.NewRecord(at(ms), slog.LevelInfo, msg, 0)
		r.Add(args...)
		if err := l.Handler().Handle(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	log(3, "r1", "s0001", "hook ended", "hook", "demote")
	log(4, "r2", "s0002", "elected") // another election's r2
	log(20, "r2", "s0001", "elected")
	log(22, "r2", "s0001", "hook started", "hook", "promote")
	steps, ok := handoffSteps(sink.since(at(0)), "s0001", "r1", "r2", at(1), at(30))
	if !ok {
		t.Fatal("steps not found")
	}
	want := [4]time.Duration{2 * time.Millisecond, 17 * time.Millisecond, 2 * time.Millisecond, 8 * time.Millisecond}
	if steps != want {
		t.Errorf("steps %v, want %v", steps, want)
	}
	if _, ok := handoffSteps(sink.since(at(21)), "s0001", "r1", "r2", at(1), at(30)); ok {
		t.Error("steps found without the demote's end")
	}
	if slog.New(sink.handler()).Enabled(context.Background(), slog.LevelDebug) {
		t.Error("the sink keeps Debug lines")
	}
}
