package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// operation is one kind of request under load, and what it is compared to.
type operation struct {
	name       string
	reference  bool     // a reference, not an engine operation
	comparedTo []string // reference operations, the first being the primary one
	target     float64  // the ratio to comparedTo[0] it must reach; 0 = none set
	okStatus   int
	targeter   vegeta.Targeter
}

// Reference names.
const (
	kvWriteUser   = "KV v2 write (user token)"
	kvReadService = "KV v2 read (service token)"
	kvReadUser    = "KV v2 read (user token)"
	noopService   = "no-op plugin read (service token)"
	noopUser      = "no-op plugin read (user token)"
	// A write carrying a body, as verify must: Vault core makes one more
	// call into a plugin for every write (its existence check).
	noopWriteService = "no-op plugin write (service token)"
)

func operations(f *fixtures) []operation {
	base := f.server.Addr + "/v1/"
	var counter atomic.Uint64
	next := func() uint64 { return counter.Add(1) }
	header := func(token string) http.Header { return http.Header{"X-Vault-Token": {token}} }
	issuer := func(i uint64) (string, string) {
		n := int(i % uint64(len(f.issuers)))
		return f.issuers[n], f.issuerTokens[n]
	}
	target := func(method, url string, token string, body interface{}) vegeta.Targeter {
		var payload []byte
		if body != nil {
			payload, _ = json.Marshal(body)
		}
		return func(t *vegeta.Target) error {
			t.Method, t.URL, t.Header, t.Body = method, url, header(token), payload
			return nil
		}
	}

	return []operation{
		{name: kvWriteUser, reference: true, okStatus: 200, targeter: func(t *vegeta.Target) error {
			i := next()
			_, token := issuer(i)
			t.Method, t.URL, t.Header = "POST", fmt.Sprintf("%skv/data/bench-%d", base, i%1000), header(token)
			t.Body = []byte(`{"data":{"value":"bench"}}`)
			return nil
		}},
		{name: kvReadService, reference: true, okStatus: 200, targeter: target("GET", base+"kv/data/bench-1", f.serviceToken, nil)},
		{name: kvReadUser, reference: true, okStatus: 200, targeter: target("GET", base+"kv/data/bench-1", f.resolver, nil)},
		{name: noopService, reference: true, okStatus: 200, targeter: target("GET", base+"noop/noop", f.serviceToken, nil)},
		{name: noopUser, reference: true, okStatus: 200, targeter: target("GET", base+"noop/noop", f.resolver, nil)},
		{name: noopWriteService, reference: true, okStatus: 200, targeter: target("POST", base+"noop/noop", f.serviceToken, map[string]string{"token": f.garbledPAT})},

		{name: "PAT issue (lease, creds)", comparedTo: []string{kvWriteUser, noopUser}, target: 0.8, okStatus: 200, targeter: func(t *vegeta.Target) error {
			user, token := issuer(next())
			t.Method, t.URL, t.Header, t.Body = "GET", base+mount+"/users/"+user+"/creds/runtime", header(token), nil
			return nil
		}},
		{name: "PAT issue (named)", comparedTo: []string{kvWriteUser, noopUser}, target: 0.8, okStatus: 200, targeter: func(t *vegeta.Target) error {
			i := next()
			user, token := issuer(i)
			t.Method, t.URL, t.Header, t.Body = "POST", fmt.Sprintf("%s%s/users/%s/tokens/b%d", base, mount, user, i), header(token), nil
			return nil
		}},
		{name: "PAT verify (valid)", comparedTo: []string{noopService, noopWriteService, kvReadService}, target: 0.9, okStatus: 200,
			targeter: target("POST", base+mount+"/verify", f.serviceToken, map[string]string{"token": f.validPAT})},
		{name: "PAT verify (bad checksum)", comparedTo: []string{noopService, noopWriteService, kvReadService}, target: 0.95, okStatus: 200,
			targeter: target("POST", base+mount+"/verify", f.serviceToken, map[string]string{"token": f.garbledPAT})},
		{name: "provider-token write", comparedTo: []string{kvWriteUser, noopUser}, okStatus: 200, targeter: func(t *vegeta.Target) error {
			user, token := issuer(next())
			t.Method, t.URL, t.Header = "POST", base+mount+"/users/"+user+"/provider-tokens/ionq", header(token)
			t.Body = []byte(`{"api_key":"ionq-bench-user-key-0000"}`)
			return nil
		}},
		{name: "resolve (org token)", comparedTo: []string{noopUser, kvReadUser}, target: 0.85, okStatus: 200,
			targeter: target("GET", base+mount+"/resolve/ionq?org=acme", f.resolver, nil)},
		{name: "PAT list (1,000 tokens)", comparedTo: []string{kvReadUser, noopUser}, okStatus: 200,
			targeter: target("LIST", base+mount+"/users/lister/tokens", f.lister, nil)},
	}
}

// opResult accumulates an operation's rounds.
type opResult struct {
	op        operation
	metrics   *vegeta.Metrics
	successes uint64
	failures  uint64
	elapsed   time.Duration
	errors    map[string]int
}

// roundResult is one attack's outcome.
type roundResult struct {
	results   []*vegeta.Result
	elapsed   time.Duration
	successes uint64
}

func (r *opResult) add(round roundResult) {
	if r.errors == nil {
		r.errors = map[string]int{}
	}
	for _, res := range round.results {
		r.metrics.Add(res)
		if int(res.Code) != r.op.okStatus {
			r.failures++
			r.errors[fmt.Sprintf("%d %s", res.Code, res.Error)]++
		}
	}
	r.successes += round.successes
	r.elapsed += round.elapsed
}

func (r *opResult) opsPerSecond() float64 {
	if r.elapsed == 0 {
		return 0
	}
	return float64(r.successes) / r.elapsed.Seconds()
}

// attack runs op at full speed with c concurrent clients for d.
func attack(op operation, d time.Duration, c int) roundResult {
	attacker := vegeta.NewAttacker(
		vegeta.Workers(uint64(c)), vegeta.MaxWorkers(uint64(c)),
		vegeta.Connections(c), vegeta.KeepAlive(true), vegeta.Timeout(30*time.Second),
	)
	var round roundResult
	start := time.Now()
	for res := range attacker.Attack(op.targeter, vegeta.Rate{Freq: 0}, d, op.name) {
		res.Body = nil
		round.results = append(round.results, res)
		if int(res.Code) == op.okStatus {
			round.successes++
		}
	}
	round.elapsed = time.Since(start)
	return round
}
