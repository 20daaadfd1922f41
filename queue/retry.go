package queue

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emberfaas/ember/function"
)

// Annotations that tune a function's async calls. The retry ones are
// OpenFaaS Pro's names.
const (
	AnnotationMaxInflight   = "com.openfaas.queue.max_inflight"
	AnnotationRetryAttempts = "com.openfaas.retry.attempts"
	AnnotationRetryCodes    = "com.openfaas.retry.codes"
	AnnotationRetryMinWait  = "com.openfaas.retry.min_wait"
	AnnotationRetryMaxWait  = "com.openfaas.retry.max_wait"
)

// Defaults for functions that set none of the annotations.
const (
	DefaultMaxInflight = 4
	DefaultAttempts    = 3
	DefaultMinWait     = time.Second
	DefaultMaxWait     = 30 * time.Second
)

// DefaultRetryCodes are the statuses that mean "try again later": the
// function or the gateway was overloaded, unreachable or too slow.
var DefaultRetryCodes = []int{http429, http502, http503, http504}

const (
	http429 = 429
	http502 = 502
	http503 = 503
	http504 = 504
)

// Policy is how one function's async calls are run and retried.
type Policy struct {
	MaxInflight int
	// Attempts counts every try, the first included.
	Attempts int
	Codes    []int
	MinWait  time.Duration
	MaxWait  time.Duration
}

// PolicyOf reads a function's policy from its annotations; values that do
// not parse fall back to the defaults.
func PolicyOf(s function.Spec) Policy {
	p := Policy{MaxInflight: DefaultMaxInflight, Attempts: DefaultAttempts, Codes: DefaultRetryCodes,
		MinWait: DefaultMinWait, MaxWait: DefaultMaxWait}
	a := s.Annotations
	if n, err := strconv.Atoi(a[AnnotationMaxInflight]); err == nil && n > 0 {
		p.MaxInflight = n
	}
	if n, err := strconv.Atoi(a[AnnotationRetryAttempts]); err == nil && n > 0 {
		p.Attempts = n
	}
	if v, ok := a[AnnotationRetryCodes]; ok {
		var codes []int
		for f := range strings.FieldsFuncSeq(v, func(r rune) bool { return r == ',' || r == ' ' }) {
			if n, err := strconv.Atoi(f); err == nil && n >= 100 && n <= 599 {
				codes = append(codes, n)
			}
		}
		if len(codes) > 0 {
			p.Codes = codes
		}
	}
	if d, err := time.ParseDuration(a[AnnotationRetryMinWait]); err == nil && d > 0 {
		p.MinWait = d
	}
	if d, err := time.ParseDuration(a[AnnotationRetryMaxWait]); err == nil && d > 0 {
		p.MaxWait = d
	}
	if p.MaxWait < p.MinWait {
		p.MaxWait = p.MinWait
	}
	return p
}

// Retry says whether a call whose attempt (1 for the first) ended with
// status is tried again, and after how long: MinWait doubled for each
// attempt made, capped at MaxWait.
func (p Policy) Retry(attempt, status int) (time.Duration, bool) {
	if attempt >= p.Attempts || !p.retryable(status) {
		return 0, false
	}
	d := p.MinWait
	for i := 1; i < attempt && d < p.MaxWait; i++ {
		d *= 2
	}
	return min(d, p.MaxWait), true
}

func (p Policy) retryable(status int) bool { return slices.Contains(p.Codes, status) }
