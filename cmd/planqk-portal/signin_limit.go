package main

import (
	"net"
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

// signInLimiter bounds sign-in attempts per client address and per user
// name, so that guessing passwords costs time whichever of the two an
// attacker varies. Vault's own limits still apply behind it.
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

// clientKey is the limiter key of the request's client address; an IPv6
// client is keyed by its /64, the block one host is usually given, so that
// stepping through addresses does not buy new budgets. Behind a reverse
// proxy every request comes from the proxy: put the limit there.
func clientKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if addr, err := netip.ParseAddr(host); err == nil && addr.Is6() && !addr.Is4In6() {
		return "addr:" + netip.PrefixFrom(addr, 64).Masked().String()
	}
	return "addr:" + host
}

// userKey is the limiter key of a user name (case-insensitive, as userpass).
func userKey(name string) string { return "user:" + strings.ToLower(name) }
