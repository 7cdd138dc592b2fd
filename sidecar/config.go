package sidecar

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/leaderd/leaderd/election"
	"github.com/leaderd/leaderd/health"
)

// Config is everything a sidecar needs. Field comments give the default
// that DefaultConfig sets and the flag a user types.
type Config struct {
	// Endpoints are the etcd client URLs (--endpoints). Default: http://127.0.0.1:2379.
	Endpoints []string
	// Election names the election (--election). Required, [A-Za-z0-9._-]{1,128}.
	Election string
	// ID is this replica's name, unique in the election (--id). Default: hostname.
	ID string
	// Prefix is the etcd key prefix (--prefix). Default: /leaderd.
	Prefix string
	// TTL is the lease TTL, whole seconds, at least 2s (--ttl). Default:
	// 15s, or TTLFor(DemoteTimeout) when only the demote timeout is set.
	TTL time.Duration

	// OnPromote and OnDemote are hook command lines run by /bin/sh -c
	// (--on-promote, --on-demote). Empty means nothing to run.
	OnPromote string
	OnDemote  string
	// OnLeaderChange runs on a standby once a new primary has finished its
	// promote (--on-leader-change), with LEADERD_LEADER and
	// LEADERD_LEADER_ADDR, to follow it (repmgr's follow, Patroni's replica
	// reconfiguration). It is bounded by PromoteTimeout: following is a
	// standby's counterpart of promoting, with the same kill rules. It is
	// killed when this replica promotes or demotes, or the leader moves on.
	OnLeaderChange string
	// PromoteTimeout bounds the promote hook (--promote-timeout). Default: 60s.
	PromoteTimeout time.Duration
	// DemoteTimeout bounds the demote hook (--demote-timeout). Default: 5s,
	// or DemoteTimeoutFor(TTL) when only the TTL is set.
	// The lease guard reserves this much time before the lease can expire.
	DemoteTimeout time.Duration

	// Listen is the HTTP API address (--listen); "off" disables it. Default: 127.0.0.1:8008.
	Listen string
	// Advertise is the address other replicas and tools should use to reach
	// this replica's app (--advertise), published in its member record and
	// candidate key. Default: empty.
	Advertise string

	// NoFailover makes this replica a member that never campaigns
	// (--no-failover): it follows the primary and can be a switchover
	// target only once the flag is gone.
	NoFailover bool
	// Priority ranks this replica at failover (--priority; default
	// election.DefaultPriority): a winner yields to a healthy campaigner of
	// strictly higher priority instead of promoting. Published in the
	// candidate key and the member record.
	Priority int
	// FailbackAfter, when positive, hands the role to a higher-priority
	// replica once it has campaigned continuously that long while this one
	// is primary (--failback after=DURATION); 0: off, the default.
	FailbackAfter time.Duration
	// APIToken enables POST /resign for callers that send it as a bearer
	// token (--api-token; LEADERD_API_TOKEN). Empty: POST /resign is refused.
	APIToken string

	// Version is leaderd's version, published in the member record. Set by
	// the binary, not a flag.
	Version string
	// LogLinesDropped counts the log lines the binary's log sink dropped
	// (stderr stalled or closed), for leaderd_log_lines_dropped_total. Set
	// by the binary, not a flag; nil: the metric is not exported.
	LogLinesDropped func() uint64

	// CACert, Cert and Key are PEM files for TLS to etcd (--cacert, --cert, --key).
	CACert string
	Cert   string
	Key    string
	// User and Password authenticate to etcd (--user; the password comes
	// from LEADERD_PASSWORD or --password-file, never from a flag).
	User     string
	Password string

	// Health checks the local app (--health-cmd or --health-url and their
	// thresholds). An unhealthy standby withdraws from the election and an
	// unhealthy primary steps down. No check configured: always healthy.
	Health health.Config
}

// DefaultConfig returns the documented defaults. Election is left empty:
// the user must name it.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		Endpoints:      []string{"http://127.0.0.1:2379"},
		ID:             host,
		Prefix:         "/leaderd",
		TTL:            defaultTTL,
		PromoteTimeout: 60 * time.Second,
		DemoteTimeout:  defaultDemoteTimeout,
		Listen:         "127.0.0.1:8008",
		Priority:       election.DefaultPriority,
		Health:         health.DefaultConfig(),
	}
}

// Timing derived from the TTL. See docs/design.md, "The lease guard".
const (
	defaultTTL           = 15 * time.Second
	defaultDemoteTimeout = 5 * time.Second

	// minTTL is etcd's minimum lease TTL with default settings; smaller
	// grants are silently raised, which would break the timing budget.
	minTTL = 2 * time.Second
	// minMargin covers clock-rate drift and scheduling delay between the
	// moment the sidecar decides to step down and the demote hook's end.
	minMargin = 500 * time.Millisecond
)

// RenewInterval is how often the lease is renewed: TTL/4.
func (c Config) RenewInterval() time.Duration { return c.TTL / 4 }

// Margin is the slack kept between the demote hook's kill time and the
// earliest server-side lease expiry: max(500ms, TTL/10).
func (c Config) Margin() time.Duration { return max(minMargin, c.TTL/10) }

// StepDownLead is how long before the lease's earliest server-side expiry
// the primary starts stepping down: demote-timeout + margin.
func (c Config) StepDownLead() time.Duration { return c.DemoteTimeout + c.Margin() }

// MaxDemoteTimeout is the longest demote timeout the lease guard allows
// with this TTL: ttl/2 - max(500ms, ttl/10), so that ttl - demote-timeout -
// margin >= 2 x renew interval. Not positive for TTLs below the minimum.
func MaxDemoteTimeout(ttl time.Duration) time.Duration {
	c := Config{TTL: ttl}
	return c.TTL - c.Margin() - 2*c.RenewInterval()
}

// DemoteTimeoutFor is the default demote timeout when only the TTL is
// given: min(5s, MaxDemoteTimeout(ttl)). A short TTL alone (--ttl 8s) must
// not be refused because of a default the user never chose.
func DemoteTimeoutFor(ttl time.Duration) time.Duration {
	return min(defaultDemoteTimeout, MaxDemoteTimeout(ttl))
}

// TTLFor is the default TTL when only the demote timeout is given:
// max(15s, the shortest whole-second TTL the lease guard allows for it),
// which is 2.5 x demote-timeout rounded up to whole seconds.
func TTLFor(demoteTimeout time.Duration) time.Duration {
	if demoteTimeout <= MaxDemoteTimeout(defaultTTL) || demoteTimeout > math.MaxInt64/4 {
		return defaultTTL // fits, or absurd: Validate names the flag
	}
	ttl := demoteTimeout*2 + demoteTimeout/2
	ttl = (ttl + time.Second - 1) / time.Second * time.Second
	for MaxDemoteTimeout(ttl) < demoteTimeout { // rounding of demoteTimeout/2
		ttl += time.Second
	}
	return ttl
}

// The range of --priority: any 32-bit integer would do, but JSON readers
// in other languages keep these exact.
const (
	MinPriority = -1_000_000_000
	MaxPriority = 1_000_000_000
)

// ParseFailback parses a --failback value: "off" (0) or "after=DURATION"
// (a positive duration). Its error names no flag; the caller adds it.
func ParseFailback(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "off" {
		return 0, nil
	}
	rest, ok := strings.CutPrefix(v, "after=")
	if !ok {
		return 0, fmt.Errorf("want off or after=DURATION, got %q", v)
	}
	d, err := time.ParseDuration(rest)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("want off or after=DURATION with a positive duration, got %q", v)
	}
	return d, nil
}

// FailbackText is the --failback value for d, as ParseFailback reads it.
func FailbackText(d time.Duration) string {
	if d <= 0 {
		return "off"
	}
	return "after=" + d.String()
}

var electionName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// Validate checks every field and the relations between them. Its errors
// name the flag the user typed.
func (c Config) Validate() error {
	if len(c.Endpoints) == 0 {
		return errors.New("--endpoints: at least one etcd endpoint is required")
	}
	for _, ep := range c.Endpoints {
		if err := validateEndpoint(ep); err != nil {
			return fmt.Errorf("--endpoints: %q: %v", ep, err)
		}
	}
	if c.Election == "" {
		return errors.New("--election: required")
	}
	if !electionName.MatchString(c.Election) {
		return fmt.Errorf("--election: %q must match [A-Za-z0-9._-]{1,128}", c.Election)
	}
	if c.ID == "" {
		return errors.New("--id: must not be empty")
	}
	if strings.ContainsAny(c.ID, "/\x00\n") || len(c.ID) > 253 {
		return fmt.Errorf("--id: %q must be at most 253 characters without '/' or newlines", c.ID)
	}
	if len(c.Prefix) < 2 || !strings.HasPrefix(c.Prefix, "/") || strings.HasSuffix(c.Prefix, "/") {
		return fmt.Errorf("--prefix: %q must start with '/', not end with '/', and name something", c.Prefix)
	}
	if c.TTL < minTTL {
		return fmt.Errorf("--ttl: %s is below the minimum of %s", c.TTL, minTTL)
	}
	if c.TTL%time.Second != 0 {
		return fmt.Errorf("--ttl: %s must be whole seconds", c.TTL)
	}
	if c.PromoteTimeout <= 0 {
		return fmt.Errorf("--promote-timeout: %s must be positive", c.PromoteTimeout)
	}
	if c.DemoteTimeout <= 0 {
		return fmt.Errorf("--demote-timeout: %s must be positive", c.DemoteTimeout)
	}
	// The lease guard: at least two renewals may fail before stepping down.
	if budget := c.TTL - c.StepDownLead(); budget < 2*c.RenewInterval() {
		return fmt.Errorf("--ttl %s is too short for --demote-timeout %s: need ttl - demote-timeout - margin (%s) >= 2 x renew interval (%s); raise --ttl or lower --demote-timeout",
			c.TTL, c.DemoteTimeout, c.Margin(), 2*c.RenewInterval())
	}
	if c.Priority < MinPriority || c.Priority > MaxPriority {
		return fmt.Errorf("--priority: %d must be between %d and %d", c.Priority, MinPriority, MaxPriority)
	}
	if c.FailbackAfter < 0 {
		return fmt.Errorf("--failback: after=%s must be positive", c.FailbackAfter)
	}
	if c.Listen != "off" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			return fmt.Errorf("--listen: %q: want host:port or off", c.Listen)
		}
	}
	if _, err := c.TLSConfig(); err != nil {
		return err
	}
	if err := c.Health.Validate(); err != nil {
		return err
	}
	if c.Password != "" && c.User == "" {
		return errors.New("--user: required when a password is given")
	}
	return nil
}

func validateEndpoint(ep string) error {
	u, err := url.Parse(ep)
	if err != nil {
		return errors.New("want http://host:port or https://host:port")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("want http://host:port or https://host:port")
	}
	if u.Host == "" || u.Port() == "" {
		return errors.New("want http://host:port or https://host:port")
	}
	if u.Path != "" && u.Path != "/" {
		return errors.New("must not have a path")
	}
	return nil
}

// TLSConfig builds the client TLS settings from CACert, Cert and Key. It
// returns nil when none is set and no endpoint uses https.
func (c Config) TLSConfig() (*tls.Config, error) {
	https := false
	for _, ep := range c.Endpoints {
		https = https || strings.HasPrefix(ep, "https://")
	}
	if c.CACert == "" && c.Cert == "" && c.Key == "" && !https {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CACert != "" {
		pem, err := os.ReadFile(c.CACert)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cacert: %s holds no PEM certificate", c.CACert)
		}
		cfg.RootCAs = pool
	}
	if (c.Cert == "") != (c.Key == "") {
		return nil, errors.New("--cert and --key: give both or neither")
	}
	if c.Cert != "" {
		if _, err := os.Stat(c.Cert); err != nil {
			return nil, fmt.Errorf("--cert: %v", err)
		}
		if _, err := os.Stat(c.Key); err != nil {
			return nil, fmt.Errorf("--key: %v", err)
		}
		pair, err := tls.LoadX509KeyPair(c.Cert, c.Key)
		if err != nil {
			return nil, fmt.Errorf("--cert/--key: %v", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// OpenStore connects to etcd as configured (endpoints, TLS, user) and binds
// the election's keys: the one way both `leaderd run` and the one-shot
// commands reach etcd. dialTimeout 0 means election.NewClient's default.
func (c Config) OpenStore(dialTimeout time.Duration, opts ...election.ReadOption) (*election.Store, error) {
	tlsCfg, err := c.TLSConfig()
	if err != nil {
		return nil, err
	}
	client, err := election.NewClient(election.ClientConfig{
		Endpoints:   c.Endpoints,
		TLS:         tlsCfg,
		User:        c.User,
		Password:    c.Password,
		DialTimeout: dialTimeout,
	})
	if err != nil {
		return nil, err
	}
	return election.NewStore(client, c.Prefix, c.Election, opts...), nil
}
