package runtime

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// LogDrops counts the log lines the collector read but could not keep
// because the state dir refused them (full, above all). The function's
// output is still read, so the function never waits on the disk.
type LogDrops struct {
	// Dropping is true from a failed append until the next one that
	// works; Since is when the current or last episode began.
	Dropping bool      `json:"dropping"`
	Since    time.Time `json:"since,omitzero"`
	// Lines and Bytes count since the daemon started, ByFunction the
	// lines per function.
	Lines      uint64            `json:"lines"`
	Bytes      uint64            `json:"bytes"`
	ByFunction map[string]uint64 `json:"byFunction,omitempty"`
	LastError  string            `json:"lastError,omitempty"`
}

type logMetrics struct {
	lines *prometheus.CounterVec
	bytes *prometheus.CounterVec
}

func newLogMetrics(reg prometheus.Registerer) *logMetrics {
	m := &logMetrics{
		lines: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ember_log_lines_dropped_total",
			Help: "Lines of function output read but not kept, because the state dir refused them."}, []string{"function_name"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ember_log_bytes_dropped_total",
			Help: "Bytes of stamped function logs not kept, because the state dir refused them."}, []string{"function_name"}),
	}
	if reg != nil {
		reg.MustRegister(m.lines, m.bytes)
	}
	return m
}
