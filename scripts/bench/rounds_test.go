package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	vegeta "github.com/tsenart/vegeta/v12/lib"
)

func TestEvaluate_countsOnlyRightAnswers(t *testing.T) {
	op := &operation{name: "verify", status: 200, check: checkActive(true, "data")}
	results := []*vegeta.Result{
		{Code: 200, Latency: 1 * time.Millisecond, Body: []byte(`{"data":{"active":true}}`)},
		{Code: 200, Latency: 2 * time.Millisecond, Body: []byte(`{"data":{"active":true}}`)},
		{Code: 200, Latency: 90 * time.Millisecond, Body: []byte(`{"data":{"active":false}}`)},
		{Code: 200, Latency: 80 * time.Millisecond, Body: []byte(`not json`)},
		{Code: 500, Latency: 70 * time.Millisecond, Error: "500 Internal Server Error", Body: []byte(`{"errors":["storage unavailable"]}`)},
		{Code: 0, Latency: 60 * time.Millisecond, Error: "dial tcp: connection refused"},
		{Code: 204, Latency: 50 * time.Millisecond},
	}
	r := evaluate(op, results, 2*time.Second)

	require.Equal(t, uint64(7), r.requests)
	require.Equal(t, uint64(2), r.successes)
	require.Equal(t, uint64(2), r.wrong)
	require.Equal(t, uint64(3), r.failed)
	require.Equal(t, 1.0, r.opsPerSecond(), "2 right answers in 2 s")
	require.Equal(t, []time.Duration{1 * time.Millisecond, 2 * time.Millisecond}, r.latencies, "latencies of right answers only")
	require.Equal(t, map[string]int{"data.active is not true": 2}, r.wrongs)
	require.Equal(t, map[string]int{
		"500 Internal Server Error: storage unavailable": 1,
		"dial tcp: connection refused":                   1,
		"status 204":                                     1,
	}, r.failures)
}

func TestEvaluate_withoutTimeNoThroughput(t *testing.T) {
	require.Equal(t, 0.0, roundFigures{successes: 10}.opsPerSecond())
}

func TestProbeServed_unservedPathsAreUnavailable(t *testing.T) {
	for status, want := range map[int]string{
		http.StatusNotFound:         "n/a: the engine does not serve POST planqk/introspect (404)",
		http.StatusMethodNotAllowed: "n/a: the engine does not serve POST planqk/introspect (405)",
		http.StatusOK:               "",
		http.StatusBadRequest:       "", // served, and measured: a wrong contract shows as failures
	} {
		var asked string
		server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			asked = r.Method + " " + r.URL.Path
			w.WriteHeader(status)
		}))
		op := &operation{name: "introspect", request: "POST planqk/introspect", targeter: func() vegeta.Targeter {
			return func(t *vegeta.Target) error {
				t.Method, t.URL = "POST", server.URL+"/v1/planqk/introspect"
				return nil
			}
		}}
		reason, err := probeServed(context.Background(), op)
		server.Close()
		require.NoError(t, err)
		require.Equal(t, "POST /v1/planqk/introspect", asked)
		require.Equal(t, want, reason, "status %d", status)
	}
}

func TestTopCounts_mostFrequentFirst(t *testing.T) {
	counts := map[string]int{"b": 5, "a": 5, "c": 9, "d": 1}
	require.Equal(t, []string{"9 × c", "5 × a", "5 × b"}, topCounts(counts, 3))
	require.Nil(t, topCounts(nil, 3))
}

func TestSelectOperations_onlyMatchingAreMeasured(t *testing.T) {
	ops := func() []*operation {
		return []*operation{{name: opExchange}, {name: refKVReadService}, {name: opVerify}, {name: opResolveOwn, unavailable: "n/a: not served"}}
	}
	names := func(ops []*operation) []string {
		var measured []string
		for _, op := range (&runner{ops: ops}).available() {
			measured = append(measured, op.name)
		}
		return measured
	}
	require.Equal(t, []string{opExchange, refKVReadService, opVerify}, names(selectOperations(ops(), nil)), "no -ops: all that are served")
	selected := selectOperations(ops(), regexp.MustCompile(`^exchange|KV v2 read|resolve`))
	require.Equal(t, []string{opExchange, refKVReadService}, names(selected))
	require.Equal(t, "n/a: not selected (-ops ^exchange|KV v2 read|resolve)", selected[2].unavailable)
	require.Equal(t, "n/a: not served", selected[3].unavailable, "a reason of its own stays")
}

// A pair's members run at the same time, half the clients each, so a pause
// of the whole server falls on both: their ratio still tells their costs
// apart. Each member keeps its own figures and cleans up its own results.
func TestMeasure_pairRunsItsMembersAtOnce(t *testing.T) {
	var (
		mu       sync.Mutex
		paused   = make(chan struct{})
		inFlight = map[string]int{}
		highest  = map[string]int{}
		together int // the most requests in flight on both paths at once
	)
	close(paused) // not paused until the pause below
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		wait := paused
		inFlight[req.URL.Path]++
		highest[req.URL.Path] = max(highest[req.URL.Path], inFlight[req.URL.Path])
		together = max(together, inFlight["/slow"]+inFlight["/fast"])
		mu.Unlock()
		<-wait
		if req.URL.Path == "/slow" {
			time.Sleep(40 * time.Millisecond)
		} else {
			time.Sleep(20 * time.Millisecond)
		}
		mu.Lock()
		inFlight[req.URL.Path]--
		mu.Unlock()
	}))
	defer server.Close()

	cleaned := map[string][]string{}
	member := func(path string) *operation {
		return &operation{name: path, status: 200,
			targeter: func() vegeta.Targeter {
				return func(t *vegeta.Target) error { t.Method, t.URL = "GET", server.URL+path; return nil }
			},
			cleanup: func(_ context.Context, results []*vegeta.Result) error {
				for _, res := range results {
					cleaned[path] = append(cleaned[path], res.URL)
				}
				return nil
			}}
	}
	pair := pairOf("both", member("/slow"), "slow, paired", member("/fast"), "fast, paired")
	ops := []*operation{pair.pair[0], pair.pair[1], pair}
	r := newRunner(options{rounds: 1, concurrency: 4, duration: 800 * time.Millisecond, seed: 1}, &fixtures{}, ops)

	require.Equal(t, []*operation{pair}, r.available(), "the members are measured only inside the pair")

	go func() { // the whole server pauses for 200 ms in the middle of the window
		time.Sleep(200 * time.Millisecond)
		mu.Lock()
		paused = make(chan struct{})
		pause := paused
		mu.Unlock()
		time.Sleep(200 * time.Millisecond)
		close(pause)
	}()
	require.NoError(t, r.measure(context.Background(), pair))

	require.Equal(t, map[string]int{"/slow": 2, "/fast": 2}, highest, "half the clients each")
	require.Equal(t, 4, together, "both members at the same time")
	slow, fast := r.figures["slow, paired"], r.figures["fast, paired"]
	require.Len(t, slow, 1)
	require.Len(t, fast, 1)
	ratio := slow[0].opsPerSecond() / fast[0].opsPerSecond()
	require.InDelta(t, 0.5, ratio, 0.12, "twice the cost per request reads as half the throughput, the pause notwithstanding")

	require.Len(t, cleaned["/slow"], int(slow[0].requests))
	require.Len(t, cleaned["/fast"], int(fast[0].requests))
	for _, url := range cleaned["/slow"] {
		require.Equal(t, server.URL+"/slow", url, "each member cleans up after its own requests only")
	}

	var names []string
	for _, op := range operationReports(r) {
		names = append(names, op.Name)
	}
	require.Equal(t, []string{"slow, paired", "fast, paired"}, names, "the pair's entry has no figures of its own")
}
