package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
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
	// MaxSessions bounds the sessions the portal holds, SessionsPerPerson
	// those of one identity entity (its oldest ends past it).
	MaxSessions       int
	SessionsPerPerson int
	// SignInPerMinute and SignInBurst bound sign-in attempts per client
	// address (password and OIDC apart) and OIDC completions per person.
	SignInPerMinute float64
	SignInBurst     int
	// TrustedProxies are the reverse proxies whose ProxyHeader names the
	// client; ProxyHeader is x-forwarded-for or forwarded.
	TrustedProxies []netip.Prefix
	ProxyHeader    string
	// Vault's userpass lockout (the mount's user_lockout_config): the
	// portal lets at most LockoutThreshold-1 wrong passwords per user name
	// through within LockoutReset, so that it never locks anyone out.
	LockoutThreshold int
	LockoutReset     time.Duration
	LockoutDuration  time.Duration
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
	var methods, scopes, perMinute, burst, proxies string
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
	fs.StringVar(&perMinute, "signin-rate", env("PORTAL_SIGNIN_RATE", "10"), "password sign-in attempts per minute per client address; as many OIDC starts per address and OIDC sign-ins per person (PORTAL_SIGNIN_RATE)")
	fs.IntVar(&cfg.MaxSessions, "max-sessions", intEnv(getenv, "PORTAL_MAX_SESSIONS", 10000), "sessions the portal holds at most (PORTAL_MAX_SESSIONS)")
	fs.IntVar(&cfg.SessionsPerPerson, "sessions-per-person", intEnv(getenv, "PORTAL_SESSIONS_PER_PERSON", 10), "sessions one person (identity entity) may hold; a new one past it ends their oldest (PORTAL_SESSIONS_PER_PERSON)")
	fs.StringVar(&proxies, "trusted-proxies", env("PORTAL_TRUSTED_PROXIES", ""), "comma-separated CIDRs of reverse proxies in front of the portal; only from them is -proxy-header believed (PORTAL_TRUSTED_PROXIES)")
	fs.StringVar(&cfg.ProxyHeader, "proxy-header", env("PORTAL_PROXY_HEADER", "x-forwarded-for"), "header the trusted proxies append the client address to: x-forwarded-for or forwarded (PORTAL_PROXY_HEADER)")
	fs.IntVar(&cfg.LockoutThreshold, "userpass-lockout-threshold", intEnv(getenv, "PORTAL_USERPASS_LOCKOUT_THRESHOLD", 5), "Vault's lockout_threshold for the userpass mount; the portal lets one fewer wrong passwords per user name through (PORTAL_USERPASS_LOCKOUT_THRESHOLD)")
	fs.DurationVar(&cfg.LockoutReset, "userpass-lockout-reset", durationEnv(getenv, "PORTAL_USERPASS_LOCKOUT_RESET", 15*time.Minute), "Vault's lockout_counter_reset for the userpass mount (PORTAL_USERPASS_LOCKOUT_RESET)")
	fs.DurationVar(&cfg.LockoutDuration, "userpass-lockout-duration", durationEnv(getenv, "PORTAL_USERPASS_LOCKOUT_DURATION", 15*time.Minute), "Vault's lockout_duration for the userpass mount, told to a locked-out person (PORTAL_USERPASS_LOCKOUT_DURATION)")
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
	for _, cidr := range splitList(proxies) {
		prefix, err := netip.ParsePrefix(cidr)
		if err != nil {
			addr, addrErr := netip.ParseAddr(cidr)
			if addrErr != nil {
				return nil, fmt.Errorf("-trusted-proxies: %q is not a CIDR or an address", cidr)
			}
			prefix = netip.PrefixFrom(addr, addr.BitLen())
		}
		cfg.TrustedProxies = append(cfg.TrustedProxies, prefix.Masked())
	}
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

// intEnv and durationEnv read a flag's default from the environment; a
// malformed value becomes 0, which validate refuses.
func intEnv(getenv func(string) string, name string, fallback int) int {
	v := getenv(name)
	if v == "" {
		return fallback
	}
	n, _ := strconv.Atoi(v)
	return n
}

func durationEnv(getenv func(string) string, name string, fallback time.Duration) time.Duration {
	v := getenv(name)
	if v == "" {
		return fallback
	}
	d, _ := time.ParseDuration(v)
	return d
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
	if c.MaxSessions < 1 || c.SessionsPerPerson < 1 || c.SessionsPerPerson > c.MaxSessions {
		return errors.New("-max-sessions and -sessions-per-person must be positive, -sessions-per-person at most -max-sessions")
	}
	c.ProxyHeader = strings.ToLower(c.ProxyHeader)
	if c.ProxyHeader != "x-forwarded-for" && c.ProxyHeader != "forwarded" {
		return fmt.Errorf("-proxy-header: %q is neither x-forwarded-for nor forwarded", c.ProxyHeader)
	}
	if c.LockoutThreshold < 2 {
		return errors.New("-userpass-lockout-threshold must be at least 2 (Vault's lockout_threshold; with Vault's lockout disabled, the wrong passwords per user name the portal allows plus one)")
	}
	if c.LockoutReset < time.Second || c.LockoutDuration < time.Second {
		return errors.New("-userpass-lockout-reset and -userpass-lockout-duration must be at least a second")
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
