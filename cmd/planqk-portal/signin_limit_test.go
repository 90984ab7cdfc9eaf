package main

import (
	"fmt"
	"net/http"
	"net/netip"
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
	direct := clientResolver{header: "x-forwarded-for"}
	r := &http.Request{RemoteAddr: "192.0.2.7:53412", Header: http.Header{"X-Forwarded-For": {"198.51.100.1"}}}
	if got := direct.key(r); got != "addr:192.0.2.7" {
		t.Errorf("without trusted proxies the header is ignored: %q", got)
	}
	if got := direct.key(&http.Request{RemoteAddr: "[::ffff:192.0.2.7]:1"}); got != "addr:192.0.2.7" {
		t.Errorf("IPv4-mapped: %q", got)
	}
}

// Behind trusted proxies the client is the right-most address of the
// proxy header that is not a trusted proxy: what the client prepends
// itself never counts, and from anyone else the header is ignored.
func TestClientKey_behindTrustedProxies(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.2/32")}
	xff := clientResolver{trusted: trusted, header: "x-forwarded-for"}
	fwd := clientResolver{trusted: trusted, header: "forwarded"}
	cases := []struct {
		name     string
		resolver clientResolver
		remote   string
		header   http.Header
		want     string
	}{
		{"one proxy", xff, "127.0.0.2:5000", http.Header{"X-Forwarded-For": {"198.51.100.7"}}, "addr:198.51.100.7"},
		{"client's own entries ignored", xff, "127.0.0.2:5000", http.Header{"X-Forwarded-For": {"1.2.3.4, 5.6.7.8, 198.51.100.7"}}, "addr:198.51.100.7"},
		{"several header lines", xff, "127.0.0.2:5000", http.Header{"X-Forwarded-For": {"1.2.3.4", "198.51.100.7"}}, "addr:198.51.100.7"},
		{"chain of trusted proxies", xff, "127.0.0.2:5000", http.Header{"X-Forwarded-For": {"1.2.3.4, 198.51.100.7, 10.1.2.3"}}, "addr:198.51.100.7"},
		{"all trusted: the left-most", xff, "127.0.0.2:5000", http.Header{"X-Forwarded-For": {"10.9.9.9, 10.1.2.3"}}, "addr:10.9.9.9"},
		{"with a port", xff, "127.0.0.2:5000", http.Header{"X-Forwarded-For": {"198.51.100.7:4711"}}, "addr:198.51.100.7"},
		{"IPv6 by /64", xff, "127.0.0.2:5000", http.Header{"X-Forwarded-For": {"2001:db8:1:2:aaaa::1"}}, "addr:2001:db8:1:2::/64"},
		{"no header: the proxy", xff, "127.0.0.2:5000", http.Header{}, "addr:127.0.0.2"},
		{"garbage: the proxy", xff, "127.0.0.2:5000", http.Header{"X-Forwarded-For": {"1.2.3.4, nonsense"}}, "addr:127.0.0.2"},
		{"untrusted sender", xff, "127.0.0.1:5000", http.Header{"X-Forwarded-For": {"198.51.100.7"}}, "addr:127.0.0.1"},
		{"other header ignored", xff, "127.0.0.2:5000", http.Header{"Forwarded": {"for=1.2.3.4"}, "X-Forwarded-For": {"198.51.100.7"}}, "addr:198.51.100.7"},
		{"forwarded", fwd, "127.0.0.2:5000", http.Header{"Forwarded": {`for=1.2.3.4, for=198.51.100.7;proto=https;by=10.0.0.1`}}, "addr:198.51.100.7"},
		{"forwarded IPv6 quoted", fwd, "10.0.0.1:5000", http.Header{"Forwarded": {`for="[2001:db8:cafe::17]:4711"`}}, "addr:2001:db8:cafe::/64"},
		{"forwarded unknown: the proxy", fwd, "10.0.0.1:5000", http.Header{"Forwarded": {"for=unknown"}}, "addr:10.0.0.1"},
		{"forwarded ignores X-Forwarded-For", fwd, "10.0.0.1:5000", http.Header{"X-Forwarded-For": {"1.2.3.4"}, "Forwarded": {"for=198.51.100.7"}}, "addr:198.51.100.7"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.resolver.key(&http.Request{RemoteAddr: c.remote, Header: c.header}); got != c.want {
				t.Errorf("key %q, want %q", got, c.want)
			}
		})
	}
}

// The portal lets at most threshold-1 wrong passwords per user name reach
// Vault within the reset period, counting attempts under way, so that it
// never locks an account; a sign-in resets the count, as in Vault.
func TestPasswordFailures(t *testing.T) {
	now := time.Date(2027, 1, 1, 12, 0, 0, 0, time.UTC)
	f := newPasswordFailures(5, 15*time.Minute)
	f.now = func() time.Time { return now }

	for i := 0; i < 3; i++ {
		if ok, _ := f.begin("Olivia"); !ok {
			t.Fatalf("attempt %d refused", i+1)
		}
		f.end("olivia", true, false)
	}
	// Two at once: one may go, the second would make five.
	if ok, _ := f.begin("olivia"); !ok {
		t.Fatal("the fourth attempt was refused")
	}
	if ok, _ := f.begin("OLIVIA"); ok {
		t.Fatal("a fifth attempt went while the fourth was under way")
	}
	f.end("olivia", true, false)
	now = now.Add(5 * time.Minute)
	ok, wait := f.begin("olivia")
	if ok || wait != 10*time.Minute {
		t.Fatalf("after four wrong passwords: %v, wait %s; want refused for 10m", ok, wait)
	}
	if ok, _ := f.begin("max"); !ok {
		t.Fatal("another user name was refused")
	}
	f.end("max", false, true)
	// Vault forgets after the reset period without a failure; so does the portal.
	now = now.Add(10 * time.Minute)
	if ok, _ := f.begin("olivia"); !ok {
		t.Fatal("refused after the reset period")
	}
	f.end("olivia", false, true) // signed in: the count starts over
	for i := 0; i < 4; i++ {
		if ok, _ := f.begin("olivia"); !ok {
			t.Fatalf("after a sign-in, attempt %d refused", i+1)
		}
		f.end("olivia", i < 3, false) // an error that is not a wrong password does not count
	}
	now = now.Add(time.Hour)
	f.prune()
	if len(f.users) != 0 {
		t.Fatalf("%d user names kept after the reset period", len(f.users))
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
	var direct clientResolver
	a := direct.key(&http.Request{RemoteAddr: "[2001:db8:1:2:aaaa::1]:443"})
	b := direct.key(&http.Request{RemoteAddr: "[2001:db8:1:2:bbbb::7]:443"})
	c := direct.key(&http.Request{RemoteAddr: "[2001:db8:1:3::1]:443"})
	if a != b || a != "addr:2001:db8:1:2::/64" {
		t.Errorf("one /64 gave keys %q and %q", a, b)
	}
	if a == c {
		t.Errorf("two /64s share the key %q", a)
	}
}
