// Command demo-app is the replicated toy service of the docker compose demo.
// Three replicas run side by side, each with its own leaderd; the leaderd
// hooks switch the replica's role over localhost:
//
//	POST /promote?token=T  primary for the tenure T (LEADERD_FENCING_TOKEN)
//	POST /demote?token=T   standby (T is empty at leaderd's start-up)
//
// Clients write to the primary:
//
//	POST /write?id=X       body = data; 200 only once a majority holds it
//	GET  /log              the entries this replica holds, as JSON
//	GET  /role             {"role", "token", "max_seen", "promotes", "demotes"}
//	GET  /healthz          200 while the process serves
//
// and the replicas talk among themselves:
//
//	POST /replicate        an entry from the primary (JSON)
//	POST /retract?id=X&token=T   drop an entry the primary did not acknowledge
//	POST /sync?token=T     fence at T and return the log (a new primary's promote)
//
// The point of the demo is fencing, not only election: every write is
// stamped with the fencing token of the tenure that made it, and a replica
// refuses entries older than the newest tenure it has seen, so a stale
// primary (paused, cut off) cannot get a write acknowledged once a newer
// primary has fenced a majority.
//
// Configuration, from the environment:
//
//	APP_LISTEN  listen address (default :8080)
//	APP_ID      name in logs (default the hostname)
//	APP_PEERS   the other replicas, comma-separated host:port
package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(run())
}

func run() int {
	id := os.Getenv("APP_ID")
	if id == "" {
		id, _ = os.Hostname()
	}
	listen := os.Getenv("APP_LISTEN")
	if listen == "" {
		listen = ":8080"
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("app", id)

	a := New(id, splitPeers(os.Getenv("APP_PEERS")), logger)
	srv := &http.Server{Addr: listen, Handler: a, ReadHeaderTimeout: 5 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	logger.Info("serving", "listen", listen, "peers", a.peers)

	select {
	case err := <-errc:
		logger.Error("serve", "err", err)
		return 1
	case <-ctx.Done():
	}
	// Bounded: in-flight requests are short (peer calls time out in ~1s).
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Error("shutdown", "err", err)
		return 1
	}
	return 0
}

// splitPeers parses APP_PEERS: "app2:8080,app3:8080" -> base URLs.
func splitPeers(s string) []string {
	var peers []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			if !strings.Contains(p, "://") {
				p = "http://" + p
			}
			peers = append(peers, strings.TrimSuffix(p, "/"))
		}
	}
	return peers
}
