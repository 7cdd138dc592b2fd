package sidecar

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// tlsProbeTimeout bounds one endpoint's probe: dial, handshake and a read
// that reveals an alert the server sends after the handshake.
const tlsProbeTimeout = time.Second

// explain adds the cause to a failed etcd request where etcd's client hides
// it: a TLS failure surfaces only as "context deadline exceeded", because
// the client waits for a usable connection until the deadline.
func (s *Sidecar) explain(err error) error {
	if !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	cfg, cfgErr := s.cfg.TLSConfig()
	if cfgErr != nil || cfg == nil {
		return err
	}
	for _, ep := range s.cfg.Endpoints {
		if problem := probeTLS(ep, cfg); problem != nil {
			return fmt.Errorf("%w (TLS to %s: %v)", err, ep, problem)
		}
	}
	return err
}

// probeTLS reports a TLS handshake failure with endpoint, or nil when the
// handshake works or the endpoint cannot be reached at all (that is not a
// TLS problem).
func probeTLS(endpoint string, base *tls.Config) error {
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "https" {
		return nil
	}
	cfg := base.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = u.Hostname()
	}
	dialer := &net.Dialer{Timeout: tlsProbeTimeout}
	conn, err := tls.DialWithDialer(dialer, "tcp", u.Host, cfg)
	if err != nil {
		if isTLSError(err) {
			return err
		}
		return nil
	}
	defer conn.Close()
	// With TLS 1.3 a server rejects a client certificate after the
	// handshake: the alert arrives on the first read.
	_ = conn.SetReadDeadline(time.Now().Add(tlsProbeTimeout / 2))
	if _, err := conn.Read(make([]byte, 1)); err != nil && isTLSError(err) {
		return err
	}
	return nil
}

func isTLSError(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "tls:") || strings.Contains(msg, "x509:")
}
