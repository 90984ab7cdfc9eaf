package main

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

func TestSignInLimiter(t *testing.T) {
	now := time.Date(2027, 1, 1, 12, 0, 0, 0, time.UTC)
	l := newSignInLimiter(6, 3) // 6 a minute: one per 10 s, 3 at once
	l.now = func() time.Time { return now }

	for i := 0; i < 3; i++ {
		if !l.allow("addr:10.0.0.1", "user:mia") {
			t.Fatalf("attempt %d refused", i+1)
		}
	}
	if l.allow("addr:10.0.0.1", "user:mia") {
		t.Fatal("the fourth attempt at once was allowed")
	}
	// Another address guessing the same user is limited by the user's budget.
	if l.allow("addr:10.0.0.2", "user:mia") {
		t.Fatal("a new address got around the user's limit")
	}
	// Another user from a fresh address is not.
	if !l.allow("addr:10.0.0.3", "user:max") {
		t.Fatal("an unrelated attempt was refused")
	}
	now = now.Add(10 * time.Second)
	if !l.allow("addr:10.0.0.1", "user:mia") {
		t.Fatal("no attempt after the budget refilled by one")
	}
	// Once full again, keys are forgotten.
	now = now.Add(time.Hour)
	l.prune()
	if len(l.limiters) != 0 {
		t.Fatalf("%d keys kept after refilling", len(l.limiters))
	}
}

func TestClientKey(t *testing.T) {
	r := &http.Request{RemoteAddr: "192.0.2.7:53412"}
	if got := clientKey(r); got != "addr:192.0.2.7" {
		t.Errorf("clientKey %q", got)
	}
	if userKey("Mia") != userKey("mia") {
		t.Error("user names differ by case")
	}
}

// An address over its budget must not make the limiter remember the user
// names it tries: otherwise one client fills the limiter and every new
// address and user is refused.
func TestSignInLimiter_anExhaustedAddressAddsNoUserNames(t *testing.T) {
	l := newSignInLimiter(6, 3)
	for i := 0; i < 3; i++ {
		l.allow("addr:10.0.0.9", fmt.Sprintf("user:guess%d", i))
	}
	keys := len(l.limiters)
	for i := 3; i < 1000; i++ {
		if l.allow("addr:10.0.0.9", fmt.Sprintf("user:guess%d", i)) {
			t.Fatalf("attempt %d allowed past the address's budget", i+1)
		}
	}
	if len(l.limiters) != keys {
		t.Fatalf("the limiter holds %d keys after 997 refused attempts, want %d", len(l.limiters), keys)
	}
	if !l.allow("addr:10.0.0.10", "user:mia") {
		t.Fatal("another client was refused")
	}
}

func TestClientKey_IPv6ClientsAreKeyedByTheirSlash64(t *testing.T) {
	a := clientKey(&http.Request{RemoteAddr: "[2001:db8:1:2:aaaa::1]:443"})
	b := clientKey(&http.Request{RemoteAddr: "[2001:db8:1:2:bbbb::7]:443"})
	c := clientKey(&http.Request{RemoteAddr: "[2001:db8:1:3::1]:443"})
	if a != b || a != "addr:2001:db8:1:2::/64" {
		t.Errorf("one /64 gave keys %q and %q", a, b)
	}
	if a == c {
		t.Errorf("two /64s share the key %q", a)
	}
}
