package main

import (
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxLimiterKeys bounds the remembered addresses and user names; past it,
// attempts under new keys are refused until old ones are pruned.
const maxLimiterKeys = 100000

// signInLimiter bounds attempts per key: password sign-ins per client
// address ("addr:"), OIDC starts and callbacks per client address
// ("oidc:"), and OIDC sign-ins per person ("entity:"). Guessing the
// passwords of one user name from many addresses is bounded by
// passwordFailures instead. Vault's own limits still apply behind it.
type signInLimiter struct {
	mu       sync.Mutex
	limiters map[string]*rate.Limiter
	limit    rate.Limit
	burst    int
	now      func() time.Time
}

func newSignInLimiter(perMinute float64, burst int) *signInLimiter {
	return &signInLimiter{
		limiters: map[string]*rate.Limiter{},
		limit:    rate.Limit(perMinute / 60),
		burst:    burst,
		now:      time.Now,
	}
}

// allow takes one attempt from the budget of each key in turn and reports
// false at the first key that has none left, without touching the keys
// after it: a client address over its budget (passed first) cannot make
// the limiter remember new user names, which would fill it for everyone.
func (l *signInLimiter) allow(keys ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, key := range keys {
		limiter, ok := l.limiters[key]
		if !ok {
			if len(l.limiters) >= maxLimiterKeys {
				l.pruneLocked(now)
				if len(l.limiters) >= maxLimiterKeys {
					return false
				}
			}
			limiter = rate.NewLimiter(l.limit, l.burst)
			l.limiters[key] = limiter
		}
		if !limiter.AllowN(now, 1) {
			return false
		}
	}
	return true
}

// prune forgets keys whose budget has refilled: they behave like new ones.
func (l *signInLimiter) prune() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pruneLocked(l.now())
}

func (l *signInLimiter) pruneLocked(now time.Time) {
	for key, limiter := range l.limiters {
		if limiter.TokensAt(now) >= float64(l.burst) {
			delete(l.limiters, key)
		}
	}
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
// counts failed logins and forgets them after lockout_counter_reset
// without one): the portal lets at most threshold-1 through, so that
// attempts through the portal alone never lock an account in Vault. Only
// attempts with a valid sign-in form count, so forged requests cost no one
// anything.
type passwordFailures struct {
	mu       sync.Mutex
	users    map[string]*failureRecord
	allowed  int // wrong passwords let through: Vault's threshold - 1
	reset    time.Duration
	now      func() time.Time
	maxUsers int
}

type failureRecord struct {
	failed   int
	inFlight int
	last     time.Time
}

func newPasswordFailures(threshold int, reset time.Duration) *passwordFailures {
	return &passwordFailures{users: map[string]*failureRecord{}, allowed: threshold - 1, reset: reset, now: time.Now, maxUsers: maxLimiterKeys}
}

// begin reserves an attempt for user, counting it as a failure until end
// says otherwise, so that concurrent attempts cannot overshoot. When the
// user name has used its wrong passwords, it returns false and how long
// until Vault (and the portal) forget them.
func (f *passwordFailures) begin(user string) (bool, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	key := strings.ToLower(user)
	rec := f.users[key]
	if rec == nil {
		if len(f.users) >= f.maxUsers {
			f.pruneLocked(now)
			if len(f.users) >= f.maxUsers {
				return false, time.Minute
			}
		}
		rec = &failureRecord{}
		f.users[key] = rec
	}
	if rec.failed > 0 && !now.Before(rec.last.Add(f.reset)) {
		rec.failed = 0
	}
	if rec.failed+rec.inFlight >= f.allowed {
		wait := time.Minute
		if rec.failed > 0 {
			wait = rec.last.Add(f.reset).Sub(now)
		}
		return false, wait
	}
	rec.inFlight++
	return true, 0
}

// end settles an attempt begun for user: failed when Vault said the
// password is wrong; a sign-in resets the count, as it does in Vault.
func (f *passwordFailures) end(user string, failed, signedIn bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := strings.ToLower(user)
	rec := f.users[key]
	if rec == nil {
		return
	}
	rec.inFlight--
	switch {
	case failed:
		rec.failed++
		rec.last = f.now()
	case signedIn:
		rec.failed = 0
	}
	if rec.failed == 0 && rec.inFlight == 0 {
		delete(f.users, key)
	}
}

// prune forgets user names whose wrong passwords Vault has forgotten.
func (f *passwordFailures) prune() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pruneLocked(f.now())
}

func (f *passwordFailures) pruneLocked(now time.Time) {
	for key, rec := range f.users {
		if rec.inFlight == 0 && !now.Before(rec.last.Add(f.reset)) {
			delete(f.users, key)
		}
	}
}
