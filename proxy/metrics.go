package proxy

import (
	"strconv"
	"sync"

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

	// Per-function handles, cached so the request path does no label
	// hashing or allocation after a function's first call.
	fns sync.Map // name → *fnMetrics
}

type fnMetrics struct {
	label   string
	started prometheus.Counter
	codes   sync.Map // int → *codeMetrics
}

type codeMetrics struct {
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
	if v, ok := m.fns.Load(name); ok {
		return v.(*fnMetrics)
	}
	label := function.MetricName(name)
	v, _ := m.fns.LoadOrStore(name, &fnMetrics{label: label, started: m.started.WithLabelValues(label)})
	return v.(*fnMetrics)
}

func (m *metrics) code(f *fnMetrics, code int) *codeMetrics {
	if v, ok := f.codes.Load(code); ok {
		return v.(*codeMetrics)
	}
	c := strconv.Itoa(code)
	v, _ := f.codes.LoadOrStore(code, &codeMetrics{
		invocations: m.invocations.WithLabelValues(f.label, c),
		seconds:     m.seconds.WithLabelValues(f.label, c),
	})
	return v.(*codeMetrics)
}
