package main

import (
	"testing"
	"time"
)

func TestSessionStore(t *testing.T) {
	now := time.Date(2027, 1, 1, 12, 0, 0, 0, time.UTC)
	store := newSessionStore(2)
	store.now = func() time.Time { return now }

	// The session ends with its token, or at the portal's limit if sooner.
	short, err := store.create(session{user: "mia", vaultToken: "t1"}, now.Add(time.Hour), 8*time.Hour)
	if err != nil || !short.expires.Equal(now.Add(time.Hour)) {
		t.Fatalf("session with a 1h token: %v %v", short, err)
	}
	long, err := store.create(session{user: "max", vaultToken: "t2"}, now.Add(30*24*time.Hour), 8*time.Hour)
	if err != nil || !long.expires.Equal(now.Add(8*time.Hour)) {
		t.Fatalf("session with a 30-day token: %v %v", long, err)
	}
	if short.id == long.id || short.csrfToken == long.csrfToken || len(short.id) != 43 || short.id == short.csrfToken {
		t.Fatal("ids and CSRF tokens must be distinct 256-bit random values")
	}
	if _, err := store.create(session{user: "paul"}, time.Time{}, time.Hour); err != errTooManySessions {
		t.Fatalf("a third session in a store for two: %v", err)
	}

	// A secret is shown once.
	store.update(short.id, func(s *session) { s.revealed = &revealedSecret{Name: "laptop", Secret: "plqk_x"} })
	if r := store.takeRevealed(short.id); r == nil || r.Secret != "plqk_x" {
		t.Fatalf("first take: %v", r)
	}
	if r := store.takeRevealed(short.id); r != nil {
		t.Fatalf("second take: %v", r)
	}

	// After an hour the short session is gone, and pruning hands it back
	// (so that its token can be revoked) and frees its place.
	now = now.Add(time.Hour)
	if store.get(short.id) != nil || store.update(short.id, func(*session) {}) {
		t.Fatal("an expired session is still served")
	}
	if expired := store.prune(); len(expired) != 1 || expired[0].vaultToken != "t1" {
		t.Fatalf("prune: %v", expired)
	}
	if _, err := store.create(session{user: "paul"}, time.Time{}, time.Hour); err != nil {
		t.Fatalf("a session after pruning: %v", err)
	}
	if got := store.get(long.id); got == nil || got.user != "max" {
		t.Fatalf("the long session: %v", got)
	}
	if removed := store.remove(long.id); removed == nil || store.get(long.id) != nil {
		t.Fatal("remove")
	}
	if all := store.drain(); len(all) != 1 || all[0].user != "paul" {
		t.Fatalf("drain: %v", all)
	}
}
