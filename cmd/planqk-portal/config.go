package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Sign-in methods the portal can offer.
const (
	methodUserpass = "userpass"
	methodOIDC     = "oidc"
)

// config is the portal's configuration: flags, each defaulting to an
// environment variable, then to a value that suits a local dev server.
type config struct {
	ListenAddr string
	// PublicURL is where browsers reach the portal; the OIDC redirect URI
	// is derived from it. Default: http(s)://ListenAddr.
	PublicURL string
	VaultAddr string
	Mount     string

	AuthMethods   []string
	UserpassMount string
	OIDCMount     string
	OIDCRole      string

	TLSCert string
	TLSKey  string

	// SessionTTL caps a session below its Vault token's own lifetime.
	SessionTTL time.Duration
	// SignInPerMinute and SignInBurst bound sign-in attempts per client
	// address and per user name.
	SignInPerMinute float64
	SignInBurst     int
	// PATScopes are offered on the create form when the engine takes scopes.
	PATScopes []string

	LogLevel string
}

// parseConfig reads the flags in args; each flag's default comes from the
// environment variable named in its usage text.
func parseConfig(args []string, getenv func(string) string) (*config, error) {
	env := func(name, fallback string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return fallback
	}
	fs := flag.NewFlagSet("planqk-portal", flag.ContinueOnError)
	cfg := &config{}
	var methods, scopes, perMinute, burst string
	fs.StringVar(&cfg.ListenAddr, "listen", env("PORTAL_LISTEN", "127.0.0.1:8210"), "address to listen on (PORTAL_LISTEN)")
	fs.StringVar(&cfg.PublicURL, "public-url", env("PORTAL_PUBLIC_URL", ""), "URL browsers use to reach the portal; the OIDC redirect URI is <public-url>/oidc/callback (PORTAL_PUBLIC_URL; default from -listen)")
	fs.StringVar(&cfg.VaultAddr, "vault-addr", env("VAULT_ADDR", "http://127.0.0.1:8200"), "Vault's address (VAULT_ADDR; VAULT_CACERT and the other VAULT_* TLS variables apply too)")
	fs.StringVar(&cfg.Mount, "mount", env("PLANQK_MOUNT", "planqk"), "mount path of the PlanQK engine (PLANQK_MOUNT)")
	fs.StringVar(&methods, "auth-methods", env("PORTAL_AUTH_METHODS", methodUserpass), "sign-in methods offered, comma-separated: userpass, oidc (PORTAL_AUTH_METHODS)")
	fs.StringVar(&cfg.UserpassMount, "userpass-mount", env("PORTAL_USERPASS_MOUNT", "userpass"), "mount path of Vault's userpass auth method (PORTAL_USERPASS_MOUNT)")
	fs.StringVar(&cfg.OIDCMount, "oidc-mount", env("PORTAL_OIDC_MOUNT", "oidc"), "mount path of Vault's OIDC auth method (PORTAL_OIDC_MOUNT)")
	fs.StringVar(&cfg.OIDCRole, "oidc-role", env("PORTAL_OIDC_ROLE", ""), "role of the OIDC auth method; empty = its default_role (PORTAL_OIDC_ROLE)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", env("PORTAL_TLS_CERT", ""), "PEM certificate (chain) to serve HTTPS with (PORTAL_TLS_CERT)")
	fs.StringVar(&cfg.TLSKey, "tls-key", env("PORTAL_TLS_KEY", ""), "PEM private key of -tls-cert (PORTAL_TLS_KEY)")
	fs.DurationVar(&cfg.SessionTTL, "session-ttl", 8*time.Hour, "longest session, even if the Vault token lives longer (PORTAL_SESSION_TTL)")
	fs.StringVar(&perMinute, "signin-rate", env("PORTAL_SIGNIN_RATE", "10"), "sign-in attempts per minute per client address and per user name (PORTAL_SIGNIN_RATE)")
	fs.StringVar(&burst, "signin-burst", env("PORTAL_SIGNIN_BURST", "5"), "sign-in attempts allowed at once before -signin-rate applies (PORTAL_SIGNIN_BURST)")
	fs.StringVar(&scopes, "pat-scopes", env("PORTAL_PAT_SCOPES", "api,quantum_tokens"), "scopes offered when creating a personal access token, if the engine takes scopes (PORTAL_PAT_SCOPES)")
	fs.StringVar(&cfg.LogLevel, "log-level", env("PORTAL_LOG_LEVEL", "info"), "trace, debug, info, warn or error (PORTAL_LOG_LEVEL)")
	if v := getenv("PORTAL_SESSION_TTL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, fmt.Errorf("PORTAL_SESSION_TTL: %w", err)
		}
		cfg.SessionTTL = d
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}

	cfg.AuthMethods = splitList(methods)
	cfg.PATScopes = splitList(scopes)
	var err error
	if cfg.SignInPerMinute, err = strconv.ParseFloat(perMinute, 64); err != nil || cfg.SignInPerMinute <= 0 {
		return nil, errors.New("-signin-rate must be a positive number")
	}
	if cfg.SignInBurst, err = strconv.Atoi(burst); err != nil || cfg.SignInBurst < 1 {
		return nil, errors.New("-signin-burst must be a positive whole number")
	}
	return cfg, cfg.validate()
}

func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func (c *config) validate() error {
	if len(c.AuthMethods) == 0 {
		return errors.New("-auth-methods: offer at least one of userpass, oidc")
	}
	for _, m := range c.AuthMethods {
		if m != methodUserpass && m != methodOIDC {
			return fmt.Errorf("-auth-methods: unknown method %q (use userpass, oidc)", m)
		}
	}
	for name, mount := range map[string]string{"-mount": c.Mount, "-userpass-mount": c.UserpassMount, "-oidc-mount": c.OIDCMount} {
		if !validSegment(strings.Trim(mount, "/")) {
			return fmt.Errorf("%s: %q is not a mount path", name, mount)
		}
	}
	c.Mount = strings.Trim(c.Mount, "/")
	c.UserpassMount = strings.Trim(c.UserpassMount, "/")
	c.OIDCMount = strings.Trim(c.OIDCMount, "/")
	if c.OIDCRole != "" && !validSegment(c.OIDCRole) {
		return fmt.Errorf("-oidc-role: %q is not a role name", c.OIDCRole)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("-tls-cert and -tls-key go together")
	}
	if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
		return fmt.Errorf("-listen: %w", err)
	}
	if c.SessionTTL < time.Minute {
		return errors.New("-session-ttl must be at least a minute")
	}
	if c.PublicURL == "" {
		c.PublicURL = c.scheme() + "://" + c.ListenAddr
	}
	u, err := url.Parse(c.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return fmt.Errorf("-public-url: %q must be an http(s) URL without a path", c.PublicURL)
	}
	c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
	return nil
}

func (c *config) tls() bool { return c.TLSCert != "" }

// servedOverHTTPS reports whether browsers reach the portal over https,
// directly or through a proxy that ends TLS.
func servedOverHTTPS(c *config) bool { return strings.HasPrefix(c.PublicURL, "https://") }

func (c *config) scheme() string {
	if c.tls() {
		return "https"
	}
	return "http"
}

func (c *config) offers(method string) bool { return slices.Contains(c.AuthMethods, method) }

// oidcRedirectURI is the portal's callback, registered as an allowed
// redirect URI of the OIDC role and of the identity provider's client.
func (c *config) oidcRedirectURI() string { return c.PublicURL + "/oidc/callback" }

// plainHTTPOutsideLoopback reports whether passwords and session cookies
// would cross a network unencrypted: no TLS here, and browsers reach the
// portal at an address that is not this machine's loopback.
func (c *config) plainHTTPOutsideLoopback() bool {
	if c.tls() {
		return false
	}
	host, _, _ := net.SplitHostPort(c.ListenAddr)
	if !isLoopback(host) {
		return true
	}
	u, err := url.Parse(c.PublicURL)
	return err == nil && u.Scheme == "http" && !isLoopback(u.Hostname())
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
