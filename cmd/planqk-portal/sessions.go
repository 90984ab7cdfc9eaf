package main

import (
	"crypto/rand"
	"encoding/base64"
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
	// sessionEndCookie holds the id of the browser's session too, but Lax:
	// the OIDC callback, a cross-site navigation from the identity
	// provider, gets it where it does not get the Strict session cookie,
	// and ends the session this browser holds then - also one begun in
	// another tab after the SSO flow started. Only the callback reads it;
	// nothing is authorised by it.
	sessionEndCookie = "__Host-planqk-portal-ends"
)

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
// the person signs out, when a newer session of the same person or of the
// same browser replaces them, or when the portal stops; none is written to
// disk. Every session that leaves the store is handed back to the caller,
// which revokes its Vault token: no token outlives its session.
type sessionStore struct {
	mu       sync.Mutex
	sessions map[string]*session
	// byEntity lists each person's sessions, oldest first.
	byEntity map[string][]*session
	// max bounds all sessions, perEntity those of one person (entity).
	max, perEntity int
	now            func() time.Time
}

func newSessionStore(max, perEntity int) *sessionStore {
	return &sessionStore{sessions: map[string]*session{}, byEntity: map[string][]*session{}, max: max, perEntity: perEntity, now: time.Now}
}

// randomToken returns 32 random bytes, base64url-encoded.
func randomToken() string {
	b := make([]byte, 32)
	// crypto/rand.Read never fails on supported platforms (Go 1.24+).
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create stores a new session for a Vault token that expires at
// tokenExpiry (zero: never), ending it at maxAge at the latest. It always
// makes room, and returns the sessions it ended for it, whose Vault tokens
// the caller revokes: the person's oldest sessions past perEntity, the
// expired ones when the store is full, and, when the store is full of live
// sessions, the oldest session of whoever holds the most. A person can
// thus only ever crowd out their own sessions until the store holds
// max/perEntity people at perEntity sessions each.
func (s *sessionStore) create(template session, tokenExpiry time.Time, maxAge time.Duration) (*session, []*session) {
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
	var ended []*session
	for len(s.byEntity[sess.entityID]) >= s.perEntity {
		ended = append(ended, s.removeLocked(s.byEntity[sess.entityID][0].id))
	}
	if len(s.sessions) >= s.max {
		ended = append(ended, s.pruneLocked(now)...)
	}
	for len(s.sessions) >= s.max {
		ended = append(ended, s.removeLocked(s.heaviestOldestLocked().id))
	}
	stored := sess
	s.sessions[sess.id] = &stored
	s.byEntity[sess.entityID] = append(s.byEntity[sess.entityID], &stored)
	return &sess, ended
}

// heaviestOldestLocked returns the oldest session of the person with the
// most sessions (of those with as many, the one whose oldest is oldest).
func (s *sessionStore) heaviestOldestLocked() *session {
	var pick *session
	most := 0
	for _, list := range s.byEntity {
		if len(list) > most || (len(list) == most && list[0].created.Before(pick.created)) {
			most, pick = len(list), list[0]
		}
	}
	return pick
}

// removeLocked deletes the session with id from both indexes and returns it.
func (s *sessionStore) removeLocked(id string) *session {
	sess, ok := s.sessions[id]
	if !ok {
		return nil
	}
	delete(s.sessions, id)
	list := s.byEntity[sess.entityID]
	for i, other := range list {
		if other == sess {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(s.byEntity, sess.entityID)
	} else {
		s.byEntity[sess.entityID] = list
	}
	return sess
}

// count returns how many sessions the store holds in all and for entityID.
func (s *sessionStore) count(entityID string) (all, entity int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions), len(s.byEntity[entityID])
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
	return s.removeLocked(id)
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
			expired = append(expired, s.removeLocked(id))
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
	clear(s.byEntity)
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
