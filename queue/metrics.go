package queue

import "github.com/prometheus/client_golang/prometheus"

// metrics count async calls per function: what was accepted, how it
// ended, what was retried, and how long a call took from its 202 to its
// callback.
type metrics struct {
	enqueued  *prometheus.CounterVec
	completed *prometheus.CounterVec
	retries   *prometheus.CounterVec
	failed    *prometheus.CounterVec
	callbacks *prometheus.CounterVec
	inflight  *prometheus.GaugeVec
	seconds   *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	fn := []string{"function_name"}
	m := &metrics{
		enqueued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ember_async_enqueued_total", Help: "Async calls accepted (202).",
		}, fn),
		completed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ember_async_completed_total", Help: "Async calls finished, by the function's last status code.",
		}, []string{"function_name", "code"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ember_async_retries_total", Help: "Async call attempts scheduled again after a retryable status.",
		}, fn),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ember_async_failed_total", Help: "Async calls that exhausted their attempts.",
		}, fn),
		callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ember_async_callback_failures_total", Help: "Callbacks that could not be delivered after their retries.",
		}, fn),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ember_async_inflight", Help: "Async calls being run now.",
		}, fn),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ember_async_seconds", Help: "Time from an async call's acceptance to its completion, callback included.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 10),
		}, fn),
	}
	if reg != nil {
		reg.MustRegister(m.enqueued, m.completed, m.retries, m.failed, m.callbacks, m.inflight, m.seconds)
	}
	return m
}
