package scale

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emberfaas/ember/function"
)

// metrics are the controller's Prometheus series. Function names carry
// the namespace suffix, as the OpenFaaS gateway's do, so dashboards can
// join them with gateway_* series.
type metrics struct {
	replicas        *prometheus.GaugeVec
	coldStarts      *prometheus.CounterVec
	coldStartSecs   *prometheus.HistogramVec
	pauses          *prometheus.CounterVec
	restarts        *prometheus.CounterVec
	exits           *prometheus.CounterVec
	healthFailures  *prometheus.CounterVec
	createFailures  *prometheus.CounterVec
	replicaStartups prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		replicas: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ember_function_replicas", Help: "Replicas by state.",
		}, []string{"function_name", "state"}),
		coldStarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ember_cold_starts_total", Help: "Wake-ups of functions with no ready replica, by what they woke from (paused, zero).",
		}, []string{"function_name", "from"}),
		coldStartSecs: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ember_cold_start_seconds", Help: "Time from a wake-up's start to a ready replica.",
			Buckets: []float64{.0005, .001, .005, .01, .025, .05, .1, .2, .3, .5, 1, 2.5, 5, 10},
		}, []string{"from"}),
		pauses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ember_pauses_total", Help: "Idle functions paused.",
		}, []string{"function_name"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ember_replica_restarts_total", Help: "Replica processes restarted after an exit.",
		}, []string{"function_name"}),
		exits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ember_replica_exits_total", Help: "Replica processes that exited on their own or were killed.",
		}, []string{"function_name"}),
		healthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ember_health_check_failures_total", Help: "Lock-file checks that found no lock.",
		}, []string{"function_name"}),
		createFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ember_replica_create_failures_total", Help: "Replica creations that failed (no container or task started).",
		}, []string{"function_name"}),
		replicaStartups: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ember_replica_startup_seconds", Help: "Time from creating a replica to its readiness.",
			Buckets: []float64{.05, .1, .2, .3, .5, 1, 2, 5, 10, 30},
		}),
	}
	if reg != nil {
		reg.MustRegister(m.replicas, m.coldStarts, m.coldStartSecs, m.pauses, m.restarts, m.exits,
			m.healthFailures, m.createFailures, m.replicaStartups)
	}
	return m
}

func (f *fn) metricName() string { return function.MetricName(f.name) }

// ready records a replica's readiness; a wake from zero ends here.
// Called with f.mu held.
func (m *metrics) ready(f *fn, r *replica, now time.Time) {
	if !f.wakeAt.IsZero() {
		m.coldStart(f, "zero", now.Sub(f.wakeAt))
		f.c.log.Info("woke from zero", "fn", f.name, "took", now.Sub(f.wakeAt).Round(time.Millisecond))
		f.wakeAt = time.Time{}
		return
	}
	m.replicaStartups.Observe(now.Sub(r.started).Seconds())
}

func (m *metrics) coldStart(f *fn, from string, d time.Duration) {
	m.coldStarts.WithLabelValues(f.metricName(), from).Inc()
	m.coldStartSecs.WithLabelValues(from).Observe(d.Seconds())
}

// setReplicas publishes the count of replicas by state. Called with f.mu
// held.
func (m *metrics) setReplicas(f *fn) {
	counts := map[function.State]int{}
	for _, r := range f.replicas {
		counts[r.state]++
	}
	for _, st := range []function.State{function.StateStarting, function.StateReady, function.StateUnhealthy,
		function.StatePaused, function.StateStopping, function.StateExited, function.StateZero} {
		m.replicas.WithLabelValues(f.metricName(), string(st)).Set(float64(counts[st]))
	}
}

// forget drops a removed function's series.
func (m *metrics) forget(f *fn) {
	m.replicas.DeletePartialMatch(prometheus.Labels{"function_name": f.metricName()})
	m.coldStarts.DeletePartialMatch(prometheus.Labels{"function_name": f.metricName()})
	for _, v := range []*prometheus.CounterVec{m.pauses, m.restarts, m.exits, m.healthFailures, m.createFailures} {
		v.DeleteLabelValues(f.metricName())
	}
}

// serviceCount is OpenFaaS's gateway_service_count: each function's
// desired replicas, read at scrape time so it is never stale.
type serviceCount struct {
	c    *Controller
	desc *prometheus.Desc
}

func newServiceCount(c *Controller) *serviceCount {
	return &serviceCount{c: c, desc: prometheus.NewDesc("gateway_service_count",
		"Desired replicas of each function.", []string{"function_name"}, nil)}
}

func (s *serviceCount) Describe(ch chan<- *prometheus.Desc) { ch <- s.desc }

func (s *serviceCount) Collect(ch chan<- prometheus.Metric) {
	for _, f := range *s.c.fns.Load() {
		st := f.status()
		ch <- prometheus.MustNewConstMetric(s.desc, prometheus.GaugeValue, float64(st.Desired), f.metricName())
	}
}
