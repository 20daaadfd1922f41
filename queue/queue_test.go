package queue

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emberfaas/ember/function"
)

// fakeSpecs knows a fixed set of functions.
type fakeSpecs map[string]function.Spec

func (f fakeSpecs) Spec(name string) (function.Spec, error) {
	s, ok := f[name]
	if !ok {
		return function.Spec{}, fmt.Errorf("function %s: %w", name, function.ErrNotFound)
	}
	return s, nil
}

// fakeInvoker answers as a function would: the first fail[NAME] attempts
// of each call with 503, then 200 with the method, path, query and body.
type fakeInvoker struct {
	fail map[string]int

	mu       sync.Mutex // guards below
	attempts map[string]int
	inflight int
	peak     int
}

func (f *fakeInvoker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/function/"), "/")
	id := r.Header.Get("X-Call-Id")
	f.mu.Lock()
	f.attempts[id]++
	n := f.attempts[id]
	f.inflight++
	f.peak = max(f.peak, f.inflight)
	f.mu.Unlock()
	time.Sleep(time.Millisecond)
	f.mu.Lock()
	f.inflight--
	f.mu.Unlock()
	if n <= f.fail[name] {
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("X-Echo", r.Header.Get("X-Echo"))
	fmt.Fprintf(w, "%s %s %s %s", r.Method, r.URL.Path, r.URL.RawQuery, body)
}

// receiver records callbacks by call ID.
type receiver struct {
	mu    sync.Mutex // guards below
	calls map[string][]http.Header
	body  map[string]string
	got   chan struct{}
}

func newReceiver(t *testing.T) (*receiver, string) {
	rc := &receiver{calls: map[string][]http.Header{}, body: map[string]string{}, got: make(chan struct{}, 10000)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		id := r.Header.Get("X-Call-Id")
		rc.calls[id] = append(rc.calls[id], r.Header.Clone())
		rc.body[id] = string(b)
		rc.mu.Unlock()
		rc.got <- struct{}{}
	}))
	t.Cleanup(srv.Close)
	return rc, srv.URL
}

func (rc *receiver) wait(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for range n {
		select {
		case <-rc.got:
		case <-timeout:
			t.Fatalf("callbacks: timed out waiting for %d", n)
		}
	}
}

func startQueue(t *testing.T, dir string, specs Specs, inv Invoker) (*Queue, func()) {
	t.Helper()
	q, err := Open(t.Context(), Config{Dir: dir, MaxBody: 1024, AckWait: time.Second}, specs, inv, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		q.Close()
	}
	return q, stop
}

func post(t *testing.T, h http.Handler, path, body string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

var testSpecs = fakeSpecs{
	"echo":  {Name: "echo", Annotations: map[string]string{AnnotationMaxInflight: "3"}},
	"flaky": {Name: "flaky", Annotations: map[string]string{AnnotationRetryMinWait: "20ms"}},
	"down":  {Name: "down", Annotations: map[string]string{AnnotationRetryAttempts: "4", AnnotationRetryMinWait: "10ms", AnnotationRetryMaxWait: "20ms"}},
}

func TestAcceptAndCallBack(t *testing.T) {
	inv := &fakeInvoker{fail: map[string]int{"flaky": 2, "down": 1000}, attempts: map[string]int{}}
	q, stop := startQueue(t, t.TempDir(), testSpecs, inv)
	defer stop()
	rc, cb := newReceiver(t)

	for _, tc := range []struct {
		name, path string
		hdr        map[string]string
		body       string
		want       int
	}{
		{"unknown function", "/async-function/nope", nil, "", http.StatusNotFound},
		{"other namespace", "/async-function/echo.other", nil, "", http.StatusNotFound},
		{"bad callback", "/async-function/echo", map[string]string{"X-Callback-Url": "not a url"}, "", http.StatusBadRequest},
		{"callback without host", "/async-function/echo", map[string]string{"X-Callback-Url": "http:///x"}, "", http.StatusBadRequest},
		{"too large", "/async-function/echo", nil, strings.Repeat("x", 1025), http.StatusRequestEntityTooLarge},
	} {
		if w := post(t, q, tc.path, tc.body, tc.hdr); w.Code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, w.Code, w.Body, tc.want)
		}
	}

	const n = 50
	for i := range n {
		w := post(t, q, fmt.Sprintf("/async-function/echo.openfaas-fn/a/b?i=%d", i), fmt.Sprint("body", i),
			map[string]string{"X-Callback-Url": cb, "X-Call-Id": fmt.Sprint("echo-", i), "X-Echo": "e"})
		if w.Code != http.StatusAccepted || w.Header().Get("X-Call-Id") != fmt.Sprint("echo-", i) {
			t.Fatalf("POST: %d %q, X-Call-Id %q", w.Code, w.Body, w.Header().Get("X-Call-Id"))
		}
	}
	post(t, q, "/async-function/flaky", "", map[string]string{"X-Callback-Url": cb, "X-Call-Id": "flaky-1"})
	post(t, q, "/async-function/down", "", map[string]string{"X-Callback-Url": cb, "X-Call-Id": "down-1"})
	rc.wait(t, n+2)
	time.Sleep(100 * time.Millisecond) // room for a duplicate to show

	rc.mu.Lock()
	defer rc.mu.Unlock()
	for i := range n {
		id := fmt.Sprint("echo-", i)
		hs := rc.calls[id]
		if len(hs) != 1 {
			t.Errorf("%s: %d callbacks, want 1", id, len(hs))
			continue
		}
		if got := hs[0].Get("X-Function-Status"); got != "200" {
			t.Errorf("%s: status %s", id, got)
		}
		if got := hs[0].Get("X-Function-Name"); got != "echo" {
			t.Errorf("%s: name %s", id, got)
		}
		if got := hs[0].Get("X-Echo"); got != "e" {
			t.Errorf("%s: function's header X-Echo = %q", id, got)
		}
		if want := fmt.Sprintf("POST /function/echo/a/b i=%d body%d", i, i); rc.body[id] != want {
			t.Errorf("%s: body %q, want %q", id, rc.body[id], want)
		}
	}
	if h := rc.calls["flaky-1"]; len(h) != 1 || h[0].Get("X-Function-Status") != "200" {
		t.Errorf("flaky: callbacks %v, want one with 200", h)
	}
	if h := rc.calls["down-1"]; len(h) != 1 || h[0].Get("X-Function-Status") != "503" {
		t.Errorf("down: callbacks %v, want one with 503", h)
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if got := inv.attempts["flaky-1"]; got != 3 {
		t.Errorf("flaky: %d attempts, want 3", got)
	}
	if got := inv.attempts["down-1"]; got != 4 {
		t.Errorf("down: %d attempts, want 4 (its annotation)", got)
	}
	if inv.peak > 3+1+1 {
		t.Errorf("peak concurrency %d: echo's max_inflight is 3", inv.peak)
	}
}

// A call stored before the daemon stopped runs after it starts again.
func TestStoredCallsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	inv := &fakeInvoker{attempts: map[string]int{}}
	rc, cb := newReceiver(t)
	q, err := Open(t.Context(), Config{Dir: dir}, testSpecs, inv, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if w := post(t, q, "/async-function/echo", "x", map[string]string{"X-Callback-Url": cb, "X-Call-Id": fmt.Sprint(i)}); w.Code != http.StatusAccepted {
			t.Fatalf("POST: %d %s", w.Code, w.Body)
		}
	}
	q.Close() // never ran

	_, stop := startQueue(t, dir, testSpecs, inv)
	defer stop()
	rc.wait(t, 20)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.calls) != 20 {
		t.Errorf("%d calls called back, want 20", len(rc.calls))
	}
}

// A full queue refuses with 429 and Retry-After; nothing already stored
// is lost.
func TestFullQueue(t *testing.T) {
	q, err := Open(t.Context(), Config{Dir: t.TempDir(), MaxCalls: 3}, testSpecs, &fakeInvoker{attempts: map[string]int{}}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for i := range 4 {
		w := post(t, q, "/async-function/echo", "x", nil)
		want := http.StatusAccepted
		if i == 3 {
			want = http.StatusTooManyRequests
		}
		if w.Code != want {
			t.Fatalf("call %d: %d %s, want %d", i, w.Code, w.Body, want)
		}
		if i == 3 && w.Header().Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
	}
}
