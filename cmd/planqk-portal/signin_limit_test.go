package main

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
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
	if l.limiters.len() != 0 {
		t.Fatalf("%d keys kept after refilling", l.limiters.len())
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
	begin := func(user string) *passwordAttempt {
		t.Helper()
		a, why, _ := f.begin(user, "addr:10.0.0.1", true)
		if (a == nil) != (why != refusedNone) {
			t.Fatalf("attempt %v, refusal %d", a, why)
		}
		return a
	}

	for i := 0; i < 3; i++ {
		a := begin("Olivia")
		if a == nil {
			t.Fatalf("attempt %d refused", i+1)
		}
		f.end(a, true, false)
	}
	// Two at once: one may go, the second would make five.
	fourth := begin("olivia")
	if fourth == nil {
		t.Fatal("the fourth attempt was refused")
	}
	if begin("OLIVIA") != nil {
		t.Fatal("a fifth attempt went while the fourth was under way")
	}
	f.end(fourth, true, false)
	now = now.Add(5 * time.Minute)
	a, why, wait := f.begin("olivia", "addr:10.0.0.1", true)
	if a != nil || why != refusedAll || wait != 10*time.Minute {
		t.Fatalf("after four wrong passwords: %v, %d, wait %s; want refused (all) for 10m", a, why, wait)
	}
	other := begin("max")
	if other == nil {
		t.Fatal("another user name was refused")
	}
	f.end(other, false, true)
	// Vault forgets after the reset period without a failure; so does the portal.
	now = now.Add(10 * time.Minute)
	a = begin("olivia")
	if a == nil {
		t.Fatal("refused after the reset period")
	}
	f.end(a, false, true) // signed in: the count starts over
	for i := 0; i < 4; i++ {
		a := begin("olivia")
		if a == nil {
			t.Fatalf("after a sign-in, attempt %d refused", i+1)
		}
		f.end(a, i < 3, false) // an error that is not a wrong password does not count
	}
	now = now.Add(time.Hour)
	f.prune()
	if f.names.len() != 0 {
		t.Fatalf("%d user names kept after the reset period", f.names.len())
	}
}

// Strangers (browsers that never signed in with the user name) share all
// but one of the wrong passwords, one network all but one of theirs; a
// sign-in forgets them all, also while another attempt is under way,
// whose wrong password still counts.
func TestPasswordFailures_shares(t *testing.T) {
	cases := []struct {
		threshold                     int
		allowed, strangers, perClient int
	}{
		{5, 4, 3, 2},
		{10, 9, 8, 7},
		{3, 2, 1, 1},
		{2, 1, 1, 1},
	}
	for _, c := range cases {
		f := newPasswordFailures(c.threshold, 15*time.Minute)
		if f.allowed != c.allowed || f.strangers != c.strangers || f.perClient != c.perClient {
			t.Errorf("threshold %d: shares %d/%d/%d, want %d/%d/%d", c.threshold, f.allowed, f.strangers, f.perClient, c.allowed, c.strangers, c.perClient)
		}
	}

	f := newPasswordFailures(5, 15*time.Minute)
	type step struct {
		client string
		known  bool
		want   refusal
	}
	for i, s := range []step{
		{"addr:a", false, refusedNone},
		{"addr:a", false, refusedNone},
		{"addr:a", false, refusedClient},
		{"addr:b", false, refusedNone},
		{"addr:c", false, refusedStrangers},
		{"addr:a", true, refusedNone}, // a known browser, even from a's network
		{"addr:d", true, refusedAll},
	} {
		a, why, _ := f.begin("mia", s.client, s.known)
		if why != s.want {
			t.Fatalf("step %d: refusal %d, want %d", i+1, why, s.want)
		}
		if a != nil {
			f.end(a, true, false)
		}
	}

	// A sign-in while a stranger's attempt is under way: the wrong
	// passwords before are forgotten, the one under way still counts.
	g := newPasswordFailures(5, 15*time.Minute)
	for i := 0; i < 2; i++ {
		a, _, _ := g.begin("mia", "addr:a", false)
		g.end(a, true, false)
	}
	pending, _, _ := g.begin("mia", "addr:b", false)
	person, _, _ := g.begin("mia", "addr:c", true)
	g.end(person, false, true)
	g.end(pending, true, false)
	if got := len(g.names.get("mia").value.spent); got != 1 {
		t.Fatalf("after a sign-in and a wrong password under way: %d counted, want 1", got)
	}
}

// A full table forgets the least recently used user name and never
// refuses (it refused every new name, and so every sign-in).
func TestPasswordFailures_aFullTableRefusesNobody(t *testing.T) {
	now := time.Date(2027, 1, 1, 12, 0, 0, 0, time.UTC)
	f := newPasswordFailures(5, 15*time.Minute)
	f.now = func() time.Time { return now }
	f.max = 3
	for _, user := range []string{"a", "b", "c"} {
		a, _, _ := f.begin(user, "addr:x", false)
		f.end(a, true, false)
		now = now.Add(time.Second)
	}
	// a is used again: b is now the least recently used.
	if a, _, _ := f.begin("a", "addr:y", false); a == nil {
		t.Fatal("a refused")
	} else {
		f.end(a, true, false)
	}
	a, why, _ := f.begin("mia", "addr:z", false)
	if a == nil {
		t.Fatalf("a new user name with a full table: refused (%d)", why)
	}
	f.end(a, true, false)
	if f.names.len() != 3 || f.names.get("b") != nil || f.names.get("a") == nil || f.evicted != 1 {
		t.Fatalf("after one eviction: %d names, b kept: %v, a kept: %v, evicted %d", f.names.len(), f.names.get("b") != nil, f.names.get("a") != nil, f.evicted)
	}
	// Names Vault has forgotten are not counted as evictions.
	now = now.Add(time.Hour)
	for _, user := range []string{"d", "e", "f"} {
		if a, _, _ := f.begin(user, "addr:x", false); a == nil {
			t.Fatalf("%s refused", user)
		}
	}
	if f.evicted != 1 {
		t.Fatalf("evicted %d, want 1", f.evicted)
	}
}

// A full limiter forgets the least recently used key and never refuses a
// new one (it refused every new client, and so everyone).
func TestSignInLimiter_aFullTableRefusesNobody(t *testing.T) {
	l := newSignInLimiter(6, 3)
	l.max = 3
	for _, key := range []string{"addr:a", "addr:b", "addr:c"} {
		for l.allow(key) {
		}
	}
	if l.allow("addr:a") {
		t.Fatal("addr:a was allowed past its budget")
	}
	if !l.allow("addr:new") {
		t.Fatal("a new client was refused with a full table")
	}
	if l.limiters.len() != 3 || l.limiters.get("addr:b") != nil {
		t.Fatalf("%d keys, addr:b kept: %v; want 3, the least recently used (addr:b) forgotten", l.limiters.len(), l.limiters.get("addr:b") != nil)
	}
}

func TestLRU(t *testing.T) {
	c := newLRU[int]()
	for i, key := range []string{"a", "b", "c", "d"} {
		c.add(key, i)
	}
	c.get("a")
	c.remove(c.get("c"))
	c.touch(c.entries["b"])
	var order []string
	for e := c.oldest(); e != nil; e = e.next {
		order = append(order, e.key)
	}
	if got := strings.Join(order, ","); got != "d,a,b" || c.len() != 3 || c.tail.key != "b" {
		t.Fatalf("order %s (len %d, tail %s), want d,a,b", got, c.len(), c.tail.key)
	}
	for c.len() > 0 {
		c.remove(c.oldest())
	}
	if c.head != nil || c.tail != nil {
		t.Fatal("an empty list keeps entries")
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
	keys := l.limiters.len()
	for i := 3; i < 1000; i++ {
		if l.allow("addr:10.0.0.9", fmt.Sprintf("user:guess%d", i)) {
			t.Fatalf("attempt %d allowed past the address's budget", i+1)
		}
	}
	if l.limiters.len() != keys {
		t.Fatalf("the limiter holds %d keys after 997 refused attempts, want %d", l.limiters.len(), keys)
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
