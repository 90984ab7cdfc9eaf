package main

import (
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxLimiterKeys bounds the remembered client addresses, persons and user
// names. Past it, the least recently used are forgotten, never refused: a
// forgotten client starts with a full budget again, which costs an
// attacker with that many addresses nothing they did not have.
const maxLimiterKeys = 100000

// signInLimiter bounds attempts per key: password sign-ins per client
// address ("addr:"), OIDC starts and callbacks per client address
// ("oidc:"), and OIDC sign-ins per person ("entity:"). Guessing the
// passwords of one user name is bounded by passwordFailures instead.
// Vault's own limits still apply behind it.
type signInLimiter struct {
	mu       sync.Mutex
	limiters *lru[*rate.Limiter]
	limit    rate.Limit
	burst    int
	max      int
	now      func() time.Time
}

func newSignInLimiter(perMinute float64, burst int) *signInLimiter {
	return &signInLimiter{
		limiters: newLRU[*rate.Limiter](),
		limit:    rate.Limit(perMinute / 60),
		burst:    burst,
		max:      maxLimiterKeys,
		now:      time.Now,
	}
}

// allow takes one attempt from the budget of each key in turn and reports
// false at the first key that has none left, without touching the keys
// after it.
func (l *signInLimiter) allow(keys ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, key := range keys {
		entry := l.limiters.get(key)
		if entry == nil {
			for l.limiters.len() >= l.max {
				l.limiters.remove(l.limiters.oldest())
			}
			entry = l.limiters.add(key, rate.NewLimiter(l.limit, l.burst))
		}
		if !entry.value.AllowN(now, 1) {
			return false
		}
	}
	return true
}

// prune forgets keys whose budget has refilled: they behave like new ones.
func (l *signInLimiter) prune() {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, entry := range l.limiters.entries {
		if entry.value.TokensAt(now) >= float64(l.burst) {
			l.limiters.remove(entry)
		}
	}
}

// lru holds values by key in the order they were last used.
type lru[V any] struct {
	entries map[string]*lruEntry[V]
	// head is the least recently used entry, tail the most.
	head, tail *lruEntry[V]
}

type lruEntry[V any] struct {
	key        string
	value      V
	prev, next *lruEntry[V]
}

func newLRU[V any]() *lru[V] { return &lru[V]{entries: map[string]*lruEntry[V]{}} }

func (c *lru[V]) len() int { return len(c.entries) }

// oldest returns the least recently used entry, or nil.
func (c *lru[V]) oldest() *lruEntry[V] { return c.head }

// get returns the entry of key, now the most recently used, or nil.
func (c *lru[V]) get(key string) *lruEntry[V] {
	e := c.entries[key]
	if e != nil {
		c.unlink(e)
		c.push(e)
	}
	return e
}

// add stores a new entry for key (which has none) as the most recently used.
func (c *lru[V]) add(key string, value V) *lruEntry[V] {
	e := &lruEntry[V]{key: key, value: value}
	c.entries[key] = e
	c.push(e)
	return e
}

// touch makes e the most recently used entry.
func (c *lru[V]) touch(e *lruEntry[V]) {
	if c.entries[e.key] == e {
		c.unlink(e)
		c.push(e)
	}
}

// remove deletes e, if it is still held.
func (c *lru[V]) remove(e *lruEntry[V]) {
	if e == nil || c.entries[e.key] != e {
		return
	}
	delete(c.entries, e.key)
	c.unlink(e)
}

func (c *lru[V]) push(e *lruEntry[V]) {
	e.prev, e.next = c.tail, nil
	if c.tail != nil {
		c.tail.next = e
	} else {
		c.head = e
	}
	c.tail = e
}

func (c *lru[V]) unlink(e *lruEntry[V]) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		c.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		c.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

// clientResolver tells who the client of a request is. Without trusted
// proxies it is the connecting address. Behind reverse proxies listed in
// trusted, it is the right-most address of the proxy header that is not a
// trusted proxy: each proxy appends the address it was connected from, so
// entries to the right of the last trusted one were written by trusted
// proxies and everything to the left of it may be made up by the client.
type clientResolver struct {
	trusted []netip.Prefix
	header  string // "x-forwarded-for" or "forwarded"
}

// key is the limiter key of the request's client address; an IPv6 client
// is keyed by its /64, the block one host is usually given, so that
// stepping through addresses does not buy new budgets.
func (c clientResolver) key(r *http.Request) string {
	addr, ok := parseHostPort(r.RemoteAddr)
	if !ok {
		return "addr:" + r.RemoteAddr
	}
	if c.isTrusted(addr) {
		if client, found := c.fromHeader(r.Header); found {
			addr = client
		}
	}
	if addr.Is6() {
		return "addr:" + netip.PrefixFrom(addr, 64).Masked().String()
	}
	return "addr:" + addr.String()
}

func (c clientResolver) isTrusted(addr netip.Addr) bool {
	for _, prefix := range c.trusted {
		if prefix.Contains(addr) {
			return true
		}
	}
	return false
}

// fromHeader walks the proxy header from the right and returns the first
// address that is not a trusted proxy; when all are, the left-most. An
// entry that is no address ("unknown", an obfuscated identifier) stops the
// walk without an answer: the request is then keyed by the proxy itself.
func (c clientResolver) fromHeader(h http.Header) (netip.Addr, bool) {
	var entries []string
	if c.header == "forwarded" {
		entries = forwardedFor(h.Values("Forwarded"))
	} else {
		for _, line := range h.Values("X-Forwarded-For") {
			entries = append(entries, strings.Split(line, ",")...)
		}
	}
	var last netip.Addr
	for i := len(entries) - 1; i >= 0; i-- {
		addr, ok := parseHostPort(strings.TrimSpace(entries[i]))
		if !ok {
			return netip.Addr{}, false
		}
		if !c.isTrusted(addr) {
			return addr, true
		}
		last = addr
	}
	return last, last.IsValid()
}

// forwardedFor returns the for= parameter of each element of RFC 7239
// Forwarded header lines, in order ("" for an element without one).
func forwardedFor(lines []string) []string {
	var out []string
	for _, line := range lines {
		for _, element := range strings.Split(line, ",") {
			value := ""
			for _, pair := range strings.Split(element, ";") {
				k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
				if ok && strings.EqualFold(k, "for") {
					value = strings.Trim(v, `"`)
				}
			}
			out = append(out, value)
		}
	}
	return out
}

// parseHostPort parses "192.0.2.7", "192.0.2.7:443", "2001:db8::1" or
// "[2001:db8::1]:443"; IPv4-mapped IPv6 addresses become IPv4.
func parseHostPort(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if addr, err := netip.ParseAddr(s); err == nil && addr.Zone() == "" {
		return addr.Unmap(), true
	}
	return netip.Addr{}, false
}

// passwordFailures keeps, per user name, the wrong passwords the portal let
// through to Vault, mirroring Vault's userpass lockout counter (which
// counts failed logins per user name, from wherever, and forgets them
// after lockout_counter_reset without one): the portal lets at most
// threshold-1 through, so that attempts through the portal alone never
// lock an account in Vault. Only attempts with a valid sign-in form count,
// so forged requests cost no one anything.
//
// So that a stranger cannot spend them all and keep the person out, they
// are shared out: browsers that have not signed in with the user name
// before ("strangers") together get all but one, and one client address
// (network) of them all but one of those; the last is kept for browsers
// that have signed in with it (knownBrowser). With Vault's default
// threshold of 5: four in all, three for strangers, two from one network.
type passwordFailures struct {
	mu    sync.Mutex
	names *lru[*nameFailures] // by lower-case user name, least recently used first
	// allowed is Vault's threshold - 1; strangers and perClient its shares.
	allowed, strangers, perClient int
	reset                         time.Duration
	now                           func() time.Time
	// max bounds the user names held; past it, the least recently used is
	// forgotten (evicted counts those Vault still counts), never refused.
	max     int
	evicted int
}

// nameFailures are one user name's wrong passwords within the reset period
// and its attempts under way: at most allowed in all.
type nameFailures struct {
	spent []*passwordAttempt
	last  time.Time // the last wrong password
}

// passwordAttempt is one attempt let through to Vault.
type passwordAttempt struct {
	key    string // the user name, lower case
	client string // the client's limiter key
	known  bool   // from a browser that signed in with the user name before
	failed bool   // Vault said the password is wrong (else: under way)
}

// refusal says which share of a user name's wrong passwords is used up.
type refusal int

const (
	refusedNone      refusal = iota
	refusedAll               // every one Vault allows
	refusedStrangers         // those of browsers new to the user name
	refusedClient            // those of this client's network
)

func newPasswordFailures(threshold int, reset time.Duration) *passwordFailures {
	allowed := threshold - 1
	strangers := max(allowed-1, 1)
	perClient := max(strangers-1, 1)
	return &passwordFailures{names: newLRU[*nameFailures](), allowed: allowed, strangers: strangers, perClient: perClient,
		reset: reset, now: time.Now, max: maxLimiterKeys}
}

// begin reserves an attempt for user from client (a browser that signed in
// with user before if known), counting it as a wrong password until end
// says otherwise, so that concurrent attempts cannot overshoot. When the
// attempt's share is used up it returns nil, which share, and how long
// until Vault (and the portal) forget the wrong passwords.
func (f *passwordFailures) begin(user, client string, known bool) (*passwordAttempt, refusal, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	key := strings.ToLower(user)
	entry := f.names.get(key)
	if entry == nil {
		for f.names.len() >= f.max {
			oldest := f.names.oldest()
			if !f.expiredLocked(oldest.value, now) {
				f.evicted++
			}
			f.names.remove(oldest)
		}
		entry = f.names.add(key, &nameFailures{})
	}
	rec := entry.value
	if f.expiredLocked(rec, now) {
		rec.spent = slices.DeleteFunc(rec.spent, func(a *passwordAttempt) bool { return a.failed })
	}
	strangers, fromClient := 0, 0
	for _, a := range rec.spent {
		if !a.known {
			strangers++
			if a.client == client {
				fromClient++
			}
		}
	}
	why := refusedNone
	switch {
	case len(rec.spent) >= f.allowed:
		why = refusedAll
	case !known && strangers >= f.strangers:
		why = refusedStrangers
	case !known && fromClient >= f.perClient:
		why = refusedClient
	}
	if why != refusedNone {
		wait := time.Minute // only attempts under way
		if !rec.last.IsZero() {
			wait = rec.last.Add(f.reset).Sub(now)
		}
		return nil, why, wait
	}
	a := &passwordAttempt{key: key, client: client, known: known}
	rec.spent = append(rec.spent, a)
	return a, refusedNone, 0
}

// expiredLocked reports whether Vault has forgotten rec's wrong passwords.
func (f *passwordFailures) expiredLocked(rec *nameFailures, now time.Time) bool {
	return !rec.last.IsZero() && !now.Before(rec.last.Add(f.reset))
}

// end settles an attempt: failed when Vault said the password is wrong;
// a sign-in forgets the user name's wrong passwords, as Vault does.
func (f *passwordFailures) end(a *passwordAttempt, failed, signedIn bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	entry := f.names.get(a.key)
	if entry == nil || !slices.Contains(entry.value.spent, a) {
		return // forgotten meanwhile: evicted, or a sign-in reset it
	}
	rec := entry.value
	switch {
	case failed:
		a.failed = true
		rec.last = f.now()
	case signedIn:
		rec.spent = slices.DeleteFunc(rec.spent, func(other *passwordAttempt) bool { return other == a || other.failed })
		rec.last = time.Time{}
	default:
		rec.spent = slices.DeleteFunc(rec.spent, func(other *passwordAttempt) bool { return other == a })
	}
	if len(rec.spent) == 0 {
		f.names.remove(entry)
	}
}

// prune forgets user names whose wrong passwords Vault has forgotten.
func (f *passwordFailures) prune() {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	for _, entry := range f.names.entries {
		rec := entry.value
		if f.expiredLocked(rec, now) {
			rec.spent = slices.DeleteFunc(rec.spent, func(a *passwordAttempt) bool { return a.failed })
		}
		if len(rec.spent) == 0 {
			f.names.remove(entry)
		}
	}
}
