package main

import (
	"fmt"
	"testing"
	"time"
)

func TestSessionStore(t *testing.T) {
	now := time.Date(2027, 1, 1, 12, 0, 0, 0, time.UTC)
	store := newSessionStore(3, 2)
	store.now = func() time.Time { return now }

	// The session ends with its token, or at the portal's limit if sooner.
	short, ended := store.create(session{user: "mia", entityID: "e-mia", vaultToken: "t1"}, now.Add(time.Hour), 8*time.Hour)
	if len(ended) != 0 || !short.expires.Equal(now.Add(time.Hour)) {
		t.Fatalf("session with a 1h token: %v %v", short, ended)
	}
	long, _ := store.create(session{user: "max", entityID: "e-max", vaultToken: "t2"}, now.Add(30*24*time.Hour), 8*time.Hour)
	if !long.expires.Equal(now.Add(8 * time.Hour)) {
		t.Fatalf("session with a 30-day token: %v", long)
	}
	if short.id == long.id || short.csrfToken == long.csrfToken || len(short.id) != 43 || short.id == short.csrfToken {
		t.Fatal("ids and CSRF tokens must be distinct 256-bit random values")
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
	if all, mine := store.count("e-mia"); all != 1 || mine != 0 {
		t.Fatalf("after pruning: %d sessions, %d of mia", all, mine)
	}
	paul, _ := store.create(session{user: "paul", entityID: "e-paul"}, time.Time{}, time.Hour)
	if got := store.get(long.id); got == nil || got.user != "max" {
		t.Fatalf("the long session: %v", got)
	}
	if removed := store.remove(long.id); removed == nil || store.get(long.id) != nil {
		t.Fatal("remove")
	}
	if all := store.drain(); len(all) != 1 || all[0].id != paul.id {
		t.Fatalf("drain: %v", all)
	}
	if all, mine := store.count("e-paul"); all != 0 || mine != 0 {
		t.Fatalf("after drain: %d sessions, %d of paul", all, mine)
	}
}

// One person's sign-ins end only their own oldest sessions; a full store
// ends expired sessions (handing them back for revocation) before live
// ones, and then the oldest of whoever holds the most, never refusing.
func TestSessionStore_boundsPerPersonAndNeverRefuses(t *testing.T) {
	now := time.Date(2027, 1, 1, 12, 0, 0, 0, time.UTC)
	tick := func() time.Time { now = now.Add(time.Second); return now }
	store := newSessionStore(6, 3)
	store.now = tick

	mine := func(entity string, token string) *session {
		t.Helper()
		sess, _ := store.create(session{entityID: entity, vaultToken: token}, time.Time{}, time.Hour)
		return sess
	}
	owner := mine("owner", "owner-1")
	var ended []*session
	for i := 0; i < 50; i++ {
		_, e := store.create(session{entityID: "attacker", vaultToken: fmt.Sprintf("a-%d", i)}, time.Time{}, time.Hour)
		ended = append(ended, e...)
	}
	if all, attacker := store.count("attacker"); all != 4 || attacker != 3 {
		t.Fatalf("after 50 sign-ins of one person: %d sessions, %d theirs; want 4 and 3", all, attacker)
	}
	if len(ended) != 47 || ended[0].vaultToken != "a-0" || ended[46].vaultToken != "a-46" {
		t.Fatalf("ended %d sessions (first %v), want the 47 oldest of the attacker's", len(ended), ended[0])
	}
	if store.get(owner.id) == nil {
		t.Fatal("one person's sign-ins ended another's session")
	}

	// Full: 6 sessions (owner 1, attacker 3, two more people).
	mine("p1", "p1-1")
	mine("p2", "p2-1")
	if all, _ := store.count(""); all != 6 {
		t.Fatalf("%d sessions, want a full store of 6", all)
	}
	// The next person gets in; the attacker, holding the most, loses their oldest.
	_, e := store.create(session{entityID: "p3", vaultToken: "p3-1"}, time.Time{}, time.Hour)
	if len(e) != 1 || e[0].entityID != "attacker" || e[0].vaultToken != "a-47" {
		t.Fatalf("a full store ended %v, want the attacker's oldest (a-47)", e)
	}
	if store.get(owner.id) == nil {
		t.Fatal("a full store ended the owner's only session")
	}

	// Expired sessions go first, and are handed back.
	now = now.Add(2 * time.Hour)
	_, e = store.create(session{entityID: "p4", vaultToken: "p4-1"}, time.Time{}, time.Hour)
	if len(e) != 6 {
		t.Fatalf("a full store of expired sessions handed back %d of 6", len(e))
	}
}
