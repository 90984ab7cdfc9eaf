package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// syncBuffer is a log destination for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// serving runs p.serve on a loopback listener until the test ends.
func serving(t *testing.T, args []string) (addr string, log *syncBuffer) {
	t.Helper()
	cfg, err := parseConfig(append([]string{"-vault-addr", "http://127.0.0.1:1"}, args...), envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	log = &syncBuffer{}
	p, err := newPortal(cfg, hclog.New(&hclog.LoggerOptions{Output: log, Level: hclog.Info}))
	if err != nil {
		t.Fatal(err)
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.serve(ctx, listener) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("serve did not stop")
		}
	})
	return listener.Addr().String(), log
}

func TestServeWithTLS(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM, pool := selfSignedCert(t)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	addr, log := serving(t, []string{"-listen", "0.0.0.0:8443", "-tls-cert", certFile, "-tls-key", keyFile})

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get("https://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// No Vault behind it: up, but not healthy.
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Strict-Transport-Security") == "" || resp.TLS == nil {
		t.Fatalf("status %d, HSTS %q", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"))
	}
	if plain, err := http.Get("http://" + addr + "/healthz"); err == nil && plain.StatusCode < 400 {
		t.Fatal("the TLS listener answered plain HTTP")
	}
	if strings.Contains(log.String(), "WARNING") {
		t.Errorf("a warning with TLS on: %s", log.String())
	}
}

func TestServeWarnsAboutPlainHTTPOutsideLoopback(t *testing.T) {
	// The configured address is what the warning is about; the test
	// itself serves on loopback.
	_, log := serving(t, []string{"-listen", "0.0.0.0:8210"})
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(log.String(), "WARNING: serving plain HTTP to browsers outside this machine") {
		if time.Now().After(deadline) {
			t.Fatalf("no warning: %s", log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func selfSignedCert(t *testing.T) (certPEM, keyPEM []byte, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "planqk-portal test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), pool
}
