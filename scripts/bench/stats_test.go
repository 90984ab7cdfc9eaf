package main

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSummarize_medianQuartilesAndRange(t *testing.T) {
	odd := summarize([]float64{5, 1, 4, 2, 3})
	require.Equal(t, spread{Median: 3, Min: 1, Max: 5, Q1: 2, Q3: 4, Rounds: 5}, odd)

	even := summarize([]float64{40, 10, 30, 20})
	require.Equal(t, 25.0, even.Median)
	require.Equal(t, 17.5, even.Q1)
	require.Equal(t, 32.5, even.Q3)
	require.Equal(t, 10.0, even.Min)
	require.Equal(t, 40.0, even.Max)

	one := summarize([]float64{7})
	require.Equal(t, spread{Median: 7, Min: 7, Max: 7, Q1: 7, Q3: 7, Rounds: 1}, one)
}

func TestSummarize_leavesOutRoundsWithoutAFigure(t *testing.T) {
	s := summarize([]float64{math.NaN(), 2, 100, math.NaN(), 4})
	require.Equal(t, 3, s.Rounds)
	require.Equal(t, 4.0, s.Median)
	require.Equal(t, 2.0, s.Min)
	require.Equal(t, 100.0, s.Max)

	none := summarize([]float64{math.NaN()})
	require.False(t, none.known())
	require.True(t, math.IsNaN(none.Median))
	out, err := json.Marshal(none)
	require.NoError(t, err)
	require.Equal(t, "null", string(out))
}

func TestPerRoundRatios_dividesRoundByRound(t *testing.T) {
	// The engine and its reference drift together (round 3 is slow for
	// both): per-round ratios stay near 0.5 although the rounds' ops/s
	// scatter widely.
	engine := []float64{1000, 1100, 500, 1050, 980}
	reference := []float64{2000, 2150, 1000, 2100, 1990}
	ratios := perRoundRatios(engine, reference)
	require.InDeltaSlice(t, []float64{0.5, 1100.0 / 2150, 0.5, 0.5, 980.0 / 1990}, ratios, 1e-12)
	s := summarize(ratios)
	require.InDelta(t, 0.5, s.Median, 1e-12)
	require.InDelta(t, 980.0/1990, s.Min, 1e-12)
	require.InDelta(t, 1100.0/2150, s.Max, 1e-12)
}

func TestPerRoundRatios_differsFromTheRatioOfMedians(t *testing.T) {
	// Medians taken separately pair different rounds: 2/2 = 1.0, while the
	// engine reached half its reference in two rounds out of three.
	engine := []float64{1, 2, 3}
	reference := []float64{2, 4, 1.5}
	require.Equal(t, 1.0, summarize(engine).Median/summarize(reference).Median)
	s := summarize(perRoundRatios(engine, reference))
	require.Equal(t, 0.5, s.Median)
	require.Equal(t, 0.5, s.Min)
	require.Equal(t, 2.0, s.Max)
}

func TestPerRoundRatios_roundsWithoutAReferenceHaveNoRatio(t *testing.T) {
	ratios := perRoundRatios([]float64{10, 10, math.NaN(), 10}, []float64{20, 0, 20})
	require.Equal(t, 0.5, ratios[0])
	require.True(t, math.IsNaN(ratios[1]), "reference served nothing")
	require.True(t, math.IsNaN(ratios[2]), "engine unmeasured")
	require.True(t, math.IsNaN(ratios[3]), "reference missing")
	require.Equal(t, 1, summarize(ratios).Rounds)

	// An engine that served nothing against a working reference is a ratio of 0, not a gap.
	require.Equal(t, []float64{0}, perRoundRatios([]float64{0}, []float64{100}))
}

func TestJudge_metOnlyWhenEveryRoundClearsTheTarget(t *testing.T) {
	require.Equal(t, verdictMet, judge(summarize([]float64{0.95, 1.10, 0.97, 0.96, 1.00}), 0.95), "the lowest round reaches it")
	require.Equal(t, verdictMetMedian, judge(summarize([]float64{0.95, 0.80, 0.97, 0.96, 0.70}), 0.95), "only the median reaches it")
	require.Equal(t, verdictMissed, judge(summarize([]float64{0.94, 1.20, 0.93, 0.99, 0.90}), 0.95))
	require.Equal(t, verdictMet, judge(summarize([]float64{1.0}), 1.0), "reaching the target exactly meets it")
	require.Equal(t, verdictMissed, judge(summarize([]float64{0.999999}), 1.0))
	require.Equal(t, verdictNoTarget, judge(summarize([]float64{0.5}), 0))
	require.Equal(t, verdictUnmeasured, judge(summarize([]float64{math.NaN()}), 0.9))
}

func TestPercentile_nearestRank(t *testing.T) {
	var latencies []time.Duration
	for i := 100; i >= 1; i-- {
		latencies = append(latencies, time.Duration(i)*time.Millisecond)
	}
	require.Equal(t, 50*time.Millisecond, percentile(latencies, 0.5))
	require.Equal(t, 99*time.Millisecond, percentile(latencies, 0.99))
	require.Equal(t, 100*time.Millisecond, percentile(latencies, 1))
	require.Equal(t, 1*time.Millisecond, percentile(latencies, 0))
	require.Equal(t, time.Duration(0), percentile(nil, 0.5))
	require.Equal(t, 3*time.Millisecond, percentile([]time.Duration{3 * time.Millisecond}, 0.99))
}

func TestFloats_writesMissingRoundsAsNull(t *testing.T) {
	out, err := json.Marshal(floats{1.5, math.NaN(), 2})
	require.NoError(t, err)
	require.Equal(t, "[1.5,null,2]", string(out))
}
