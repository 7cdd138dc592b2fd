package main

import (
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/grpclog"
)

// With --log-level error, a panic in a handler of the sidecar's HTTP API
// (net/http recovers it and writes "http: panic serving ..." with the stack
// through the log package) still reaches the log: the log package's lines
// are errors, as net/http's ErrorLog means them.
func TestLibraryLogsKeepAHandlerPanicAtLogLevelError(t *testing.T) {
	var out syncBuffer
	routeLibraryLogs(newLogger(&out, "json", slog.LevelError))
	t.Cleanup(func() {
		grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, io.Discard, os.Stderr))
		log.SetFlags(log.LstdFlags)
		log.SetOutput(os.Stderr)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("handler bug") }),
		ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	cli := &http.Client{Timeout: 5 * time.Second}
	if resp, err := cli.Get("http://" + ln.Addr().String()); err == nil {
		resp.Body.Close()
	}
	cli.CloseIdleConnections()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) && !strings.Contains(out.String(), "handler bug") {
		time.Sleep(10 * time.Millisecond) // polling a log: no event to wait on
	}
	if !strings.Contains(out.String(), "http: panic serving") {
		t.Fatalf("net/http's handler panic was not logged at --log-level error; log: %q", out.String())
	}
}
