package bench

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emberfaas/ember/internal/itest"
)

func TestPercentile(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{
		{50, 50 * time.Millisecond},
		{95, 95 * time.Millisecond},
		{99, 99 * time.Millisecond},
		{100, 100 * time.Millisecond},
		{0.1, time.Millisecond},
	} {
		if got := percentile(s, tc.p); got != tc.want {
			t.Errorf("percentile(1..100ms, %v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("percentile(nil) = %v, want 0", got)
	}
	// Nearest rank on few samples: p95 of three is the largest.
	three := []time.Duration{1, 2, 3}
	if got := percentile(three, 95); got != 3 {
		t.Errorf("p95 of 1,2,3 = %v, want 3", got)
	}
	d := dist([]time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond})
	if d.N != 3 || d.P50Ms != 2 || d.MaxMs != 3 {
		t.Errorf("dist = %+v", d)
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{250 * time.Microsecond, "250 µs"},
		{1500 * time.Microsecond, "1.50 ms"},
		{123456 * time.Microsecond, "123.5 ms"},
		{2500 * time.Millisecond, "2.50 s"},
	} {
		if got := fmtDur(tc.d); got != tc.want {
			t.Errorf("fmtDur(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
	if got := fmtRatio(3, 2); got != "1.50×" {
		t.Errorf("fmtRatio(3, 2) = %q", got)
	}
	if got := fmtRatio(3, 0); got != "–" {
		t.Errorf("fmtRatio(3, 0) = %q", got)
	}
}

func TestClosedLoop(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%10 == 0 {
			http.Error(w, "nope", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	r := closedLoop(t.Context(), newClient(4), srv.URL, 4, after(100*time.Millisecond), true)
	if r.OK == 0 || r.Failed == 0 {
		t.Fatalf("ok %d, failed %d: want both", r.OK, r.Failed)
	}
	if int64(r.OK+r.Failed) != n.Load() {
		t.Errorf("counted %d requests, server saw %d", r.OK+r.Failed, n.Load())
	}
	if len(r.Latencies) != r.OK {
		t.Errorf("%d latencies for %d successes", len(r.Latencies), r.OK)
	}
	if len(r.Errors) == 0 || !strings.Contains(r.Errors[0], "503") {
		t.Errorf("errors = %q, want a 503", r.Errors)
	}
	if r.Elapsed < 100*time.Millisecond {
		t.Errorf("elapsed %v, want at least the round", r.Elapsed)
	}
}

func TestReportCheck(t *testing.T) {
	var r Report
	if p := r.check(); len(p) != 9 {
		t.Errorf("empty report: %d problems, want one per scenario: %q", len(p), p)
	}
	r.Autoscale = &AutoscaleResult{AllReady: Dist{N: 1}, Failed: 2}
	found := false
	for _, p := range r.check() {
		found = found || strings.Contains(p, "2 requests failed")
	}
	if !found {
		t.Errorf("failed autoscale requests not reported: %q", r.check())
	}
	r.Async = &AsyncResult{Callback: Dist{N: 1}, Sync: Dist{N: 1}, Missing: 3}
	if p := strings.Join(r.check(), "\n"); !strings.Contains(p, "3 calls without exactly one callback") {
		t.Errorf("async calls without a callback not reported: %s", p)
	}
	var b strings.Builder
	r.Table = r.rows()
	if err := r.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "| scenario | metric |") || !strings.Contains(b.String(), "4 autoscaling") {
		t.Errorf("table:\n%s", b.String())
	}
}

// TestDaemonFlagsReported checks that the settings the report prints are
// the ones on the daemons' command lines, and that a daemon run with
// another value shows up beside the first.
func TestDaemonFlagsReported(t *testing.T) {
	newDaemon := func(extra ...string) *daemon {
		return &daemon{Daemon: &itest.Daemon{DaemonOptions: itest.DaemonOptions{
			Containerd: &itest.Containerd{}, Extra: append(daemonFlags(), extra...)}}}
	}
	e := &env{}
	e.recordFlags(newDaemon())
	e.recordFlags(newDaemon("--health-interval", "1m"))
	r := Report{DaemonFlags: e.flags}
	var b strings.Builder
	if err := r.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	want := "Daemons (from their command lines): --health-interval 5s / 1m, --wake-timeout 30s, --drain-timeout 30s, --autoscale-cpu-brake 0.5\n"
	if !strings.Contains(b.String(), want) {
		t.Errorf("report:\n%s\nwant the line %q", b.String(), want)
	}
}
