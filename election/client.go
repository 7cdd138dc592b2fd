package election

import (
	"crypto/tls"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// defaultDialTimeout bounds the first connection of a client whose
// ClientConfig sets none: the replica's.
const defaultDialTimeout = 2 * time.Second

// ClientConfig is what leaderd's etcd clients, the replica's and the
// command line's, are made from.
type ClientConfig struct {
	Endpoints []string
	// TLS is nil for plain connections.
	TLS *tls.Config
	// User and Password log in when User is set: clientv3.New then asks
	// for a token at once, so a wrong password fails the constructor.
	User, Password string
	// DialTimeout bounds the first connection (and the login); 0 means 2s.
	DialTimeout time.Duration
}

// NewClient makes an etcd client. Its own logging is kept quiet: every
// failure reaches the caller as an error, which says what the user needs.
func NewClient(cfg ClientConfig) (*clientv3.Client, error) {
	dial := cfg.DialTimeout
	if dial <= 0 {
		dial = defaultDialTimeout
	}
	return clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: dial,
		// gRPC raises any keepalive time below 10s to 10s. Cut-offs are
		// caught by the lease guard's per-call deadlines; these pings only
		// make a dead connection get replaced (another endpoint tried).
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		TLS:                  cfg.TLS,
		Username:             cfg.User,
		Password:             cfg.Password,
		Logger:               zap.NewNop(),
	})
}
