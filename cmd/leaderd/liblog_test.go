package main

import (
	"encoding/json"
	"io"
	"log"
	"os"
	"strings"
	"testing"

	"google.golang.org/grpc/grpclog"
)

// With --log-format json, what gRPC and the log package (net/http's server
// errors) write by themselves comes out as JSON records like every other
// line, not as plain text among them; gRPC's info and warnings stay out.
func TestLibraryLogsComeOutInTheLogFormat(t *testing.T) {
	var out syncBuffer // gRPC may write from its own goroutines
	routeLibraryLogs(newLogger(&out, "json", 0))
	t.Cleanup(func() {
		grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, io.Discard, os.Stderr))
		log.SetFlags(log.LstdFlags)
		log.SetOutput(os.Stderr)
	})

	grpclog.Info("grpc info, dropped")
	grpclog.Warning("grpc warning, dropped")
	grpclog.Errorf("grpc error %d", 7)
	log.Printf("http: TLS handshake error from %s: EOF", "192.0.2.1:5555")

	want := map[string]map[string]string{
		"grpc error 7": {"level": "ERROR", "component": "grpc"},
		"http: TLS handshake error from 192.0.2.1:5555: EOF": {"level": "ERROR", "component": "log"},
	}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not a JSON record: %q", line)
		}
		msg, _ := rec["msg"].(string)
		if strings.Contains(msg, "dropped") {
			t.Errorf("gRPC's info or warning was logged: %q", line)
		}
		if w, ok := want[msg]; ok {
			for k, v := range w {
				if rec[k] != v {
					t.Errorf("%q: %s = %v, want %s", msg, k, rec[k], v)
				}
			}
			delete(want, msg)
		}
	}
	for msg := range want {
		t.Errorf("no record %q in:\n%s", msg, out.String())
	}
}
