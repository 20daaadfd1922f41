package function

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// MaxMemory is the largest memory quantity ember accepts, exclusive: 1Ti.
// The function package does not read the host, so the cap is fixed; it
// is far above what one replica of a single-host platform can use, and
// it keeps byte counts well inside int64 (9e18 overflowed before).
const MaxMemory = 1 << 40

// MaxMilliCPU is the largest CPU quantity ember accepts: 1024 cores, more
// than any one host has. It keeps the CFS quota (cores × period) from
// overflowing.
const MaxMilliCPU = 1024 * 1000

// ParseMemory parses a Kubernetes memory quantity ("128Mi", "1G", "512000")
// into bytes: at least 4Mi, below MaxMemory.
func ParseMemory(q string) (int64, error) {
	s := strings.TrimSpace(q)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{
		{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
		{"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
	} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	f, err := parseFinite(s)
	if err != nil || f <= 0 {
		return 0, fmt.Errorf("%w: memory %q is not a quantity such as 128Mi", ErrInvalid, q)
	}
	b := f * float64(mult)
	if b >= MaxMemory {
		return 0, fmt.Errorf("%w: memory %q is not below the limit of 1Ti", ErrInvalid, q)
	}
	if b < 4<<20 {
		return 0, fmt.Errorf("%w: memory %q is below the 4Mi a process needs", ErrInvalid, q)
	}
	return int64(b), nil
}

// ParseCPU parses a Kubernetes CPU quantity ("500m", "0.5", "2") into
// millicores: at least 1m, at most MaxMilliCPU.
func ParseCPU(q string) (int64, error) {
	s := strings.TrimSpace(q)
	var milli float64
	var err error
	if strings.HasSuffix(s, "m") {
		milli, err = parseFinite(strings.TrimSuffix(s, "m"))
	} else {
		milli, err = parseFinite(s)
		milli *= 1000
	}
	if err != nil || milli < 1 {
		return 0, fmt.Errorf("%w: cpu %q is not a quantity such as 500m or 0.5", ErrInvalid, q)
	}
	if milli > MaxMilliCPU {
		return 0, fmt.Errorf("%w: cpu %q is above the limit of %d cores", ErrInvalid, q, MaxMilliCPU/1000)
	}
	return int64(milli), nil
}

// parseFinite is strconv.ParseFloat without the words it also accepts
// ("NaN", "Inf", "infinity"): none of them is a quantity.
func parseFinite(s string) (float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%q is not a finite number", s)
	}
	return f, nil
}
