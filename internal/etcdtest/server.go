package etcdtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Named limits. They are generous for a loaded CI machine and short enough
// that a broken start fails a test instead of hanging it.
const (
	// readyTimeout caps every wait for the server to become ready, whatever
	// the caller's context allows.
	readyTimeout = 30 * time.Second
	// bindAttempts is how often StartServer picks new ports when another
	// process takes a picked port between the probe and etcd's own bind.
	bindAttempts = 5
)

// bcryptMinCost is golang.org/x/crypto/bcrypt's MinCost.
const bcryptMinCost = 4

// ErrClosed is returned by Restart after Close.
var ErrClosed = errors.New("etcdtest: server closed")

// Options configures StartServer. The zero value is valid.
type Options struct {
	// Dir is the data directory. Default "": a new temporary directory,
	// removed by Close. A given Dir is kept.
	Dir string
	// Logger receives the helper's own messages and etcd's error-level
	// messages (with component=etcd). Default nil: discard everything.
	Logger *slog.Logger
	// TLS, when set, serves clients over https (Endpoint is then
	// "https://127.0.0.1:PORT"). Default nil: plain http.
	TLS *TLS
	// ElectionTimeout is etcd's --election-timeout. Default 0: etcd's
	// (1s). etcd's minimum lease TTL follows it (1.5 x, rounded up to
	// whole seconds): a test sets it to make etcd raise a granted TTL.
	ElectionTimeout time.Duration
}

// Server is an embedded single-member etcd on free loopback ports. Its
// client and peer ports and its data directory stay the same across Stop
// and Restart, so clients can keep their endpoint.
type Server struct {
	name      string
	dir       string
	removeDir bool
	clientURL url.URL
	peerURL   url.URL
	logger    *slog.Logger  // component=etcdtest
	etcdLog   *slog.Logger  // component=etcd, etcd's own error-level entries
	tls       *TLS          // nil: plain http
	election  time.Duration // etcd's --election-timeout; 0: its default

	mu     sync.Mutex
	etcd   *embed.Etcd // nil while stopped
	closed bool
}

// StartServer starts an embedded etcd and waits until it serves clients,
// bounded by ctx and by a 30s cap. On error nothing is left running and a
// temporary directory it made is removed.
func StartServer(ctx context.Context, opts Options) (*Server, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		name:     "etcdtest-" + randomSuffix(),
		dir:      opts.Dir,
		logger:   logger.With("component", "etcdtest"),
		etcdLog:  logger.With("component", "etcd"),
		tls:      opts.TLS,
		election: opts.ElectionTimeout,
	}
	if s.dir == "" {
		tmp, err := os.MkdirTemp("", "etcdtest-*")
		if err != nil {
			return nil, fmt.Errorf("etcdtest: data dir: %w", err)
		}
		s.dir = tmp
		s.removeDir = true
	}

	var err error
	for attempt := 1; attempt <= bindAttempts; attempt++ {
		var ports []int
		ports, err = freePorts(2)
		if err != nil {
			break
		}
		s.clientURL = loopbackURL(ports[0])
		if s.tls != nil {
			s.clientURL.Scheme = "https"
		}
		s.peerURL = loopbackURL(ports[1])
		err = s.start(ctx)
		if err == nil || !isAddrInUse(err) {
			break
		}
		s.logger.Warn("port taken, retrying with new ports", "attempt", attempt, "err", err)
	}
	if err != nil {
		s.removeTempDir()
		return nil, err
	}
	s.logger.Info("etcd started", "endpoint", s.Endpoint(), "dir", s.dir)
	return s, nil
}

// Endpoint returns the client URL, "http://127.0.0.1:PORT" (https with
// Options.TLS). It does not change across Stop and Restart.
func (s *Server) Endpoint() string { return s.clientURL.String() }

// Dir returns the data directory.
func (s *Server) Dir() string { return s.dir }

// Stop stops etcd but keeps its data directory and ports, to simulate etcd
// being down. Connected clients see their connections closed and new ones
// refused. Stop is idempotent.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

// Restart starts etcd again on the same ports and data directory and waits
// until it serves clients, bounded by ctx and a 30s cap. A running server
// is stopped first, so Restart also simulates a crash and restart.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	closed := s.closed
	s.stopLocked()
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if err := s.start(ctx); err != nil {
		return err
	}
	s.logger.Info("etcd restarted", "endpoint", s.Endpoint())
	return nil
}

// Close stops etcd and removes the data directory if StartServer made it.
// It is idempotent; etcd bounds its own shutdown (a few seconds at most).
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.stopLocked()
	s.mu.Unlock()
	s.removeTempDir()
}

func (s *Server) stopLocked() {
	if s.etcd == nil {
		return
	}
	s.etcd.Close()
	s.etcd = nil
	s.logger.Info("etcd stopped", "endpoint", s.Endpoint())
}

// start launches etcd with a fresh config (embed.StartEtcd mutates the one
// it is given) and waits until it is ready.
func (s *Server) start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.etcd != nil {
		return nil // started concurrently; it is ready or being stopped by its owner
	}
	e, err := embed.StartEtcd(s.config())
	if err != nil {
		return fmt.Errorf("etcdtest: start etcd: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	select {
	case <-e.Server.ReadyNotify():
		s.etcd = e
		return nil
	case err = <-e.Err():
		err = fmt.Errorf("etcdtest: etcd failed before ready: %w", err)
	case <-ctx.Done():
		err = fmt.Errorf("etcdtest: waiting for etcd to be ready: %w", ctx.Err())
	}
	e.Close()
	return err
}

func (s *Server) config() *embed.Config {
	cfg := embed.NewConfig()
	cfg.Name = s.name
	cfg.Dir = s.dir
	cfg.ListenClientUrls = []url.URL{s.clientURL}
	cfg.AdvertiseClientUrls = []url.URL{s.clientURL}
	cfg.ListenPeerUrls = []url.URL{s.peerURL}
	cfg.AdvertisePeerUrls = []url.URL{s.peerURL}
	// Ignored by etcd once the member has a WAL, so Restart reuses it as is.
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.InitialClusterToken = s.name
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.New(newSlogCore(s.etcdLog)))
	// bcrypt's cheapest cost: every authenticated client dial hashes the
	// password, and at the default cost (10) a loaded 2-core machine under
	// -race let logins run past the clients' 2s dial timeout.
	cfg.BcryptCost = bcryptMinCost
	// Small snapshots keep the data dir small in long demos.
	cfg.SnapshotCount = 1000
	cfg.SnapshotCatchUpEntries = 100
	if s.election > 0 {
		cfg.ElectionMs = uint(s.election / time.Millisecond)
	}
	if s.tls != nil {
		s.tls.apply(cfg)
	}
	return cfg
}

func (s *Server) removeTempDir() {
	if !s.removeDir {
		return
	}
	if err := os.RemoveAll(s.dir); err != nil {
		s.logger.Warn("remove data dir", "dir", s.dir, "err", err)
	}
}

// freePorts returns n distinct loopback ports that were free a moment ago.
// All n listeners are open together so the ports differ.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("etcdtest: pick a free port: %w", err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func loopbackURL(port int) url.URL { return LoopbackURL(port) }

func isAddrInUse(err error) bool { return IsAddrInUse(err) }

func randomSuffix() string { return RandomSuffix() }

// LoopbackURL is "http://127.0.0.1:PORT".
func LoopbackURL(port int) url.URL {
	return url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", port)}
}

// IsAddrInUse reports whether err is a bind to a port another process
// took: the caller picks new ports and tries again.
func IsAddrInUse(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")
}

// RandomSuffix is eight hex digits, for names (cluster tokens, members)
// that must not clash between runs.
func RandomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
