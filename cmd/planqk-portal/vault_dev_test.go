//go:build portal

package main

import (
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
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"
)

// pluginName is the name the engine is registered and mounted under.
const pluginName = "vault-plugin-secrets-planqk"

// devVault is a `vault server -dev` on a free loopback port with the
// engine registered and mounted, for the portal's tests. (The project's
// vaultharness is internal to scripts/; this is the little of it the
// portal needs.)
type devVault struct {
	addr    string
	dir     string
	logPath string
	cmd     *exec.Cmd
	done    chan error
	base    *api.Client
}

func startDevVault(ctx context.Context, vaultBin, pluginBin, version, dir string) (*devVault, error) {
	pluginDir := filepath.Join(dir, "plugins")
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		return nil, err
	}
	sha, err := copyPlugin(pluginBin, filepath.Join(pluginDir, pluginName))
	if err != nil {
		return nil, err
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := listener.Addr().(*net.TCPAddr).Port
	listener.Close()

	v := &devVault{addr: fmt.Sprintf("http://127.0.0.1:%d", port), dir: dir, logPath: filepath.Join(dir, "vault.log")}
	logFile, err := os.Create(v.logPath)
	if err != nil {
		return nil, err
	}
	v.cmd = exec.Command(vaultBin, "server", "-dev", "-dev-root-token-id=root",
		fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", port), "-dev-plugin-dir="+pluginDir, "-log-level=info")
	v.cmd.Stdout, v.cmd.Stderr = logFile, logFile
	v.cmd.Env = append(os.Environ(), "VAULT_ADDR=", "VAULT_TOKEN=", "SKIP_SETCAP=1")
	// Its own process group, so that stopping it stops its plugin too.
	v.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := v.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting vault: %w", err)
	}
	v.done = make(chan error, 1)
	go func() { v.done <- v.cmd.Wait(); logFile.Close() }()

	config := api.DefaultConfig()
	config.Address = v.addr
	config.MaxRetries = 0
	if v.base, err = api.NewClient(config); err != nil {
		v.stop()
		return nil, err
	}
	v.base.ClearToken()
	if err := v.waitHealthy(ctx, 60*time.Second); err != nil {
		v.stop()
		return nil, err
	}
	root := v.client("root")
	if err := root.Sys().RegisterPluginWithContext(ctx, &api.RegisterPluginInput{
		Name: pluginName, Type: api.PluginTypeSecrets, Command: pluginName, SHA256: sha, Version: version,
	}); err != nil {
		v.stop()
		return nil, fmt.Errorf("registering the plugin: %w", err)
	}
	if err := root.Sys().MountWithContext(ctx, "planqk", &api.MountInput{
		Type: pluginName, Config: api.MountConfigInput{PluginVersion: version},
	}); err != nil {
		v.stop()
		return nil, fmt.Errorf("mounting the plugin: %w", err)
	}
	return v, nil
}

func copyPlugin(src, dst string) (string, error) {
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

func (v *devVault) waitHealthy(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		health, err := v.base.Sys().HealthWithContext(ctx)
		if err == nil && health.Initialized && !health.Sealed {
			return nil
		}
		select {
		case exit := <-v.done:
			v.done <- exit
			return fmt.Errorf("vault exited while starting (%v); see %s", exit, v.logPath)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vault not healthy after %s (%v); see %s", timeout, err, v.logPath)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// client returns an API client with token ("" for none).
func (v *devVault) client(token string) *api.Client {
	c, err := v.base.Clone()
	if err != nil {
		panic(err)
	}
	c.SetToken(token)
	return c
}

// login signs in through userpass and returns the Vault token.
func (v *devVault) login(ctx context.Context, user, password string) (string, error) {
	secret, err := v.client("").Logical().WriteWithContext(ctx, "auth/userpass/login/"+user, map[string]interface{}{"password": password})
	if err != nil {
		return "", err
	}
	if secret == nil || secret.Auth == nil {
		return "", errors.New("login returned no token")
	}
	return secret.Auth.ClientToken, nil
}

// stop ends the server and its plugin: SIGTERM, then SIGKILL after 10 s.
func (v *devVault) stop() {
	if v.cmd == nil || v.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-v.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case err := <-v.done:
		v.done <- err
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-v.cmd.Process.Pid, syscall.SIGKILL)
		err := <-v.done
		v.done <- err
	}
}
