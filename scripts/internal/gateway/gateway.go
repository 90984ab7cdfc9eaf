// Package gateway runs Apache httpd with mod_auth_openidc on loopback as an
// OAuth 2.0 resource server in front of a protected backend: every request
// under /api/ must carry a token that the configured RFC 7662 introspection
// endpoint reports active, and the token's claims are forwarded to the
// backend as request headers. The end-to-end suite points it at the engine's
// introspect endpoint to prove that an off-the-shelf gateway accepts PATs.
//
// Each gateway has its own ServerRoot, configuration, pid file and logs in a
// directory of the caller's; the system's /etc/apache2 and its service are
// never touched.
package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"text/template"
	"time"
)

// Defaults of Debian's apache2 and libapache2-mod-auth-openidc packages
// (scripts/ensure-apache.sh installs them).
const (
	DefaultApacheBin  = "/usr/sbin/apache2"
	DefaultModulesDir = "/usr/lib/apache2/modules"
)

// ProtectedPrefix is the path under which the gateway requires a token;
// it proxies what follows to the backend.
const ProtectedPrefix = "/api/"

// Config describes one gateway.
type Config struct {
	ApacheBin  string // DefaultApacheBin when ""
	ModulesDir string // DefaultModulesDir when ""
	Dir        string // the gateway's ServerRoot; created when missing

	// IntrospectionURL is the RFC 7662 endpoint, https only: the module
	// refuses to introspect over plain http.
	IntrospectionURL string
	// CABundle is a PEM file with the CA that signed the endpoint's
	// certificate; the server certificate is always validated against it.
	CABundle string
	// VerifierToken authenticates the gateway at the endpoint as a bearer
	// token. It is written to a file only root can read, which the
	// configuration includes.
	VerifierToken string
	// Backend is the protected resource, e.g. http://127.0.0.1:8080.
	Backend string
}

// Gateway is one running Apache httpd.
type Gateway struct {
	URL           string // http://127.0.0.1:<port>
	Port          int
	Dir           string
	LogPath       string // Apache's error log
	AccessLogPath string

	cmd  *exec.Cmd
	done chan error
}

// startAttempts bounds the retries when another process takes the free
// port between choosing it and Apache binding it.
const startAttempts = 3

// Start writes the configuration and starts Apache in the foreground as a
// single process under the caller's control, and waits until it serves.
func Start(ctx context.Context, cfg Config) (*Gateway, error) {
	if err := cfg.complete(); err != nil {
		return nil, err
	}
	if err := prepareDir(cfg.Dir); err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < startAttempts; attempt++ {
		g, err := start(ctx, cfg)
		if err == nil {
			return g, nil
		}
		lastErr = err
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	return nil, lastErr
}

func (cfg *Config) complete() error {
	if cfg.ApacheBin == "" {
		cfg.ApacheBin = DefaultApacheBin
	}
	if cfg.ModulesDir == "" {
		cfg.ModulesDir = DefaultModulesDir
	}
	for _, required := range []struct{ name, value string }{
		{"Dir", cfg.Dir}, {"IntrospectionURL", cfg.IntrospectionURL}, {"CABundle", cfg.CABundle},
		{"VerifierToken", cfg.VerifierToken}, {"Backend", cfg.Backend},
	} {
		if required.value == "" {
			return fmt.Errorf("gateway: %s is required", required.name)
		}
	}
	if !strings.HasPrefix(cfg.IntrospectionURL, "https://") {
		return errors.New("gateway: mod_auth_openidc introspects over https only")
	}
	if strings.ContainsAny(cfg.VerifierToken, " \t\r\n\"\\") {
		return errors.New("gateway: the verifier token has characters Apache's configuration cannot hold")
	}
	if _, err := os.Stat(cfg.ApacheBin); err != nil {
		return fmt.Errorf("gateway: Apache httpd is missing (run scripts/ensure-apache.sh): %w", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.ModulesDir, "mod_auth_openidc.so")); err != nil {
		return fmt.Errorf("gateway: mod_auth_openidc is missing (run scripts/ensure-apache.sh): %w", err)
	}
	return nil
}

// prepareDir creates the ServerRoot. Apache reads its configuration and
// opens its logs as root before its worker switches to the unprivileged
// user; that worker reads only the CA bundle, at every introspection, so the
// directory and its parents must let others traverse them.
func prepareDir(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "run"), 0o700); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		return err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for parent := filepath.Dir(abs); ; parent = filepath.Dir(parent) {
		info, err := os.Stat(parent)
		if err != nil {
			return err
		}
		if info.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("gateway: Apache's worker cannot traverse %s (mode %v); use a directory such as os.MkdirTemp(\"\", ...) made mode 0711", parent, info.Mode().Perm())
		}
		if parent == filepath.Dir(parent) {
			return nil
		}
	}
}

// caFile is the copy of the CA bundle in the gateway's directory, readable
// by Apache's worker.
const caFile = "introspection-ca.pem"

var errPortTaken = errors.New("the port was taken")

func start(ctx context.Context, cfg Config) (*Gateway, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	g := &Gateway{
		Port:          port,
		URL:           fmt.Sprintf("http://127.0.0.1:%d", port),
		Dir:           cfg.Dir,
		LogPath:       filepath.Join(cfg.Dir, "error.log"),
		AccessLogPath: filepath.Join(cfg.Dir, "access.log"),
	}
	confPath, err := writeConfig(cfg, port)
	if err != nil {
		return nil, err
	}
	// -X: one process in the foreground, so stopping it leaves nothing behind.
	cmd := exec.Command(cfg.ApacheBin, "-X", "-d", cfg.Dir, "-f", confPath)
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	// The Debian binary reads no environment of its own when started
	// directly; a clean one keeps the caller's variables out of CGI-style
	// environments.
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting apache: %w", err)
	}
	g.cmd = cmd
	g.done = make(chan error, 1)
	go func() { g.done <- cmd.Wait() }()

	if err := g.waitServing(ctx, 20*time.Second); err != nil {
		g.Stop()
		log, _ := os.ReadFile(g.LogPath)
		text := output.String() + string(log)
		if strings.Contains(text, "Address already in use") {
			return nil, fmt.Errorf("%w: %v", errPortTaken, err)
		}
		return nil, fmt.Errorf("%v\n%s", err, strings.TrimSpace(text))
	}
	return g, nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (g *Gateway) waitServing(ctx context.Context, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		// Without a token the module must refuse: that it does shows
		// Apache serves and the protection is in place.
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.URL+ProtectedPrefix, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
			err = fmt.Errorf("status %d without a token, want 401", resp.StatusCode)
		}
		select {
		case exitErr := <-g.done:
			g.done <- exitErr
			return fmt.Errorf("apache exited while starting (%v); see %s", exitErr, g.LogPath)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("apache at %s not serving after %s (last error: %v); see %s", g.URL, timeout, err, g.LogPath)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends Apache: SIGTERM, then SIGKILL after 10s.
func (g *Gateway) Stop() {
	if g.cmd == nil || g.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-g.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case err := <-g.done:
		g.done <- err
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL)
		err := <-g.done
		g.done <- err
	}
}

// writeConfig writes httpd.conf and the verifier token's include file.
func writeConfig(cfg Config, port int) (string, error) {
	ca, err := os.ReadFile(cfg.CABundle)
	if err != nil {
		return "", err
	}
	caPath := filepath.Join(cfg.Dir, caFile)
	if err := os.WriteFile(caPath, ca, 0o644); err != nil {
		return "", err
	}
	tokenConf := filepath.Join(cfg.Dir, "verifier-token.conf")
	// Only root (who reads the configuration) may read the token.
	if err := os.WriteFile(tokenConf, []byte("OIDCOAuthIntrospectionClientAuthBearerToken "+cfg.VerifierToken+"\n"), 0o600); err != nil {
		return "", err
	}
	data := struct {
		Config
		Port              int
		User, Group       string
		CAPath, TokenConf string
		Prefix            string
	}{Config: cfg, Port: port, CAPath: caPath, TokenConf: tokenConf, Prefix: ProtectedPrefix}
	if os.Geteuid() == 0 {
		// Apache will not serve requests as root; Debian's package creates www-data.
		if _, err := user.Lookup("www-data"); err != nil {
			return "", fmt.Errorf("running as root needs the www-data user: %w", err)
		}
		data.User, data.Group = "www-data", "www-data"
	}
	var conf bytes.Buffer
	if err := configTemplate.Execute(&conf, data); err != nil {
		return "", err
	}
	path := filepath.Join(cfg.Dir, "httpd.conf")
	return path, os.WriteFile(path, conf.Bytes(), 0o644)
}

var configTemplate = template.Must(template.New("httpd.conf").Parse(`# Written by scripts/internal/gateway for one test run.
ServerName 127.0.0.1
Listen 127.0.0.1:{{.Port}}
PidFile "{{.Dir}}/run/httpd.pid"
DefaultRuntimeDir "{{.Dir}}/run"
{{- if .User}}
User {{.User}}
Group {{.Group}}
{{- end}}

LoadModule mpm_event_module "{{.ModulesDir}}/mod_mpm_event.so"
LoadModule authn_core_module "{{.ModulesDir}}/mod_authn_core.so"
LoadModule authz_core_module "{{.ModulesDir}}/mod_authz_core.so"
LoadModule authz_user_module "{{.ModulesDir}}/mod_authz_user.so"
LoadModule headers_module "{{.ModulesDir}}/mod_headers.so"
LoadModule proxy_module "{{.ModulesDir}}/mod_proxy.so"
LoadModule proxy_http_module "{{.ModulesDir}}/mod_proxy_http.so"
LoadModule auth_openidc_module "{{.ModulesDir}}/mod_auth_openidc.so"

ErrorLog "{{.Dir}}/error.log"
LogLevel warn
# The request line and status only: a token never reaches this log.
LogFormat "%h %t \"%r\" %>s %b" gateway
CustomLog "{{.Dir}}/access.log" gateway

# Nothing is served from disk.
<Directory />
    AllowOverride None
    Require all denied
</Directory>

# --- The PlanQK PAT gateway (the README's recipe, with test values) ---

# The engine's RFC 7662 endpoint, over https with its certificate validated.
OIDCOAuthIntrospectionEndpoint {{.IntrospectionURL}}
OIDCOAuthSSLValidateServer On
OIDCCABundlePath "{{.CAPath}}"

# The gateway authenticates with a Vault token holding planqk-verifier.
# The module sends it only when a client id and secret are set as well;
# Vault ignores both.
OIDCOAuthIntrospectionEndpointAuth bearer_access_token
Include "{{.TokenConf}}"
OIDCOAuthClientID planqk-gateway
OIDCOAuthClientSecret unused-by-vault

# No reuse of introspection results: every request is introspected, so a
# revoked PAT is refused at once. (Production caches for some seconds and
# accepts a revoked PAT for up to that long; see the README.)
OIDCOAuthTokenIntrospectionInterval -1

# Claims reach the backend as OIDC_CLAIM_* headers (incoming headers of
# that name are scrubbed), the user name also as X-Remote-User.
OIDCOAuthRemoteUserClaim username
OIDCPassClaimsAs headers
OIDCAuthNHeader X-Remote-User

# The PlanQK SDKs send the PAT in x-auth-token; the module reads only
# Authorization: Bearer, so the header is copied there before
# authentication, unless the client sent an Authorization header itself.
RequestHeader setifempty Authorization "expr=Bearer %{HTTP:X-Auth-Token}" early
RequestHeader edit Authorization "^Bearer $" "" early

<Location "{{.Prefix}}">
    AuthType oauth20
    Require valid-user
    # The backend gets the claims, never the PAT (these run after authentication).
    RequestHeader unset Authorization
    RequestHeader unset X-Auth-Token
    RequestHeader unset OIDC_access_token
    ProxyPass "{{.Backend}}/"
</Location>
`))
