// Package vaultharness runs real HashiCorp Vault servers on loopback for the
// end-to-end, reliability, benchmark and portal tests: it starts and stops them,
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
	Bin  string // the vault binary
	Addr string // http://127.0.0.1:<port>
	Port int
	// ClusterPort is the port of the cluster listener (raft and request
	// forwarding); 0 when the harness did not choose it.
	ClusterPort int
	RootToken   string
	Dir         string // holds the plugin directory, logs and audit log
	LogPath     string
	CACert      string // the CA that signed an https server's certificate (StartDevTLS)

	cmd      *exec.Cmd
	done     chan error
	log      *os.File
	pickPort func() (int, error) // FreePort when nil

	clientOnce sync.Once
	base       *api.Client
	baseErr    error
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago;
// another process may take it before it is used. Servers of this package
// are started on such ports with startOnFreePorts, which retries.
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
	sha, err = CopyPlugin(pluginBin, filepath.Join(pluginDir, PluginName))
	return pluginDir, sha, err
}

// CopyPlugin copies a plugin binary to dst, executable, and returns its
// SHA-256, which registering it in Vault's catalogue takes.
func CopyPlugin(src, dst string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(out, h), in); err != nil {
		out.Close()
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), out.Close()
}

// DevOptions tune a dev server.
type DevOptions struct {
	// LogLevel is Vault's log level, which its plugins follow too
	// (default "info"). Leak checks run at "trace", where the most is logged.
	LogLevel string
	// PickPort picks each port to try (default FreePort); a test of the
	// retry hands out a taken one.
	PickPort func() (int, error)
}

// StartDev starts `vault server -dev` with in-memory storage, root token
// "root" and dir/plugins as the plugin directory, and waits until it serves.
func StartDev(ctx context.Context, vaultBin, dir string) (*Server, error) {
	return StartDevWithOptions(ctx, vaultBin, dir, DevOptions{})
}

// StartDevWithOptions is StartDev with options.
func StartDevWithOptions(ctx context.Context, vaultBin, dir string, opts DevOptions) (*Server, error) {
	if opts.LogLevel == "" {
		opts.LogLevel = "info"
	}
	// sys/raw lets tests compare the engine's storage before and after a request.
	extra := filepath.Join(dir, "dev-extra.hcl")
	if err := os.WriteFile(extra, []byte("raw_storage_endpoint = true\n"), 0o644); err != nil {
		return nil, err
	}
	s := &Server{
		Bin:       vaultBin,
		RootToken: "root",
		Dir:       dir,
		LogPath:   filepath.Join(dir, "server.log"),
		pickPort:  opts.PickPort,
	}
	err := s.startOnFreePorts(func(port, _ int) ([]string, error) {
		return []string{"server", "-dev", "-dev-root-token-id=root",
			fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", port),
			"-dev-plugin-dir=" + filepath.Join(dir, "plugins"),
			"-config=" + extra,
			"-log-level=" + opts.LogLevel}, nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.WaitHealthy(ctx, 60*time.Second); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// maxPortAttempts bounds how often a server is started again on new ports
// because another process bound a picked port first.
const maxPortAttempts = 5

// errAddressInUse is Vault's complaint when its listener's port is taken.
const errAddressInUse = "address already in use"

// startOnFreePorts starts `vault server` with the arguments args returns for
// an API port and a cluster port, and waits until the process has bound
// them. Vault takes addresses, not listeners, so a port is picked free and
// may be taken by another process before Vault binds it: when Vault exits
// saying so, it is started again on new ports, at most maxPortAttempts times.
// (The cluster port is bound only at unseal; a clash there is not retried.)
func (s *Server) startOnFreePorts(args func(port, clusterPort int) ([]string, error)) error {
	pick := s.pickPort
	if pick == nil {
		pick = FreePort
	}
	for attempt := 1; ; attempt++ {
		port, err := pick()
		if err != nil {
			return err
		}
		clusterPort, err := pick()
		if err != nil {
			return err
		}
		s.Port, s.ClusterPort = port, clusterPort
		s.Addr = fmt.Sprintf("http://127.0.0.1:%d", port)
		argv, err := args(port, clusterPort)
		if err != nil {
			return err
		}
		logStart := fileSize(s.LogPath)
		if err := s.start(argv); err != nil {
			return err
		}
		err = s.waitStarted(logStart, 60*time.Second)
		if err == nil {
			return nil
		}
		s.Stop()
		if attempt >= maxPortAttempts || !strings.Contains(logSince(s.LogPath, logStart), errAddressInUse) {
			return err
		}
	}
}

// serverStarted is what Vault prints once its listeners are bound.
const serverStarted = "Vault server started!"

// waitStarted waits until the server process, started when its log held
// logStart bytes, says it started; it fails when the process exits first.
func (s *Server) waitStarted(logStart int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if strings.Contains(logSince(s.LogPath, logStart), serverStarted) {
			return nil
		}
		if !s.Running() {
			return fmt.Errorf("vault exited while starting; see %s", s.LogPath)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vault at %s did not start within %s; see %s", s.Addr, timeout, s.LogPath)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func fileSize(path string) int64 {
	info, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return info.Size()
}

// logSince returns what was written to the log at path after offset.
func logSince(path string, offset int64) string {
	data, err := os.ReadFile(path)
	if err != nil || int64(len(data)) < offset {
		return ""
	}
	return string(data[offset:])
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

// PID is the server process's id (0 when it is not running).
func (s *Server) PID() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
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

// RegisterPlugin registers the plugin in the catalogue with its SHA-256 and version, and
// env ("NAME=value") for its process.
func (s *Server) RegisterPlugin(ctx context.Context, sha, version string, env ...string) error {
	return s.Root().Sys().RegisterPluginWithContext(ctx, &api.RegisterPluginInput{
		Name:    PluginName,
		Type:    api.PluginTypeSecrets,
		Command: PluginName,
		SHA256:  sha,
		Version: version,
		Env:     env,
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
