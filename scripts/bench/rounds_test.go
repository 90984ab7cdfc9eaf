package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
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
