package etcdtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// certValidity is how long generated certificates are valid. Long enough
// for any test or demo run, short enough that a leaked file is useless.
// NotBefore is backdated by certBackdate for clock skew between processes.
const (
	certValidity = 24 * time.Hour
	certBackdate = time.Hour
)

// Certs are throwaway PEM files for TLS tests: a CA, a server certificate
// for 127.0.0.1 and localhost, and a client certificate, all signed by CA;
// and a second, unrelated CA (OtherCA) with a client certificate of its own,
// which a server trusting only CA must reject.
type Certs struct {
	Dir string

	CA         string // CA certificate
	ServerCert string // server certificate (127.0.0.1, ::1, localhost), signed by CA
	ServerKey  string
	ClientCert string // client certificate (CN=ClientCN), signed by CA
	ClientKey  string

	OtherCA         string // an unrelated CA certificate
	OtherClientCert string // client certificate (CN=ClientCN), signed by OtherCA
	OtherClientKey  string
}

// ClientCN is the common name of both generated client certificates.
const ClientCN = "leaderd-test-client"

// NewCerts generates the files of Certs into dir, which must exist: ECDSA
// P-256 keys (mode 0600), certificates valid for a day.
func NewCerts(dir string) (*Certs, error) {
	c := &Certs{
		Dir:             dir,
		CA:              filepath.Join(dir, "ca.pem"),
		ServerCert:      filepath.Join(dir, "server.pem"),
		ServerKey:       filepath.Join(dir, "server-key.pem"),
		ClientCert:      filepath.Join(dir, "client.pem"),
		ClientKey:       filepath.Join(dir, "client-key.pem"),
		OtherCA:         filepath.Join(dir, "other-ca.pem"),
		OtherClientCert: filepath.Join(dir, "other-client.pem"),
		OtherClientKey:  filepath.Join(dir, "other-client-key.pem"),
	}
	ca, err := newCA("etcdtest CA", c.CA)
	if err != nil {
		return nil, err
	}
	other, err := newCA("etcdtest other CA", c.OtherCA)
	if err != nil {
		return nil, err
	}
	server := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "etcdtest server"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if err := ca.issue(server, c.ServerCert, c.ServerKey); err != nil {
		return nil, err
	}
	client := func() *x509.Certificate {
		return &x509.Certificate{
			Subject:     pkix.Name{CommonName: ClientCN},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
	}
	if err := ca.issue(client(), c.ClientCert, c.ClientKey); err != nil {
		return nil, err
	}
	if err := other.issue(client(), c.OtherClientCert, c.OtherClientKey); err != nil {
		return nil, err
	}
	return c, nil
}

// ServerTLS is the server side of c: etcd serves c.ServerCert and requires
// a client certificate signed by c.CA.
func (c *Certs) ServerTLS() *TLS {
	return &TLS{CertFile: c.ServerCert, KeyFile: c.ServerKey, ClientCAFile: c.CA}
}

// ClientTLS is a client configuration that trusts c.CA and presents
// c.ClientCert, for clients of a server started with c.ServerTLS().
func (c *Certs) ClientTLS() (*tls.Config, error) {
	pemCA, err := os.ReadFile(c.CA)
	if err != nil {
		return nil, fmt.Errorf("etcdtest: read CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemCA) {
		return nil, errors.New("etcdtest: CA file holds no certificate")
	}
	pair, err := tls.LoadX509KeyPair(c.ClientCert, c.ClientKey)
	if err != nil {
		return nil, fmt.Errorf("etcdtest: load client certificate: %w", err)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

// authority is a CA that can sign certificates.
type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(name, certFile string) (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("etcdtest: CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	setValidity(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("etcdtest: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("etcdtest: CA certificate: %w", err)
	}
	if err := writePEM(certFile, "CERTIFICATE", der, 0o644); err != nil {
		return nil, err
	}
	return &authority{cert: cert, key: key}, nil
}

// issue signs tmpl with a new key and writes the certificate and key.
func (a *authority) issue(tmpl *x509.Certificate, certFile, keyFile string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("etcdtest: key for %s: %w", tmpl.Subject.CommonName, err)
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	setValidity(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		return fmt.Errorf("etcdtest: certificate for %s: %w", tmpl.Subject.CommonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("etcdtest: key for %s: %w", tmpl.Subject.CommonName, err)
	}
	if err := writePEM(certFile, "CERTIFICATE", der, 0o644); err != nil {
		return err
	}
	return writePEM(keyFile, "PRIVATE KEY", keyDER, 0o600)
}

func setValidity(tmpl *x509.Certificate) {
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127)) // never fails with crypto/rand
	tmpl.SerialNumber = serial
	now := time.Now()
	tmpl.NotBefore = now.Add(-certBackdate)
	tmpl.NotAfter = now.Add(certValidity)
}

func writePEM(file, blockType string, der []byte, mode os.FileMode) error {
	data := pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
	if err := os.WriteFile(file, data, mode); err != nil {
		return fmt.Errorf("etcdtest: write %s: %w", file, err)
	}
	return nil
}
