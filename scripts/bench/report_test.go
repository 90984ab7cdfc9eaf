package main

import (
	"encoding/json"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// roundsOf builds one measured attack per round with the given ops/s over 1 s.
func roundsOf(opsPerSecond ...uint64) []roundFigures {
	var rounds []roundFigures
	for _, n := range opsPerSecond {
		rounds = append(rounds, roundFigures{elapsed: time.Second, requests: n, successes: n,
			latencies: []time.Duration{time.Millisecond, 3 * time.Millisecond}})
	}
	return rounds
}

func testRunner() *runner {
	r := &runner{
		o: options{rounds: 3},
		ops: []*operation{
			{name: refNoopWrite, caller: asVerifier, request: "POST noop/noop {token}", reference: true},
			{name: refTokenLookup, caller: asVerifier, request: "POST auth/token/lookup {token}", reference: true},
			{name: opVerify, caller: asVerifier, request: "POST planqk/verify {token}"},
			{name: opVerifyGarbled, caller: asVerifier, request: "POST planqk/verify {token}"},
			{name: opIntrospect, caller: asVerifier, request: "POST planqk/introspect token=…",
				unavailable: "n/a: the engine does not serve POST planqk/introspect token=… (404)"},
		},
		figures: map[string][]roundFigures{
			refNoopWrite:    roundsOf(2000, 1000, 2200),
			refTokenLookup:  roundsOf(4000, 4000, 4000),
			opVerify:        roundsOf(1000, 550, 1000),
			opVerifyGarbled: roundsOf(2100, 1000, 2400),
		},
	}
	r.figures[opVerify][1].failed, r.figures[opVerify][1].failures = 3, map[string]int{"500 Internal Server Error": 3}
	r.figures[opVerify][2].wrong, r.figures[opVerify][2].wrongs = 2, map[string]int{"data.active is not true": 2}
	return r
}

func testReport() *report {
	r := testRunner()
	return &report{
		Date: "2026-01-01T00:00:00Z", Commit: "f6381ae-dirty", Machine: machineFacts{CPU: "Test CPU", Cores: 2, MemoryGiB: 24, OS: "linux/amd64", Go: "go1.26"},
		Vault: "1.21.0", Storage: "dev, in-memory",
		Method:      methodFacts{Concurrency: 16, Duration: "3s", Settle: "500ms", Rounds: 3, Seed: 7, Users: 300, PATsPerUser: 3},
		Operations:  operationReports(r),
		Comparisons: comparisonReports(r, comparisons()[:4]),
	}
}

func TestComparisonReports_perRoundRatiosAndVerdicts(t *testing.T) {
	rep := testReport()
	byPair := map[string]comparisonReport{}
	for _, c := range rep.Comparisons {
		byPair[c.Operation+" / "+c.Reference] = c
	}

	verify := byPair[opVerify+" / "+refNoopWrite]
	require.InDeltaSlice(t, []float64{0.5, 0.55, 1000.0 / 2200}, []float64(verify.PerRound), 1e-12)
	require.InDelta(t, 0.5, verify.Ratio.Median, 1e-12)
	require.Equal(t, verdictMissed, verify.Verdict)
	require.Equal(t, "issue 13", verify.Source)

	garbled := byPair[opVerifyGarbled+" / "+refNoopWrite]
	require.InDelta(t, 1.05, garbled.Ratio.Median, 1e-12)
	require.Equal(t, verdictMet, garbled.Verdict)

	introspect := byPair[opIntrospect+" / "+refNoopWriteForm]
	require.Equal(t, verdictUnmeasured, introspect.Verdict)
	require.Contains(t, introspect.Unavailable, "does not serve POST planqk/introspect")
}

func TestOperationReports_rightAnswersFailuresAndWrongAnswersApart(t *testing.T) {
	rep := testReport()
	var verify operationReport
	for _, op := range rep.Operations {
		if op.Name == opVerify {
			verify = op
		}
	}
	require.Equal(t, 1000.0, verify.OpsPerSec.Median)
	require.Equal(t, 550.0, verify.OpsPerSec.Min)
	require.Equal(t, uint64(2550), verify.Successes)
	require.Equal(t, uint64(3), verify.Failed)
	require.Equal(t, uint64(2), verify.Wrong)
	require.Equal(t, []string{"3 × 500 Internal Server Error"}, verify.Failures)
	require.Equal(t, []string{"2 × data.active is not true"}, verify.WrongAnswers)
	require.Equal(t, 1.0, verify.P50Millis)
	require.Equal(t, 3.0, verify.P99Millis)
}

func TestReport_writesMarkdownJSONAndChart(t *testing.T) {
	rep := testReport()
	md := rep.markdown()
	for _, want := range []string{
		"| verify (POST) | no-op plugin write (JSON body) | 0.50 [0.45–0.55] | ≥ 0.95 (issue 13) | **missed** |",
		"| verify (POST, garbled checksum) | no-op plugin write (JSON body) | 1.05 [1.00–1.09] | ≥ 1.00 (issue 13) | met |",
		"n/a: the engine does not serve POST planqk/introspect token=… (404)",
		"| verify (POST) | service | `POST planqk/verify {token}` | 1000 [550–1000] | 1.00 | 3.00 | 3 | 2 |",
		"verify (POST) failed: 3 × 500 Internal Server Error",
		"verify (POST) wrong answer: 2 × data.active is not true",
		"seed 7", "Test CPU", "Vault 1.21.0", "at commit f6381ae-dirty",
	} {
		require.Contains(t, md, want)
	}

	dir := t.TempDir()
	require.NoError(t, rep.writeJSON(filepath.Join(dir, "bench.json")))
	raw, err := os.ReadFile(filepath.Join(dir, "bench.json"))
	require.NoError(t, err)
	var decoded map[string]interface{}
	require.NoError(t, json.Unmarshal(raw, &decoded), "valid JSON although some figures are unmeasured")
	require.Contains(t, string(raw), `"ratio": null`)
	require.Equal(t, "f6381ae-dirty", decoded["commit"])

	require.NoError(t, rep.writeSVG(filepath.Join(dir, "bench.svg")))
	svg, err := os.ReadFile(filepath.Join(dir, "bench.svg"))
	require.NoError(t, err)
	decoder := xml.NewDecoder(strings.NewReader(string(svg)))
	for {
		_, err := decoder.Token()
		if err == io.EOF {
			break
		}
		require.NoError(t, err, "well-formed SVG")
	}
	require.Contains(t, string(svg), "verify (POST) ÷ no-op plugin write (JSON body)")
	require.Contains(t, string(svg), "#d0694a", "a missed target is drawn red")
	require.Contains(t, string(svg), "Commit f6381ae-dirty")

	// A target only the median reaches is said so.
	rep.Comparisons[0].Verdict = verdictMetMedian
	require.Contains(t, rep.markdown(), "| _met (median)_ |")
}

func TestCommitDescription_namesTheCheckout(t *testing.T) {
	require.Regexp(t, `^[0-9a-f]{7,}(-dirty)?$|^.+-g[0-9a-f]{7,}(-dirty)?$|^v[0-9].*`, commitDescription())
}
