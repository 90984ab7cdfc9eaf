package main

import (
	"encoding/json"
	"math"
	"sort"
	"time"
)

// spread summarises one figure over the rounds: its median and how far the
// rounds scattered around it. Rounds without a figure (NaN) are left out.
type spread struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	Q1     float64 `json:"q1"`
	Q3     float64 `json:"q3"`
	Rounds int     `json:"rounds"` // rounds that had a figure
}

func summarize(values []float64) spread {
	var kept []float64
	for _, v := range values {
		if !math.IsNaN(v) {
			kept = append(kept, v)
		}
	}
	if len(kept) == 0 {
		nan := math.NaN()
		return spread{Median: nan, Min: nan, Max: nan, Q1: nan, Q3: nan}
	}
	sort.Float64s(kept)
	return spread{
		Median: quantile(kept, 0.5),
		Min:    kept[0],
		Max:    kept[len(kept)-1],
		Q1:     quantile(kept, 0.25),
		Q3:     quantile(kept, 0.75),
		Rounds: len(kept),
	}
}

// quantile interpolates linearly between the closest ranks of sorted
// (Hyndman and Fan's type 7, what R and NumPy use by default).
func quantile(sorted []float64, q float64) float64 {
	pos := q * float64(len(sorted)-1)
	lower := int(math.Floor(pos))
	upper := int(math.Ceil(pos))
	return sorted[lower] + (pos-float64(lower))*(sorted[upper]-sorted[lower])
}

func (s spread) known() bool { return s.Rounds > 0 }

// MarshalJSON writes null for a spread without rounds: JSON has no NaN.
func (s spread) MarshalJSON() ([]byte, error) {
	if !s.known() {
		return []byte("null"), nil
	}
	type plain spread
	return json.Marshal(plain(s))
}

// perRoundRatios divides num by den round by round. A round where either
// side has no figure, or the reference served nothing, has no ratio.
func perRoundRatios(num, den []float64) []float64 {
	ratios := make([]float64, len(num))
	for i := range num {
		switch {
		case i >= len(den), math.IsNaN(num[i]), math.IsNaN(den[i]), den[i] <= 0:
			ratios[i] = math.NaN()
		default:
			ratios[i] = num[i] / den[i]
		}
	}
	return ratios
}

// verdict is a comparison's outcome against its target.
type verdict string

const (
	verdictMet        verdict = "met"
	verdictMetMedian  verdict = "met (median)"
	verdictMissed     verdict = "missed"
	verdictNoTarget   verdict = ""
	verdictUnmeasured verdict = "n/a"
)

// judge compares the per-round ratios with the target: "met" when every
// round reached it (the range's lower end clears it), "met (median)" when
// only the median does - one disturbed round neither passes nor fails a
// target, but the reader is told - and "missed" otherwise.
func judge(ratio spread, target float64) verdict {
	switch {
	case target <= 0:
		return verdictNoTarget
	case !ratio.known():
		return verdictUnmeasured
	case ratio.Min >= target:
		return verdictMet
	case ratio.Median >= target:
		return verdictMetMedian
	default:
		return verdictMissed
	}
}

// percentile returns the nearest-rank q-quantile of latencies (sorted in
// place), 0 when there are none.
func percentile(latencies []time.Duration, q float64) time.Duration {
	if len(latencies) == 0 {
		return 0
	}
	if !sort.SliceIsSorted(latencies, func(i, j int) bool { return latencies[i] < latencies[j] }) {
		sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	}
	rank := int(math.Ceil(q*float64(len(latencies)))) - 1
	if rank < 0 {
		rank = 0
	}
	return latencies[rank]
}

// floats is a list of per-round figures; a round without one is written
// as null, since JSON has no NaN.
type floats []float64

func (f floats) MarshalJSON() ([]byte, error) {
	out := make([]*float64, len(f))
	for i := range f {
		if !math.IsNaN(f[i]) {
			v := f[i]
			out[i] = &v
		}
	}
	return json.Marshal(out)
}

func nan() float64 { return math.NaN() }
