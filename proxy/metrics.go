package proxy

import (
	"maps"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emberfaas/ember/function"
)

// metrics are the OpenFaaS gateway's invocation series, with its names and
// labels, so existing dashboards work. function_name is NAME.NAMESPACE, as
// on a gateway with a function namespace.
type metrics struct {
	invocations *prometheus.CounterVec
	seconds     *prometheus.HistogramVec
	started     *prometheus.CounterVec

	// Per-function handles, resolved once so the request path does no
	// label hashing. The map is copied on write (a new function) and read
	// without a lock or an allocation: a sync.Map would box each key.
	fns atomic.Pointer[map[string]*fnMetrics]
	mu  sync.Mutex // serialises writers of fns
}

type fnMetrics struct {
	label   string
	started prometheus.Counter
	// The status codes seen so far, few: a copied-on-write list, scanned.
	codes atomic.Pointer[[]*codeMetrics]
	mu    sync.Mutex // serialises writers of codes
}

type codeMetrics struct {
	code        int
	invocations prometheus.Counter
	seconds     prometheus.Observer
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		invocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_function_invocation_total", Help: "Function invocations by status code.",
		}, []string{"function_name", "code"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gateway_functions_seconds", Help: "Function invocation time taken.",
		}, []string{"function_name", "code"}),
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_function_invocation_started", Help: "Function invocations started.",
		}, []string{"function_name"}),
	}
	if reg != nil {
		reg.MustRegister(m.invocations, m.seconds, m.started)
	}
	return m
}

func (m *metrics) function(name string) *fnMetrics {
	if fns := m.fns.Load(); fns != nil {
		if f := (*fns)[name]; f != nil {
			return f
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var next map[string]*fnMetrics
	if fns := m.fns.Load(); fns != nil {
		if f := (*fns)[name]; f != nil {
			return f
		}
		next = maps.Clone(*fns)
	} else {
		next = map[string]*fnMetrics{}
	}
	label := function.MetricName(name)
	f := &fnMetrics{label: label, started: m.started.WithLabelValues(label)}
	next[name] = f
	m.fns.Store(&next)
	return f
}

func (m *metrics) code(f *fnMetrics, code int) *codeMetrics {
	if codes := f.codes.Load(); codes != nil {
		for _, c := range *codes {
			if c.code == code {
				return c
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var next []*codeMetrics
	if codes := f.codes.Load(); codes != nil {
		for _, c := range *codes {
			if c.code == code {
				return c
			}
		}
		next = append(next, *codes...)
	}
	s := strconv.Itoa(code)
	c := &codeMetrics{code: code, invocations: m.invocations.WithLabelValues(f.label, s), seconds: m.seconds.WithLabelValues(f.label, s)}
	next = append(next, c)
	f.codes.Store(&next)
	return c
}
