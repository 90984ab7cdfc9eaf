package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
)

// portal is the web application: it holds no authority of its own and
// acts against Vault only with the signed-in person's Vault token.
type portal struct {
	cfg      *config
	log      hclog.Logger
	vault    *api.Client // no token: clones get the session's
	sessions *sessionStore
	limiter  *signInLimiter
	failures *passwordFailures
	clients  clientResolver
	pages    *pages
	// formKey signs the tokens of forms shown before sign-in and derives
	// the OIDC client nonce; it lives as long as the process.
	formKey []byte

	featuresMu sync.Mutex
	features   map[string]engineFieldSet
}

func newPortal(cfg *config, logger hclog.Logger) (*portal, error) {
	vaultConfig := api.DefaultConfig()
	if vaultConfig.Error != nil {
		return nil, fmt.Errorf("reading Vault's TLS settings from the environment: %w", vaultConfig.Error)
	}
	vaultConfig.Address = cfg.VaultAddr
	// A write that failed half-way must not be sent again: creating a PAT
	// twice would answer "already exists" for the person's own token.
	vaultConfig.MaxRetries = 0
	vaultConfig.Timeout = 30 * time.Second
	client, err := api.NewClient(vaultConfig)
	if err != nil {
		return nil, fmt.Errorf("creating the Vault client: %w", err)
	}
	// api.NewClient picks up VAULT_TOKEN from the environment; the portal
	// must never act with any token but a signed-in person's.
	client.ClearToken()

	pages, err := loadPages()
	if err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return &portal{
		cfg:      cfg,
		log:      logger,
		vault:    client,
		sessions: newSessionStore(cfg.MaxSessions, cfg.SessionsPerPerson),
		limiter:  newSignInLimiter(cfg.SignInPerMinute, cfg.SignInBurst),
		failures: newPasswordFailures(cfg.LockoutThreshold, cfg.LockoutReset),
		clients:  clientResolver{trusted: cfg.TrustedProxies, header: cfg.ProxyHeader},
		pages:    pages,
		formKey:  key,
		features: map[string]engineFieldSet{},
	}, nil
}

// handler returns the portal's routes behind its security middleware.
func (p *portal) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", p.home)
	mux.HandleFunc("GET /healthz", p.health)
	mux.Handle("GET /static/", staticHandler())

	mux.HandleFunc("GET /signin", p.signInPage)
	mux.HandleFunc("POST /signin", p.signInUserpass)
	mux.HandleFunc("GET /signin/oidc", p.signInOIDC)
	mux.HandleFunc("GET /oidc/callback", p.oidcCallback)
	mux.HandleFunc("POST /signout", p.signedInForm(p.signOut))

	mux.HandleFunc("GET /tokens", p.signedIn(p.patsPage))
	mux.HandleFunc("POST /tokens", p.signedInForm(p.patCreate))
	mux.HandleFunc("GET /tokens/secret", p.signedIn(p.patSecretPage))
	mux.HandleFunc("GET /tokens/{name}/rotate", p.signedIn(p.patRotateConfirm))
	mux.HandleFunc("POST /tokens/{name}/rotate", p.signedInForm(p.patRotate))
	mux.HandleFunc("GET /tokens/{name}/revoke", p.signedIn(p.patRevokeConfirm))
	mux.HandleFunc("POST /tokens/{name}/revoke", p.signedInForm(p.patRevoke))

	mux.HandleFunc("GET /provider-tokens", p.signedIn(p.userProviderTokensPage))
	mux.HandleFunc("POST /provider-tokens/settings", p.signedInForm(p.userSettingsWrite))
	mux.HandleFunc("POST /provider-tokens/{provider}", p.signedInForm(p.userProviderTokenWrite))
	mux.HandleFunc("GET /provider-tokens/{provider}/delete", p.signedIn(p.userProviderTokenDeleteConfirm))
	mux.HandleFunc("POST /provider-tokens/{provider}/delete", p.signedInForm(p.userProviderTokenDelete))

	mux.HandleFunc("GET /orgs", p.signedIn(p.organizationsPage))
	mux.HandleFunc("GET /orgs/{org}", p.signedIn(p.orgProviderTokensPage))
	mux.HandleFunc("POST /orgs/{org}/settings", p.signedInForm(p.orgSettingsWrite))
	mux.HandleFunc("POST /orgs/{org}/provider-tokens/{provider}", p.signedInForm(p.orgProviderTokenWrite))
	mux.HandleFunc("GET /orgs/{org}/provider-tokens/{provider}/delete", p.signedIn(p.orgProviderTokenDeleteConfirm))
	mux.HandleFunc("POST /orgs/{org}/provider-tokens/{provider}/delete", p.signedInForm(p.orgProviderTokenDelete))

	mux.HandleFunc("/", p.notFound)
	return p.logRequests(p.recoverPanics(securityHeaders(servedOverHTTPS(p.cfg), evictShownSecrets(limitBodies(mux)))))
}

func (p *portal) home(w http.ResponseWriter, r *http.Request) {
	if p.sessionOf(r) == nil {
		http.Redirect(w, r, "/signin", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/tokens", http.StatusSeeOther)
}

func (p *portal) notFound(w http.ResponseWriter, r *http.Request) {
	p.renderProblem(w, r, p.sessionOf(r), &problem{Status: http.StatusNotFound, Message: "There is no such page."})
}

// handlerWithSession is a handler for signed-in people.
type handlerWithSession func(http.ResponseWriter, *http.Request, *session)

// signedIn sends people without a live session to the sign-in page.
func (p *portal) signedIn(next handlerWithSession) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess := p.sessionOf(r)
		if sess == nil {
			http.Redirect(w, r, "/signin", http.StatusSeeOther)
			return
		}
		next(w, r, sess)
	}
}

// signedInForm is signedIn for state-changing requests: the form must
// carry the session's CSRF token.
func (p *portal) signedInForm(next handlerWithSession) http.HandlerFunc {
	return p.signedIn(func(w http.ResponseWriter, r *http.Request, sess *session) {
		if !p.sessionFormValid(r, sess) {
			p.renderProblem(w, r, sess, problemForgedForm)
			return
		}
		next(w, r, sess)
	})
}

// limitBodies caps request bodies: forms here are a few kilobytes.
func limitBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		next.ServeHTTP(w, r)
	})
}

// recoverPanics answers a panic with a plain error page; the stack goes to
// the log, never to the browser.
func (p *portal) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				p.log.Error("panic serving a request", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				p.renderProblem(w, r, nil, &problem{Status: http.StatusInternalServerError, Message: "Something went wrong in the portal. Try again; if it keeps happening, tell your operator."})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// logRequests logs method, path, status and duration: never a query
// string (the OIDC callback's carries an authorization code) or a body.
func (p *portal) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		p.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", rec.status, "duration", time.Since(start))
	})
}

// revokeExpired revokes the Vault tokens of sessions that ended before
// their token expired (the portal's -session-ttl), every interval, until
// ctx ends.
func (p *portal) revokeExpired(ctx context.Context, interval time.Duration) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			p.revokeSessions(ctx, p.sessions.prune())
			p.limiter.prune()
			p.failures.prune()
		}
	}
}

// revokeSessions revokes the sessions' Vault tokens that have not expired
// yet, best effort, a few at a time.
func (p *portal) revokeSessions(ctx context.Context, sessions []*session) {
	now := time.Now()
	var wg sync.WaitGroup
	slots := make(chan struct{}, 8)
	for _, sess := range sessions {
		if !sess.tokenExpires.IsZero() && !now.Before(sess.tokenExpires) {
			continue
		}
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			if err := p.revokeToken(ctx, sess.vaultToken); err != nil {
				p.log.Warn("could not revoke the Vault token of an ended session", "user", sess.user, "error", vaultErrorForLog(err))
			}
		}()
	}
	wg.Wait()
}
