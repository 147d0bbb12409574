package loadtest

import (
	"math"
	"slices"
	"time"
)

// Latency summarises one step's successful requests, in milliseconds. The
// percentiles are exact over every sample (nearest rank on the sorted
// samples, no histogram buckets).
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// summarise sorts samples in place and returns their Latency; zero for no
// samples.
func summarise(samples []time.Duration) Latency {
	if len(samples) == 0 {
		return Latency{}
	}
	slices.Sort(samples)
	var sum time.Duration
	for _, s := range samples {
		sum += s
	}
	return Latency{
		P50:  ms(percentile(samples, 50)),
		P90:  ms(percentile(samples, 90)),
		P99:  ms(percentile(samples, 99)),
		P999: ms(percentile(samples, 99.9)),
		Max:  ms(samples[len(samples)-1]),
		Mean: ms(sum) / float64(len(samples)),
	}
}

// Bucket is one bin of a latency histogram: the requests that took at
// most LE milliseconds and more than the previous bucket's LE.
type Bucket struct {
	LE    float64 `json:"le_ms"`
	Count int     `json:"count"`
}

// histogram bins sorted (ascending) into buckets bounded 1, 2, 5 × 10^k
// ms, from the bucket of the fastest sample to that of the slowest; the
// buckets between them are kept when empty, so the shape reads as is.
func histogram(sorted []time.Duration) []Bucket {
	if len(sorted) == 0 {
		return nil
	}
	var out []Bucket
	i := 0
	for k := -2; k <= 6 && i < len(sorted); k++ {
		for _, m := range []float64{1, 2, 5} {
			le := m * math.Pow(10, float64(k))
			n := 0
			for i < len(sorted) && ms(sorted[i]) <= le {
				i, n = i+1, n+1
			}
			if n > 0 || len(out) > 0 {
				out = append(out, Bucket{LE: le, Count: n})
			}
			if i == len(sorted) {
				break
			}
		}
	}
	if i < len(sorted) { // slower than 5000 s: one last bucket, to the slowest
		out = append(out, Bucket{LE: ms(sorted[len(sorted)-1]), Count: len(sorted) - i})
	}
	return out
}

// percentile is the nearest-rank p-th percentile of sorted (non-empty):
// the smallest sample with at least p% of the samples at or below it.
func percentile(sorted []time.Duration, p float64) time.Duration {
	// The epsilon keeps 99.9% of 1000 at rank 999 despite 99.9/100*1000
	// being 999.0000000000001 in floating point.
	rank := int(math.Ceil(p/100*float64(len(sorted)) - 1e-9))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
