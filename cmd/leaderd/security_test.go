package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/leaderd/leaderd/internal/etcdtest"
)

// TestRunTLSFiles covers what TestRunConfigBadInput does not: TLS files
// that exist but do not make a usable key pair exit 2 naming the flags,
// and a good set passes parsing.
func TestRunTLSFiles(t *testing.T) {
	certs, err := etcdtest.NewCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not PEM\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"run", "--election", "web", "--id", "r1", "--endpoints", "https://127.0.0.1:2379"}
	tests := []struct {
		name string
		args []string
		want []string // substrings of the one stderr line
	}{
		{"garbage cert and key", []string{"--cacert", certs.CA, "--cert", garbage, "--key", garbage}, []string{"--cert/--key"}},
		{"key of another certificate", []string{"--cacert", certs.CA, "--cert", certs.ClientCert, "--key", certs.OtherClientKey},
			[]string{"--cert/--key", "does not match"}},
		{"key given as cacert", []string{"--cacert", certs.ClientKey}, []string{"--cacert", "no PEM certificate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := invoke(nil, append(base, tt.args...)...)
			if r.code != exitBadInput {
				t.Fatalf("exit %d, want %d (stderr %q)", r.code, exitBadInput, r.stderr)
			}
			line := oneLineErr(t, r)
			for _, w := range tt.want {
				if !strings.Contains(line, w) {
					t.Errorf("stderr = %q, want it to contain %q", line, w)
				}
			}
		})
	}

	opts, err := parseRun([]string{"--election", "web", "--endpoints", "https://127.0.0.1:2379",
		"--cacert", certs.CA, "--cert", certs.ClientCert, "--key", certs.ClientKey}, envMap{}.lookup)
	if err != nil {
		t.Fatalf("valid TLS files: %v", err)
	}
	tlsCfg, err := opts.Config.TLSConfig()
	if err != nil || tlsCfg == nil || tlsCfg.RootCAs == nil || len(tlsCfg.Certificates) != 1 {
		t.Fatalf("TLS config from valid files: %+v, %v", tlsCfg, err)
	}
}
