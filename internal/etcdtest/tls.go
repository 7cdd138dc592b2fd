package etcdtest

import (
	"go.etcd.io/etcd/server/v3/embed"
)

// TLS makes the server serve clients over https. Certs.ServerTLS returns
// one for generated certificates.
type TLS struct {
	// CertFile and KeyFile are the server's certificate and key (PEM).
	CertFile string
	KeyFile  string
	// ClientCAFile, when set, turns on client-certificate auth: etcd
	// rejects clients without a certificate signed by this CA.
	ClientCAFile string
}

// apply sets cfg's client TLS. Peer traffic stays plain: a single member
// has no peers to talk to.
func (t *TLS) apply(cfg *embed.Config) {
	cfg.ClientTLSInfo.CertFile = t.CertFile
	cfg.ClientTLSInfo.KeyFile = t.KeyFile
	if t.ClientCAFile != "" {
		cfg.ClientTLSInfo.TrustedCAFile = t.ClientCAFile
		cfg.ClientTLSInfo.ClientCertAuth = true
	}
}
