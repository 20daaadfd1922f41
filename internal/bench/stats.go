package bench

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Dist summarises a sample of durations, in milliseconds for JSON.
type Dist struct {
	N     int     `json:"n"`
	P50Ms float64 `json:"p50_ms"`
	P95Ms float64 `json:"p95_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
}

func dist(ds []time.Duration) Dist {
	if len(ds) == 0 {
		return Dist{}
	}
	s := slices.Sorted(slices.Values(ds))
	return Dist{
		N:     len(s),
		P50Ms: ms(percentile(s, 50)),
		P95Ms: ms(percentile(s, 95)),
		P99Ms: ms(percentile(s, 99)),
		MaxMs: ms(s[len(s)-1]),
	}
}

// percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: a value that was measured, never an interpolation.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fromMs(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }

// fmtDur prints a duration with the precision that matters at its scale.
func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", ms(d))
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", ms(d))
	default:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
}

func fmtMs(v float64) string { return fmtDur(fromMs(v)) }

// fmtP50P95 prints "p50 / p95" of d.
func fmtP50P95(d Dist) string { return fmtMs(d.P50Ms) + " / " + fmtMs(d.P95Ms) }

func fmtBytes(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func fmtRate(rps float64) string { return fmt.Sprintf("%.0f req/s", rps) }

// fmtRatio prints a/b, or a dash when b is zero.
func fmtRatio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}
