package sidecar_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/leaderd/leaderd/sidecar"
)

// TestMain is the only one in package sidecar's tests: goleak checks that
// no test leaves a goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// valid is a config that passes Validate; each case mutates one thing.
func valid() sidecar.Config {
	c := sidecar.DefaultConfig()
	c.Election = "web"
	c.ID = "replica-1" // the hostname may be empty in a sandbox
	return c
}

func TestConfigValidate(t *testing.T) {
	tls := writeTLSFiles(t)

	tests := []struct {
		name   string
		mutate func(*sidecar.Config)
		want   []string // substrings of the error; nil means valid
	}{
		{"valid", func(*sidecar.Config) {}, nil},
		{"several endpoints", func(c *sidecar.Config) {
			c.Endpoints = []string{"http://10.0.0.1:2379", "http://10.0.0.2:2379", "https://etcd-3:2379"}
		}, nil},
		{"no endpoints", func(c *sidecar.Config) { c.Endpoints = nil }, []string{"--endpoints"}},
		{"endpoint without scheme", func(c *sidecar.Config) { c.Endpoints = []string{"127.0.0.1:2379"} }, []string{"--endpoints", "127.0.0.1:2379"}},
		{"endpoint without port", func(c *sidecar.Config) { c.Endpoints = []string{"http://etcd"} }, []string{"--endpoints"}},
		{"endpoint with path", func(c *sidecar.Config) { c.Endpoints = []string{"http://etcd:2379/v3"} }, []string{"--endpoints"}},
		{"endpoint with unix scheme", func(c *sidecar.Config) { c.Endpoints = []string{"unix:///run/etcd.sock"} }, []string{"--endpoints"}},
		{"one bad endpoint among good", func(c *sidecar.Config) {
			c.Endpoints = []string{"http://a:2379", "b:2379"}
		}, []string{"--endpoints", "b:2379"}},

		{"missing election", func(c *sidecar.Config) { c.Election = "" }, []string{"--election", "required"}},
		{"election with slash", func(c *sidecar.Config) { c.Election = "a/b" }, []string{"--election"}},
		{"election with space", func(c *sidecar.Config) { c.Election = "a b" }, []string{"--election"}},
		{"election of 128 characters", func(c *sidecar.Config) { c.Election = strings.Repeat("e", 128) }, nil},
		{"election of 129 characters", func(c *sidecar.Config) { c.Election = strings.Repeat("e", 129) }, []string{"--election"}},
		{"election with dot dash underscore", func(c *sidecar.Config) { c.Election = "db-1.primary_x" }, nil},

		{"empty id", func(c *sidecar.Config) { c.ID = "" }, []string{"--id"}},
		{"id with slash", func(c *sidecar.Config) { c.ID = "a/b" }, []string{"--id"}},
		{"id with newline", func(c *sidecar.Config) { c.ID = "a\nb" }, []string{"--id"}},

		{"prefix without leading slash", func(c *sidecar.Config) { c.Prefix = "leaderd" }, []string{"--prefix"}},
		{"prefix with trailing slash", func(c *sidecar.Config) { c.Prefix = "/leaderd/" }, []string{"--prefix"}},
		{"empty prefix", func(c *sidecar.Config) { c.Prefix = "" }, []string{"--prefix"}},
		{"root prefix", func(c *sidecar.Config) { c.Prefix = "/" }, []string{"--prefix"}},
		{"nested prefix", func(c *sidecar.Config) { c.Prefix = "/apps/leaderd" }, nil},

		{"ttl zero", func(c *sidecar.Config) { c.TTL = 0 }, []string{"--ttl"}},
		{"ttl below 2s", func(c *sidecar.Config) { c.TTL = time.Second }, []string{"--ttl", "2s"}},
		{"ttl not whole seconds", func(c *sidecar.Config) { c.TTL = 15500 * time.Millisecond }, []string{"--ttl", "whole seconds"}},
		{"ttl 2s with a short demote", func(c *sidecar.Config) {
			// 2 - 0.1 - 0.5 = 1.4 >= 2 x 0.5
			c.TTL, c.DemoteTimeout = 2*time.Second, 100*time.Millisecond
		}, nil},
		{"ttl too short for demote-timeout", func(c *sidecar.Config) {
			// 10 - 5 - 1 = 4 < 2 x 2.5
			c.TTL, c.DemoteTimeout = 10*time.Second, 5*time.Second
		}, []string{"--ttl", "--demote-timeout"}},
		{"ttl 2s with default demote-timeout", func(c *sidecar.Config) { c.TTL = 2 * time.Second }, []string{"--ttl", "--demote-timeout"}},
		{"design example ttl 15s demote 5s", func(c *sidecar.Config) {
			c.TTL, c.DemoteTimeout = 15*time.Second, 5*time.Second
		}, nil},

		{"promote-timeout zero", func(c *sidecar.Config) { c.PromoteTimeout = 0 }, []string{"--promote-timeout"}},
		{"demote-timeout zero", func(c *sidecar.Config) { c.DemoteTimeout = 0 }, []string{"--demote-timeout"}},
		{"demote-timeout negative", func(c *sidecar.Config) { c.DemoteTimeout = -time.Second }, []string{"--demote-timeout"}},

		{"listen off", func(c *sidecar.Config) { c.Listen = "off" }, nil},
		{"listen all interfaces", func(c *sidecar.Config) { c.Listen = ":8008" }, nil},
		{"listen without port", func(c *sidecar.Config) { c.Listen = "8008" }, []string{"--listen"}},

		{"password without user", func(c *sidecar.Config) { c.Password = "secret" }, []string{"--user"}},
		{"user and password", func(c *sidecar.Config) { c.User, c.Password = "root", "secret" }, nil},

		{"https endpoint, system roots", func(c *sidecar.Config) { c.Endpoints = []string{"https://etcd:2379"} }, nil},
		{"valid cacert cert key", func(c *sidecar.Config) {
			c.CACert, c.Cert, c.Key = tls.ca, tls.cert, tls.key
		}, nil},
		{"cacert is garbage", func(c *sidecar.Config) { c.CACert = tls.garbage }, []string{"--cacert", "no PEM"}},
		{"cacert missing", func(c *sidecar.Config) { c.CACert = tls.missing }, []string{"--cacert"}},
		{"cert file missing", func(c *sidecar.Config) { c.Cert, c.Key = tls.missing, tls.key }, []string{"--cert"}},
		{"key file missing", func(c *sidecar.Config) { c.Cert, c.Key = tls.cert, tls.missing }, []string{"--key"}},
		{"cert without key", func(c *sidecar.Config) { c.Cert = tls.cert }, []string{"--cert", "--key"}},
		{"key without cert", func(c *sidecar.Config) { c.Key = tls.key }, []string{"--cert", "--key"}},
		{"cert and key are garbage", func(c *sidecar.Config) { c.Cert, c.Key = tls.garbage, tls.garbage }, []string{"--cert"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mutate(&c)
			err := c.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error naming %v", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("Validate() = %q, want one line", err)
			}
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	c := sidecar.DefaultConfig()
	if c.Election != "" {
		t.Errorf("DefaultConfig().Election = %q, want empty (the user must name it)", c.Election)
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--election") {
		t.Errorf("DefaultConfig().Validate() = %v, want an error naming --election", err)
	}
	c.Election = "web"
	if c.ID == "" {
		c.ID = "replica-1" // no hostname in this sandbox; the rest still counts
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("DefaultConfig() with an election: Validate() = %v", err)
	}

	// The documented defaults (README.md, "Flags").
	if got, want := strings.Join(c.Endpoints, ","), "http://127.0.0.1:2379"; got != want {
		t.Errorf("Endpoints = %q, want %q", got, want)
	}
	for _, d := range []struct {
		name      string
		got, want any
	}{
		{"Prefix", c.Prefix, "/leaderd"},
		{"TTL", c.TTL, 15 * time.Second},
		{"PromoteTimeout", c.PromoteTimeout, 60 * time.Second},
		{"DemoteTimeout", c.DemoteTimeout, 5 * time.Second},
		{"Listen", c.Listen, "127.0.0.1:8008"},
		// The worked example: renew every TTL/4, margin max(500ms, TTL/10).
		{"RenewInterval", c.RenewInterval(), 3750 * time.Millisecond},
		{"Margin", c.Margin(), 1500 * time.Millisecond},
		{"StepDownLead", c.StepDownLead(), 6500 * time.Millisecond},
	} {
		if d.got != d.want {
			t.Errorf("%s = %v, want %v", d.name, d.got, d.want)
		}
	}

	// The lease rule: at least two renewals may fail before stepping down.
	if budget := c.TTL - c.StepDownLead(); budget < 2*c.RenewInterval() {
		t.Errorf("defaults break the lease rule: ttl - demote-timeout - margin = %s < 2 x renew interval = %s",
			budget, 2*c.RenewInterval())
	}
}

// TestValidateLeaseRule checks Validate against the rule written out, over
// a grid of TTLs and demote timeouts.
func TestValidateLeaseRule(t *testing.T) {
	for ttl := 2 * time.Second; ttl <= 60*time.Second; ttl += time.Second {
		for demote := 250 * time.Millisecond; demote <= 30*time.Second; demote += 250 * time.Millisecond {
			c := valid()
			c.TTL, c.DemoteTimeout = ttl, demote
			margin := max(500*time.Millisecond, ttl/10)
			wantOK := ttl-demote-margin >= 2*(ttl/4)
			err := c.Validate()
			if gotOK := err == nil; gotOK != wantOK {
				t.Fatalf("ttl %s demote-timeout %s: Validate() = %v, want valid = %v", ttl, demote, err, wantOK)
			}
			if err != nil && (!strings.Contains(err.Error(), "--ttl") || !strings.Contains(err.Error(), "--demote-timeout")) {
				t.Fatalf("ttl %s demote-timeout %s: Validate() = %q, want it to name --ttl and --demote-timeout", ttl, demote, err)
			}
		}
	}
}

// tlsFiles are real files for the TLS cases.
type tlsFiles struct {
	ca, cert, key string // a self-signed CA and a client pair it signed
	garbage       string // a file that is not PEM
	missing       string // a path that does not exist
}

func writeTLSFiles(t *testing.T) tlsFiles {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "leaderd test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	clientKey := newKey(t)
	clientTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "leaderd"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	clientDER, err := x509.CreateCertificate(rand.Reader, clientTmpl, caTmpl, &clientKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(clientKey)
	if err != nil {
		t.Fatal(err)
	}
	return tlsFiles{
		ca:      write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})),
		cert:    write("client.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: clientDER})),
		key:     write("client-key.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})),
		garbage: write("garbage.pem", []byte("this is not a certificate\n")),
		missing: filepath.Join(dir, "does-not-exist.pem"),
	}
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
