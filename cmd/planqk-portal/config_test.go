package main

import (
	"strings"
	"testing"
	"time"
)

func envOf(values map[string]string) func(string) string {
	return func(name string) string { return values[name] }
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := parseConfig(nil, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ListenAddr != "127.0.0.1:8210" || cfg.PublicURL != "http://127.0.0.1:8210" || cfg.Mount != "planqk" ||
		cfg.VaultAddr != "http://127.0.0.1:8200" || strings.Join(cfg.AuthMethods, ",") != "userpass" ||
		cfg.SessionTTL != 8*time.Hour || strings.Join(cfg.PATScopes, ",") != "api,quantum_tokens" {
		t.Fatalf("defaults: %+v", cfg)
	}
	if cfg.oidcRedirectURI() != "http://127.0.0.1:8210/oidc/callback" {
		t.Errorf("redirect URI %q", cfg.oidcRedirectURI())
	}
	if cfg.plainHTTPOutsideLoopback() {
		t.Error("the loopback default warns about plain HTTP")
	}
}

func TestConfigFromEnvironmentAndFlags(t *testing.T) {
	env := envOf(map[string]string{
		"VAULT_ADDR": "https://vault.example:8200", "PLANQK_MOUNT": "/quantum/", "PORTAL_AUTH_METHODS": "oidc, userpass",
		"PORTAL_LISTEN": "0.0.0.0:8443", "PORTAL_SESSION_TTL": "2h", "PORTAL_PUBLIC_URL": "https://tokens.example/",
	})
	cfg, err := parseConfig([]string{"-listen", "127.0.0.1:9000", "-oidc-role", "portal"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.VaultAddr != "https://vault.example:8200" || cfg.Mount != "quantum" || !cfg.offers(methodOIDC) || !cfg.offers(methodUserpass) ||
		cfg.ListenAddr != "127.0.0.1:9000" || cfg.SessionTTL != 2*time.Hour || cfg.PublicURL != "https://tokens.example" || cfg.OIDCRole != "portal" {
		t.Fatalf("config: %+v", cfg)
	}
	if cfg.oidcRedirectURI() != "https://tokens.example/oidc/callback" {
		t.Errorf("redirect URI %q", cfg.oidcRedirectURI())
	}
}

func TestConfigRefusesNonsense(t *testing.T) {
	cases := map[string][]string{
		"-auth-methods: unknown method": {"-auth-methods", "kerberos"},
		"offer at least one":            {"-auth-methods", " , "},
		"go together":                   {"-tls-cert", "cert.pem"},
		"-mount":                        {"-mount", "a/../b"},
		"-public-url":                   {"-public-url", "https://tokens.example/portal"},
		"-signin-rate":                  {"-signin-rate", "0"},
		"-signin-burst":                 {"-signin-burst", "x"},
		"-session-ttl":                  {"-session-ttl", "10s"},
		"-trusted-proxies":              {"-trusted-proxies", "10.0.0.0/8, proxy.example"},
		"-proxy-header":                 {"-proxy-header", "x-real-ip"},
		"-sessions-per-person":          {"-sessions-per-person", "0"},
		"-userpass-lockout-threshold":   {"-userpass-lockout-threshold", "1"},
		"-userpass-lockout-reset":       {"-userpass-lockout-reset", "0s"},
		"unexpected arguments":          {"extra"},
	}
	for want, args := range cases {
		if _, err := parseConfig(args, envOf(nil)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: error %v, want one with %q", args, err, want)
		}
	}
}

func TestConfigSignInLimits(t *testing.T) {
	cfg, err := parseConfig(nil, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxSessions != 10000 || cfg.SessionsPerPerson != 10 || len(cfg.TrustedProxies) != 0 || cfg.ProxyHeader != "x-forwarded-for" ||
		cfg.LockoutThreshold != 5 || cfg.LockoutReset != 15*time.Minute || cfg.LockoutDuration != 15*time.Minute {
		t.Fatalf("defaults: %+v", cfg)
	}
	env := envOf(map[string]string{"PORTAL_TRUSTED_PROXIES": "10.0.0.7/8, 192.0.2.1, 2001:db8::/32", "PORTAL_SESSIONS_PER_PERSON": "3",
		"PORTAL_USERPASS_LOCKOUT_THRESHOLD": "10", "PORTAL_USERPASS_LOCKOUT_RESET": "1h"})
	cfg, err = parseConfig([]string{"-proxy-header", "Forwarded"}, env)
	if err != nil {
		t.Fatal(err)
	}
	var proxies []string
	for _, p := range cfg.TrustedProxies {
		proxies = append(proxies, p.String())
	}
	if strings.Join(proxies, " ") != "10.0.0.0/8 192.0.2.1/32 2001:db8::/32" || cfg.ProxyHeader != "forwarded" ||
		cfg.SessionsPerPerson != 3 || cfg.LockoutThreshold != 10 || cfg.LockoutReset != time.Hour {
		t.Fatalf("config: %v %+v", proxies, cfg)
	}
}

func TestPlainHTTPWarning(t *testing.T) {
	cases := []struct {
		args []string
		warn bool
	}{
		{[]string{"-listen", "127.0.0.1:8210"}, false},
		{[]string{"-listen", "[::1]:8210"}, false},
		{[]string{"-listen", "localhost:8210"}, false},
		{[]string{"-listen", "0.0.0.0:8210"}, true},
		{[]string{"-listen", "10.0.0.5:8210"}, true},
		// Behind a TLS-terminating proxy on the same machine.
		{[]string{"-listen", "127.0.0.1:8210", "-public-url", "https://tokens.example"}, false},
		// Loopback listener, but browsers are told a plain-http address elsewhere.
		{[]string{"-listen", "127.0.0.1:8210", "-public-url", "http://tokens.example"}, true},
		{[]string{"-listen", "0.0.0.0:8443", "-tls-cert", "c.pem", "-tls-key", "k.pem"}, false},
	}
	for _, c := range cases {
		cfg, err := parseConfig(c.args, envOf(nil))
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.plainHTTPOutsideLoopback(); got != c.warn {
			t.Errorf("%v: warning %v, want %v", c.args, got, c.warn)
		}
	}
}
