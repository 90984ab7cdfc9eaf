package vaultharness

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// StartDevTLS starts `vault server -dev` like StartDev, but serving https
// with a certificate for 127.0.0.1 signed by a CA that Vault generates in
// dir/tls; CACert is that CA's PEM file (what VAULT_CACERT names). Clients
// that only speak https to their servers, such as mod_auth_openidc's token
// introspection, need it. Its storage is not readable through sys/raw.
func StartDevTLS(ctx context.Context, vaultBin, dir string) (*Server, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	certDir := filepath.Join(dir, "tls")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return nil, err
	}
	s := &Server{
		Bin:       vaultBin,
		Port:      port,
		Addr:      fmt.Sprintf("https://127.0.0.1:%d", port),
		RootToken: "root",
		Dir:       dir,
		LogPath:   filepath.Join(dir, "server.log"),
		CACert:    filepath.Join(certDir, "vault-ca.pem"),
	}
	args := []string{"server", "-dev", "-dev-root-token-id=root",
		fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", port),
		"-dev-tls", "-dev-tls-cert-dir=" + certDir,
		"-dev-plugin-dir=" + filepath.Join(dir, "plugins"),
		"-log-level=info"}
	if err := s.start(args); err != nil {
		return nil, err
	}
	// The client trusts the CA, so it can only be built once Vault wrote it.
	if err := s.waitForCertificate(s.CACert, 60*time.Second); err != nil {
		s.Stop()
		return nil, err
	}
	if err := s.WaitHealthy(ctx, 60*time.Second); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// waitForCertificate waits until the server has written a whole PEM
// certificate to path.
func (s *Server) waitForCertificate(path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if data, err := os.ReadFile(path); err == nil {
			if block, _ := pem.Decode(data); block != nil {
				if _, err := x509.ParseCertificate(block.Bytes); err == nil {
					return nil
				}
			}
		}
		if !s.Running() {
			return fmt.Errorf("vault exited before writing %s; see %s", path, s.LogPath)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vault did not write %s within %s; see %s", path, timeout, s.LogPath)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
