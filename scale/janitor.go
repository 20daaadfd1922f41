package scale

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// CleanupStatus is the janitor's state, for status and metrics.
type CleanupStatus struct {
	// Pending counts what the last pass failed to free (replicas or
	// resources); 0 when everything is clean.
	Pending int
	// Failures counts failed cleanups since the daemon started: failed
	// replica removals and failed passes of the janitor.
	Failures uint64
	// LastError is the last pass's error, empty once a pass succeeds.
	LastError string
	// RetryAt is when the next pass runs while one is pending.
	RetryAt time.Time
}

// janitor frees what belongs to no live replica: what a failed removal
// or creation left, and what a previous daemon left. It keeps no record
// of its own: each pass is a sweep that rederives the work from what
// exists, so it is idempotent and survives restarts. A failed pass is
// retried with backoff until one succeeds.
type janitor struct {
	sweep    func(ctx context.Context) error
	log      *slog.Logger
	min, max time.Duration
	kickC    chan struct{}

	failures prometheus.Counter
	pending  prometheus.Gauge

	mu sync.Mutex // guards below
	st CleanupStatus
}

func newJanitor(sweep func(ctx context.Context) error, lo, hi time.Duration, log *slog.Logger, reg prometheus.Registerer) *janitor {
	j := &janitor{sweep: sweep, log: log, min: lo, max: hi, kickC: make(chan struct{}, 1),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ember_cleanup_failures_total",
			Help: "Cleanups that failed and are retried: replica removals and janitor passes.",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ember_cleanup_pending",
			Help: "Replicas or resources the last cleanup pass failed to free; 0 when clean.",
		}),
	}
	if reg != nil {
		reg.MustRegister(j.failures, j.pending)
	}
	return j
}

// kick asks for a pass. Kicks coalesce; one that arrives during a pass
// makes another pass follow it, so that nothing freed up meanwhile is
// missed.
func (j *janitor) kick() {
	select {
	case j.kickC <- struct{}{}:
	default:
	}
}

// failed counts a cleanup that failed elsewhere (a replica's removal);
// the caller kicks once the replica is no longer live.
func (j *janitor) failed() {
	j.failures.Inc()
	j.mu.Lock()
	j.st.Failures++
	j.mu.Unlock()
}

func (j *janitor) status() CleanupStatus {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.st
}

// run makes a pass on every kick, retrying failed ones with backoff,
// until ctx ends. What is left then is the next daemon's first pass.
func (j *janitor) run(ctx context.Context) {
	first := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-j.kickC:
		}
		var delay time.Duration
		for attempt := 1; ; attempt++ {
			t0 := time.Now()
			err := j.sweep(ctx)
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				j.succeeded(first || attempt > 1, attempt, time.Since(t0))
				first = false
				break
			}
			delay = nextBackoff(delay, j.min, j.max)
			j.passFailed(err, attempt, delay)
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
		}
	}
}

func (j *janitor) succeeded(loud bool, attempts int, took time.Duration) {
	j.pending.Set(0)
	j.mu.Lock()
	j.st.Pending, j.st.LastError, j.st.RetryAt = 0, "", time.Time{}
	j.mu.Unlock()
	log := j.log.Debug
	if loud {
		log = j.log.Info
	}
	log("cleanup sweep done", "attempts", attempts, "took", took.Round(time.Millisecond))
}

func (j *janitor) passFailed(err error, attempt int, delay time.Duration) {
	// A sweep joins one error per thing it could not free.
	n := 1
	if multi, ok := err.(interface{ Unwrap() []error }); ok {
		n = len(multi.Unwrap())
	}
	j.failures.Inc()
	j.pending.Set(float64(n))
	j.mu.Lock()
	j.st.Failures++
	j.st.Pending, j.st.LastError, j.st.RetryAt = n, err.Error(), time.Now().Add(delay)
	j.mu.Unlock()
	j.log.Warn("cleanup sweep failed, will retry", "pending", n, "attempt", attempt, "retry_in", delay, "err", err)
}
