package queue

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/emberfaas/ember/function"
)

func TestPolicyOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		ann  map[string]string
		want Policy
	}{
		{"defaults", nil, Policy{MaxInflight: 4, Attempts: 3, Codes: []int{429, 502, 503, 504}, MinWait: time.Second, MaxWait: 30 * time.Second}},
		{"set", map[string]string{
			AnnotationMaxInflight: "10", AnnotationRetryAttempts: "5", AnnotationRetryCodes: "500, 503",
			AnnotationRetryMinWait: "100ms", AnnotationRetryMaxWait: "2s",
		}, Policy{MaxInflight: 10, Attempts: 5, Codes: []int{500, 503}, MinWait: 100 * time.Millisecond, MaxWait: 2 * time.Second}},
		{"bad values keep defaults", map[string]string{
			AnnotationMaxInflight: "-1", AnnotationRetryAttempts: "x", AnnotationRetryCodes: "abc,99",
			AnnotationRetryMinWait: "soon", AnnotationRetryMaxWait: "0s",
		}, Policy{MaxInflight: 4, Attempts: 3, Codes: []int{429, 502, 503, 504}, MinWait: time.Second, MaxWait: 30 * time.Second}},
		{"max below min is raised", map[string]string{AnnotationRetryMinWait: "10s", AnnotationRetryMaxWait: "1s"},
			Policy{MaxInflight: 4, Attempts: 3, Codes: []int{429, 502, 503, 504}, MinWait: 10 * time.Second, MaxWait: 10 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := PolicyOf(function.Spec{Name: "f", Annotations: tc.ann})
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("PolicyOf (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRetry(t *testing.T) {
	p := Policy{Attempts: 6, Codes: []int{429, 502, 503, 504}, MinWait: time.Second, MaxWait: 5 * time.Second}
	for _, tc := range []struct {
		attempt, status int
		wait            time.Duration
		retry           bool
	}{
		{1, 200, 0, false},
		{1, 404, 0, false},
		{1, 500, 0, false}, // not in the codes: the function answered
		{1, 503, time.Second, true},
		{2, 502, 2 * time.Second, true},
		{3, 429, 4 * time.Second, true},
		{4, 504, 5 * time.Second, true}, // capped
		{5, 503, 5 * time.Second, true},
		{6, 503, 0, false}, // the last attempt
		{7, 503, 0, false},
	} {
		wait, retry := p.Retry(tc.attempt, tc.status)
		if wait != tc.wait || retry != tc.retry {
			t.Errorf("Retry(%d, %d) = %v, %v; want %v, %v", tc.attempt, tc.status, wait, retry, tc.wait, tc.retry)
		}
	}
}

// flakyCallbacks answers a callback's first failures with 503, then 200.
type flakyCallbacks struct {
	mu       sync.Mutex // guards below
	failures int
	times    []time.Time
	headers  []http.Header
	bodies   []string
	err      error
}

func (f *flakyCallbacks) RoundTrip(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, _ := io.ReadAll(r.Body)
	f.times = append(f.times, time.Now())
	f.headers = append(f.headers, r.Header.Clone())
	f.bodies = append(f.bodies, string(b))
	code := http.StatusOK
	if len(f.times) <= f.failures {
		code = http.StatusServiceUnavailable
		if f.err != nil {
			return nil, f.err
		}
	}
	return &http.Response{StatusCode: code, Status: http.StatusText(code), Body: io.NopCloser(strings.NewReader("")), Header: http.Header{}}, nil
}

func TestCallbackRetriesWithBackoff(t *testing.T) {
	for _, tc := range []struct {
		name     string
		failures int
		err      error
		wantSent int
		wantGaps []time.Duration
	}{
		{"first try", 0, nil, 1, nil},
		{"after two 503s", 2, nil, 3, []time.Duration{200 * time.Millisecond, 400 * time.Millisecond}},
		{"after a connection error", 1, errors.New("connection refused"), 2, []time.Duration{200 * time.Millisecond}},
		{"gives up", 100, nil, callbackAttempts, []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &flakyCallbacks{failures: tc.failures, err: tc.err}
				q := &Queue{cfg: Config{Client: &http.Client{Transport: f}}, log: slog.New(slog.DiscardHandler), m: newMetrics(nil)}
				c := call{ID: "id-1", Function: "echo", Callback: "http://127.0.0.1:1/cb"}
				res := result{code: 201, header: http.Header{"Content-Type": {"text/plain"}, "Content-Length": {"2"}}, body: []byte("ok"), duration: 1500 * time.Millisecond}
				q.callback(context.Background(), c, res)
				if len(f.times) != tc.wantSent {
					t.Fatalf("callbacks sent = %d, want %d", len(f.times), tc.wantSent)
				}
				var gaps []time.Duration
				for i := 1; i < len(f.times); i++ {
					gaps = append(gaps, f.times[i].Sub(f.times[i-1]))
				}
				if diff := cmp.Diff(tc.wantGaps, gaps); diff != "" {
					t.Errorf("gaps between tries (-want +got):\n%s", diff)
				}
				h := f.headers[len(f.headers)-1]
				for k, want := range map[string]string{"X-Call-Id": "id-1", "X-Function-Status": "201", "X-Function-Name": "echo",
					"X-Duration-Seconds": "1.500000", "Content-Type": "text/plain"} {
					if got := h.Get(k); got != want {
						t.Errorf("%s = %q, want %q", k, got, want)
					}
				}
				if b := f.bodies[len(f.bodies)-1]; b != "ok" {
					t.Errorf("body = %q, want ok", b)
				}
			})
		})
	}
}
