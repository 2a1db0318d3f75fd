package e2e

// Certificates made at test time for the TLS tests: a CA, a server
// certificate for 127.0.0.1 and localhost signed by it, a client
// certificate signed by it, and a client certificate signed by an unrelated
// CA (which a server verifying against the first CA must refuse).

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// testCerts holds PEM files in a test's temporary directory and the parsed
// material for Go clients.
type testCerts struct {
	CAFile, ServerCertFile, ServerKeyFile string
	ClientCertFile, ClientKeyFile         string

	Pool        *x509.CertPool  // trusts CA
	Client      tls.Certificate // signed by CA, CN "client-cn"
	RogueClient tls.Certificate // signed by an unrelated CA, CN "rogue"
}

// newTestCerts generates the certificates into t.TempDir().
func newTestCerts(t testing.TB) *testCerts {
	t.Helper()
	dir := t.TempDir()
	c := &testCerts{
		CAFile:         filepath.Join(dir, "ca.pem"),
		ServerCertFile: filepath.Join(dir, "server.pem"),
		ServerKeyFile:  filepath.Join(dir, "server.key"),
		ClientCertFile: filepath.Join(dir, "client.pem"),
		ClientKeyFile:  filepath.Join(dir, "client.key"),
		Pool:           x509.NewCertPool(),
	}

	caKey, caCert, caDER := makeCA(t, "nsq e2e test CA")
	c.Pool.AddCert(caCert)
	writePEM(t, c.CAFile, "CERTIFICATE", caDER)

	serverTmpl := leafTemplate("127.0.0.1", x509.ExtKeyUsageServerAuth)
	serverTmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	serverTmpl.DNSNames = []string{"localhost"}
	serverKey, serverDER := signLeaf(t, serverTmpl, caCert, caKey)
	writePEM(t, c.ServerCertFile, "CERTIFICATE", serverDER)
	writePEM(t, c.ServerKeyFile, "PRIVATE KEY", marshalKey(t, serverKey))

	clientKey, clientDER := signLeaf(t, leafTemplate("client-cn", x509.ExtKeyUsageClientAuth), caCert, caKey)
	writePEM(t, c.ClientCertFile, "CERTIFICATE", clientDER)
	writePEM(t, c.ClientKeyFile, "PRIVATE KEY", marshalKey(t, clientKey))
	c.Client = tls.Certificate{Certificate: [][]byte{clientDER}, PrivateKey: clientKey}

	rogueCAKey, rogueCA, _ := makeCA(t, "rogue CA")
	rogueKey, rogueDER := signLeaf(t, leafTemplate("rogue", x509.ExtKeyUsageClientAuth), rogueCA, rogueCAKey)
	c.RogueClient = tls.Certificate{Certificate: [][]byte{rogueDER}, PrivateKey: rogueKey}
	return c
}

// ServerArgs are the nsqd flags that enable TLS with the server certificate.
func (c *testCerts) ServerArgs() []string {
	return []string{"--tls-cert=" + c.ServerCertFile, "--tls-key=" + c.ServerKeyFile}
}

// ClientConfig returns a TLS client configuration trusting the CA, with the
// given client certificates (none, one or the rogue one).
func (c *testCerts) ClientConfig(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: c.Pool, Certificates: certs, ServerName: "127.0.0.1"}
}

// ForcingConfig returns a TLS client configuration trusting the CA that
// presents cert whatever CAs the server asks for (Go's client would
// otherwise send no certificate when cert's issuer is not among them).
func (c *testCerts) ForcingConfig(cert tls.Certificate) *tls.Config {
	cfg := c.ClientConfig()
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	return cfg
}

var serialNumber atomic.Int64

func nextSerial() *big.Int {
	return big.NewInt(time.Now().UnixNano() + serialNumber.Add(1))
}

func makeCA(t testing.TB, cn string) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("create CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse CA certificate: %v", err)
	}
	return key, cert, der
}

func leafTemplate(cn string, usage x509.ExtKeyUsage) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
}

func signLeaf(t testing.TB, tmpl, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key := newKey(t)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatalf("create certificate %q: %v", tmpl.Subject.CommonName, err)
	}
	return key, der
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	return key
}

func marshalKey(t testing.TB, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("marshal key: %v", err)
	}
	return der
}

func writePEM(t testing.TB, path, blockType string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
