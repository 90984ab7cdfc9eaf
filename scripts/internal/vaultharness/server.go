// Package vaultharness runs real HashiCorp Vault servers on loopback for the
// end-to-end, reliability and benchmark programs: it starts and stops them,
// registers and mounts the plugin, and drives the vault CLI.
package vaultharness

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"
)

// PluginName is the name the plugin is registered under.
const PluginName = "vault-plugin-secrets-planqk"

// Server is one Vault server process on 127.0.0.1.
type Server struct {
	Bin       string // the vault binary
	Addr      string // http://127.0.0.1:<port>
	Port      int
	RootToken string
	Dir       string // holds the plugin directory, logs and audit log
	LogPath   string
	CACert    string // the CA that signed an https server's certificate (StartDevTLS)

	cmd  *exec.Cmd
	done chan error
	log  *os.File

	clientOnce sync.Once
	base       *api.Client
	baseErr    error
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// InstallPlugin copies the plugin binary into dir/plugins and returns that
// directory and the binary's SHA-256.
func InstallPlugin(pluginBin, dir string) (pluginDir, sha string, err error) {
	pluginDir = filepath.Join(dir, "plugins")
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		return "", "", err
	}
	src, err := os.Open(pluginBin)
	if err != nil {
		return "", "", err
	}
	defer src.Close()
	dst, err := os.OpenFile(filepath.Join(pluginDir, PluginName), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return "", "", err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(dst, h), src); err != nil {
		dst.Close()
		return "", "", err
	}
	if err := dst.Close(); err != nil {
		return "", "", err
	}
	return pluginDir, hex.EncodeToString(h.Sum(nil)), nil
}

// StartDev starts `vault server -dev` with in-memory storage, root token
// "root" and dir/plugins as the plugin directory, and waits until it serves.
func StartDev(ctx context.Context, vaultBin, dir string) (*Server, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	s := &Server{
		Bin:       vaultBin,
		Port:      port,
		Addr:      fmt.Sprintf("http://127.0.0.1:%d", port),
		RootToken: "root",
		Dir:       dir,
		LogPath:   filepath.Join(dir, "server.log"),
	}
	// sys/raw lets tests compare the engine's storage before and after a request.
	extra := filepath.Join(dir, "dev-extra.hcl")
	if err := os.WriteFile(extra, []byte("raw_storage_endpoint = true\n"), 0o644); err != nil {
		return nil, err
	}
	args := []string{"server", "-dev", "-dev-root-token-id=root",
		fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", port),
		"-dev-plugin-dir=" + filepath.Join(dir, "plugins"),
		"-config=" + extra,
		"-log-level=info"}
	if err := s.start(args); err != nil {
		return nil, err
	}
	if err := s.WaitHealthy(ctx, 60*time.Second); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// Start runs `vault server` with args, logging to LogPath.
func (s *Server) start(args []string) error {
	if err := os.MkdirAll(filepath.Join(s.Dir, "plugins"), 0o755); err != nil {
		return err
	}
	logFile, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.Bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), "VAULT_ADDR=", "VAULT_TOKEN=", "SKIP_SETCAP=1")
	// Its own process group, so that stopping it also stops its plugins.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("starting vault: %w", err)
	}
	s.cmd, s.log = cmd, logFile
	s.done = make(chan error, 1)
	go func() { s.done <- cmd.Wait() }()
	return nil
}

// WaitHealthy waits until the server answers sys/health as unsealed.
func (s *Server) WaitHealthy(ctx context.Context, timeout time.Duration) error {
	client, err := s.Client("")
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		health, err := client.Sys().HealthWithContext(ctx)
		if err == nil && health.Initialized && !health.Sealed {
			return nil
		}
		select {
		case exitErr := <-s.done:
			s.done <- exitErr
			return fmt.Errorf("vault exited while starting (%v); see %s", exitErr, s.LogPath)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vault at %s not healthy after %s (last error: %v); see %s", s.Addr, timeout, err, s.LogPath)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Running reports whether the server process is still alive.
func (s *Server) Running() bool {
	select {
	case err := <-s.done:
		s.done <- err
		return false
	default:
		return s.cmd != nil
	}
}

// Stop ends the server and its plugins: SIGTERM, then SIGKILL after 10s.
func (s *Server) Stop() {
	s.signal(syscall.SIGTERM, 10*time.Second)
}

// Kill ends the server at once with SIGKILL, as a crash would.
func (s *Server) Kill() {
	s.signal(syscall.SIGKILL, 10*time.Second)
}

func (s *Server) signal(sig syscall.Signal, grace time.Duration) {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, sig)
	select {
	case err := <-s.done:
		s.done <- err
	case <-time.After(grace):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		err := <-s.done
		s.done <- err
	}
	if s.log != nil {
		s.log.Close()
		s.log = nil
	}
}

// Client returns an API client for the server with token (none when "").
// All clients of a server share one connection pool.
func (s *Server) Client(token string) (*api.Client, error) {
	s.clientOnce.Do(func() {
		config := api.DefaultConfig()
		config.Address = s.Addr
		config.MaxRetries = 0
		if s.CACert != "" {
			if err := config.ConfigureTLS(&api.TLSConfig{CACert: s.CACert}); err != nil {
				s.baseErr = err
				return
			}
		}
		s.base, s.baseErr = api.NewClient(config)
	})
	if s.baseErr != nil {
		return nil, s.baseErr
	}
	client, err := s.base.Clone()
	if err != nil {
		return nil, err
	}
	client.SetToken(token)
	return client, nil
}

// Root returns an API client with the root token.
func (s *Server) Root() *api.Client {
	client, err := s.Client(s.RootToken)
	if err != nil {
		// Only a malformed address makes NewClient fail, and Addr is ours.
		panic(err)
	}
	return client
}

// RegisterPlugin registers the plugin in the catalogue with its SHA-256 and version.
func (s *Server) RegisterPlugin(ctx context.Context, sha, version string) error {
	return s.Root().Sys().RegisterPluginWithContext(ctx, &api.RegisterPluginInput{
		Name:    PluginName,
		Type:    api.PluginTypeSecrets,
		Command: PluginName,
		SHA256:  sha,
		Version: version,
	})
}

// Mount enables the registered plugin version at path.
func (s *Server) Mount(ctx context.Context, path, version string) error {
	return s.Root().Sys().MountWithContext(ctx, path, &api.MountInput{
		Type: PluginName,
		Config: api.MountConfigInput{
			PluginVersion: version,
		},
	})
}

// CLI runs the vault CLI against the server with token and returns stdout;
// a failure's error holds stderr.
func (s *Server) CLI(ctx context.Context, token string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, s.Bin, args...)
	cmd.Env = append(os.Environ(), "VAULT_ADDR="+s.Addr, "VAULT_CACERT="+s.CACert, "VAULT_TOKEN="+token, "VAULT_FORMAT=", "HOME="+s.Dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("vault %s: %w: %s", strings.Join(redact(args), " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// redact keeps key=value arguments that may hold secrets out of error text.
func redact(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if k, _, ok := strings.Cut(a, "="); ok && !strings.HasPrefix(a, "-") {
			a = k + "=..."
		}
		out[i] = a
	}
	return out
}

// Login logs in through userpass and returns the client token.
func (s *Server) Login(ctx context.Context, authMount, user, password string) (string, error) {
	client, err := s.Client("")
	if err != nil {
		return "", err
	}
	secret, err := client.Logical().WriteWithContext(ctx, "auth/"+authMount+"/login/"+user, map[string]interface{}{"password": password})
	if err != nil {
		return "", err
	}
	if secret == nil || secret.Auth == nil {
		return "", errors.New("login returned no token")
	}
	return secret.Auth.ClientToken, nil
}

// StatusOf returns the HTTP status of an API call's error: 200 for none.
func StatusOf(err error) int {
	if err == nil {
		return 200
	}
	var respErr *api.ResponseError
	if errors.As(err, &respErr) {
		return respErr.StatusCode
	}
	return -1
}
