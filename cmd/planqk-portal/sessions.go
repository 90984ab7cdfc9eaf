package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"sync"
	"time"
)

// Cookie names. The __Host- prefix makes browsers refuse the cookie unless
// it is Secure, has Path=/ and no Domain, so no other host can plant it.
// Browsers treat http://127.0.0.1 and http://localhost as secure contexts
// and accept such cookies there too (checked with Chromium by the browser
// tests), so the flags are the same in development and production.
const (
	sessionCookie = "__Host-planqk-portal-session"
	signInCookie  = "__Host-planqk-portal-signin"
	oidcCookie    = "__Host-planqk-portal-oidc"
)

// errTooManySessions is returned when the store is full of live sessions.
var errTooManySessions = errors.New("too many sessions")

// session is one signed-in person. The Vault token never leaves the server:
// the browser holds only the random session id.
type session struct {
	id        string
	csrfToken string
	created   time.Time
	expires   time.Time

	vaultToken string
	// tokenExpires is when the Vault token expires (zero: never).
	tokenExpires time.Time
	// user is the identity entity's name: <user> in the engine's paths.
	user     string
	entityID string
	method   string

	// revealed is a new PAT secret waiting for its one display.
	revealed *revealedSecret
	// notice is shown once, on the next page.
	notice string
}

// revealedSecret is a PAT secret kept server-side between the POST that
// created it and the one GET that shows it.
type revealedSecret struct {
	Name      string
	Secret    string
	ExpiresAt string
	Rotated   bool
}

// sessionStore keeps sessions in memory. They end at their expiry, when
// the person signs out, or when the portal stops; none is written to disk.
type sessionStore struct {
	mu       sync.Mutex
	sessions map[string]*session
	max      int
	now      func() time.Time
}

func newSessionStore(max int) *sessionStore {
	return &sessionStore{sessions: map[string]*session{}, max: max, now: time.Now}
}

// randomToken returns 32 random bytes, base64url-encoded.
func randomToken() string {
	b := make([]byte, 32)
	// crypto/rand.Read never fails on supported platforms (Go 1.24+).
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create stores a new session for a Vault token that expires at
// tokenExpiry (zero: never), ending it at maxAge at the latest.
func (s *sessionStore) create(template session, tokenExpiry time.Time, maxAge time.Duration) (*session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	sess := template
	sess.id = randomToken()
	sess.csrfToken = randomToken()
	sess.created = now
	sess.tokenExpires = tokenExpiry
	sess.expires = now.Add(maxAge)
	if !tokenExpiry.IsZero() && tokenExpiry.Before(sess.expires) {
		sess.expires = tokenExpiry
	}
	if len(s.sessions) >= s.max {
		s.pruneLocked(now)
		if len(s.sessions) >= s.max {
			return nil, errTooManySessions
		}
	}
	s.sessions[sess.id] = &sess
	copied := sess
	return &copied, nil
}

// get returns a copy of the live session with id, or nil.
func (s *sessionStore) get(id string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[id]
	if !ok || !s.now().Before(sess.expires) {
		return nil
	}
	copied := *sess
	return &copied
}

// update applies change to the live session with id; false if there is none.
func (s *sessionStore) update(id string, change func(*session)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[id]
	if !ok || !s.now().Before(sess.expires) {
		return false
	}
	change(sess)
	return true
}

// takeRevealed removes and returns the session's waiting secret: it can be
// shown once.
func (s *sessionStore) takeRevealed(id string) *revealedSecret {
	var revealed *revealedSecret
	s.update(id, func(sess *session) { revealed, sess.revealed = sess.revealed, nil })
	return revealed
}

// takeNotice removes and returns the session's notice.
func (s *sessionStore) takeNotice(id string) string {
	var notice string
	s.update(id, func(sess *session) { notice, sess.notice = sess.notice, "" })
	return notice
}

// remove ends the session and returns what it was.
func (s *sessionStore) remove(id string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[id]
	if !ok {
		return nil
	}
	delete(s.sessions, id)
	return sess
}

// prune removes expired sessions and returns them, so that the caller can
// revoke Vault tokens that outlive their session.
func (s *sessionStore) prune() []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pruneLocked(s.now())
}

func (s *sessionStore) pruneLocked(now time.Time) []*session {
	var expired []*session
	for id, sess := range s.sessions {
		if !now.Before(sess.expires) {
			expired = append(expired, sess)
			delete(s.sessions, id)
		}
	}
	return expired
}

// drain removes every session: the portal is stopping.
func (s *sessionStore) drain() []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := make([]*session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		all = append(all, sess)
	}
	clear(s.sessions)
	return all
}

// cookie returns a cookie with the flags every portal cookie has.
func cookie(name, value string, sameSite http.SameSite, maxAge time.Duration) *http.Cookie {
	c := &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		Secure:   true,
		HttpOnly: true,
		SameSite: sameSite,
	}
	switch {
	case maxAge > 0:
		c.MaxAge = int(maxAge / time.Second)
	case maxAge < 0:
		c.MaxAge = -1
	}
	return c
}

// sessionOf returns the request's live session, or nil.
func (p *portal) sessionOf(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	return p.sessions.get(c.Value)
}
