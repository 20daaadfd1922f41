package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/emberfaas/ember/function"
	"github.com/emberfaas/ember/proxy"
)

var _ proxy.Backends = (*fakeBackends)(nil)

// fakeBackends lends leases on fixed addresses, round-robin per function,
// and remembers every lease so a test can check each was released once.
type fakeBackends struct {
	mu      sync.Mutex    // guards below
	timeout time.Duration // every lease's Timeout
	addrs   map[string][]string
	err     map[string]error // function → Acquire error
	next    map[string]int
	leases  []*fakeLease
}

type fakeLease struct {
	addr     string
	timeout  time.Duration
	released atomic.Int32
	refused  atomic.Int32
}

func (l *fakeLease) Addr() string           { return l.addr }
func (l *fakeLease) Release()               { l.released.Add(1) }
func (l *fakeLease) Refused()               { l.refused.Add(1) }
func (l *fakeLease) Timeout() time.Duration { return l.timeout }

func newFakeBackends() *fakeBackends {
	return &fakeBackends{addrs: map[string][]string{}, err: map[string]error{}, next: map[string]int{}}
}

func (b *fakeBackends) set(name string, addrs ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.addrs[name] = addrs
}

func (b *fakeBackends) Acquire(ctx context.Context, name string) (function.Lease, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.err[name]; err != nil {
		return nil, err
	}
	addrs, ok := b.addrs[name]
	if !ok {
		return nil, fmt.Errorf("function %s: %w", name, function.ErrNotFound)
	}
	l := &fakeLease{addr: addrs[b.next[name]%len(addrs)], timeout: b.timeout}
	b.next[name]++
	b.leases = append(b.leases, l)
	return l, nil
}

// leased returns the addresses leased so far, in order, and fails t unless
// every lease was released exactly once. Call it after the front server is
// closed: a handler releases after the client may have read the response.
func (b *fakeBackends) leased(t *testing.T) []string {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for i, l := range b.leases {
		out = append(out, l.addr)
		if n := l.released.Load(); n != 1 {
			t.Errorf("lease %d (%s) released %d times, want 1", i, l.addr, n)
		}
	}
	return out
}

// front serves the proxy on a loopback listener.
func front(t *testing.T, b proxy.Backends) *httptest.Server {
	t.Helper()
	srv, _ := frontWithMetrics(t, b)
	return srv
}

func frontWithMetrics(t *testing.T, b proxy.Backends) (*httptest.Server, *prometheus.Registry) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	srv := httptest.NewServer(proxy.New(b, nil, reg, log))
	t.Cleanup(srv.Close)
	return srv, reg
}

// upstream is an httptest server standing in for a replica.
func upstream(t *testing.T, h http.HandlerFunc) (*httptest.Server, string) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, srv.Listener.Addr().String()
}

// closedAddr is a loopback address nothing listens on: dialing it fails
// at once with "connection refused". The port stays bound (without
// listen) until the test ends, so no server can be given it meanwhile;
// a port merely closed could come back as the front server's own.
func closedAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
}

// seen is what an upstream received.
type seen struct {
	Method, URI, Host string
	Header            http.Header
	Body              string
}

func recorder(t *testing.T, got chan<- seen) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("upstream read body: %v", err)
		}
		select {
		case got <- seen{Method: r.Method, URI: r.RequestURI, Host: r.Host, Header: r.Header.Clone(), Body: string(body)}:
		default:
			t.Errorf("upstream got %s %s more than once", r.Method, r.RequestURI)
		}
		w.Header().Set("X-Upstream", "yes")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "reply to "+r.Method)
	}
}

// client's timeout turns a hung proxy into a failure rather than a test
// binary timeout; no test comes near it.
var client = &http.Client{Timeout: time.Minute}

func do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	return resp, string(body)
}

func newRequest(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestForward(t *testing.T) {
	for _, tc := range []struct {
		method, path, body string
		wantURI            string
	}{
		{"GET", "/function/f/a/b?x=1", "", "/a/b?x=1"},
		{"GET", "/function/f", "", "/"},
		{"GET", "/function/f/", "", "/"},
		{"GET", "/function/f?x=1&y=%2F", "", "/?x=1&y=%2F"},
		{"GET", "/function/f.openfaas-fn/x", "", "/x"},
		{"GET", "/function/f/hello%20world", "", "/hello%20world"},
		{"POST", "/function/f/submit?id=7", `{"a":1}`, "/submit?id=7"},
		{"PUT", "/function/f/items/3", "new value", "/items/3"},
		{"PATCH", "/function/f/items/3", "patch", "/items/3"},
		{"DELETE", "/function/f/items/3", "", "/items/3"},
		{"OPTIONS", "/function/f/", "", "/"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			got := make(chan seen, 1)
			_, addr := upstream(t, recorder(t, got))
			b := newFakeBackends()
			b.set("f", addr)
			fr := front(t, b)

			req := newRequest(t, tc.method, fr.URL+tc.path, strings.NewReader(tc.body))
			req.Header.Set("X-Custom", "kept")
			req.Header.Add("X-Multi", "one")
			req.Header.Add("X-Multi", "two")
			req.Header.Set("Authorization", "Bearer token")
			req.Header.Set("Content-Type", "application/json")
			resp, body := do(t, req)

			if resp.StatusCode != http.StatusCreated || body != "reply to "+tc.method || resp.Header.Get("X-Upstream") != "yes" {
				t.Errorf("response = %d %q X-Upstream=%q, want the upstream's 201 %q", resp.StatusCode, body,
					resp.Header.Get("X-Upstream"), "reply to "+tc.method)
			}
			s := <-got
			if s.Method != tc.method || s.URI != tc.wantURI || s.Body != tc.body {
				t.Errorf("upstream got %s %s body %q, want %s %s body %q", s.Method, s.URI, s.Body, tc.method, tc.wantURI, tc.body)
			}
			if s.Host != fr.Listener.Addr().String() {
				t.Errorf("upstream Host = %q, want the caller's %q", s.Host, fr.Listener.Addr().String())
			}
			for k, want := range map[string][]string{
				"X-Custom":      {"kept"},
				"X-Multi":       {"one", "two"},
				"Authorization": {"Bearer token"},
				"Content-Type":  {"application/json"},
			} {
				if diff := cmp.Diff(want, s.Header.Values(k)); diff != "" {
					t.Errorf("upstream header %s (-want +got):\n%s", k, diff)
				}
			}
			fr.Close()
			if diff := cmp.Diff([]string{addr}, b.leased(t)); diff != "" {
				t.Errorf("leases (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEscapedPathPreserved(t *testing.T) {
	got := make(chan seen, 1)
	_, addr := upstream(t, recorder(t, got))
	b := newFakeBackends()
	b.set("f", addr)
	fr := front(t, b)
	resp, _ := do(t, newRequest(t, "GET", fr.URL+"/function/f/files/a%2Fb?x=1", nil))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if s, want := <-got, "/files/a%2Fb?x=1"; s.URI != want {
		t.Errorf("upstream got %s, want %s", s.URI, want)
	}
}

func TestRefused(t *testing.T) {
	for _, tc := range []struct {
		name, path string
		acquireErr error
		wantCode   int
		wantBody   string
		wantHeader http.Header
	}{
		{"unknown function", "/function/nope/x", nil, http.StatusNotFound, "function nope not found\n", nil},
		{"other namespace", "/function/f.other/x", nil, http.StatusNotFound, "function f.other not found\n", nil},
		{"no name", "/function/", nil, http.StatusNotFound, "", nil},
		{"not a function path", "/functions/f", nil, http.StatusNotFound, "", nil},
		{"no replica", "/function/slow/x", errors.New("function slow: no ready replica within 30s"),
			http.StatusServiceUnavailable, "function slow is not available: function slow: no ready replica within 30s\n", nil},
		{"wake queue full", "/function/slow/x", fmt.Errorf("function slow: %w (1000)", function.ErrQueueFull),
			http.StatusTooManyRequests, "", http.Header{"Retry-After": {"1"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hits atomic.Int32
			_, addr := upstream(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
			b := newFakeBackends()
			b.set("f", addr)
			b.set("slow", addr)
			if tc.acquireErr != nil {
				b.err["slow"] = tc.acquireErr
			}
			fr := front(t, b)
			resp, body := do(t, newRequest(t, "GET", fr.URL+tc.path, nil))
			if resp.StatusCode != tc.wantCode {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.wantCode)
			}
			if tc.wantBody != "" && body != tc.wantBody {
				t.Errorf("body = %q, want %q", body, tc.wantBody)
			}
			for k, want := range tc.wantHeader {
				if diff := cmp.Diff(want, resp.Header.Values(k)); diff != "" {
					t.Errorf("header %s (-want +got):\n%s", k, diff)
				}
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type = %q, want text/plain", ct)
			}
			if n := hits.Load(); n != 0 {
				t.Errorf("upstream hit %d times", n)
			}
			fr.Close()
			if got := b.leased(t); len(got) != 0 {
				t.Errorf("leased %v, want none", got)
			}
		})
	}
}

func TestForwardedHeaders(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   map[string]string
		// want values; "FRONT" stands for the front server's host:port.
		want map[string]string
	}{
		{"absent", nil, map[string]string{
			"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": "FRONT", "X-Forwarded-Proto": "http"}},
		{"present", map[string]string{
			"X-Forwarded-For": "203.0.113.7, 10.1.1.1", "X-Forwarded-Host": "api.example.com", "X-Forwarded-Proto": "https"},
			map[string]string{
				"X-Forwarded-For": "203.0.113.7, 10.1.1.1", "X-Forwarded-Host": "api.example.com", "X-Forwarded-Proto": "https"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan seen, 1)
			_, addr := upstream(t, recorder(t, got))
			b := newFakeBackends()
			b.set("f", addr)
			fr := front(t, b)
			req := newRequest(t, "GET", fr.URL+"/function/f/", nil)
			for k, v := range tc.in {
				req.Header.Set(k, v)
			}
			do(t, req)
			s := <-got
			for k, want := range tc.want {
				if want == "FRONT" {
					want = fr.Listener.Addr().String()
				}
				if diff := cmp.Diff([]string{want}, s.Header.Values(k)); diff != "" {
					t.Errorf("%s (-want +got):\n%s", k, diff)
				}
			}
		})
	}
}

func TestRetryOnDialError(t *testing.T) {
	for _, tc := range []struct {
		method, body string
	}{
		{"GET", ""},
		{"POST", "payload that must arrive whole"},
	} {
		t.Run(tc.method, func(t *testing.T) {
			got := make(chan seen, 1)
			_, good := upstream(t, recorder(t, got))
			dead := closedAddr(t)
			b := newFakeBackends()
			b.set("f", dead, good)
			fr := front(t, b)

			resp, body := do(t, newRequest(t, tc.method, fr.URL+"/function/f/x", strings.NewReader(tc.body)))
			if resp.StatusCode != http.StatusCreated || body != "reply to "+tc.method {
				t.Errorf("response = %d %q, want 201 from the live replica", resp.StatusCode, body)
			}
			if s := <-got; s.Body != tc.body {
				t.Errorf("upstream body = %q, want %q", s.Body, tc.body)
			}
			fr.Close()
			if diff := cmp.Diff([]string{dead, good}, b.leased(t)); diff != "" {
				t.Errorf("leases (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAllDialErrors(t *testing.T) {
	dead1, dead2 := closedAddr(t), closedAddr(t)
	b := newFakeBackends()
	b.set("f", dead1, dead2)
	fr := front(t, b)
	resp, body := do(t, newRequest(t, "POST", fr.URL+"/function/f/x", strings.NewReader("data")))
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status = %d, want 502", resp.StatusCode)
	}
	if want := "function f unreachable\n"; body != want {
		t.Errorf("body = %q, want %q", body, want)
	}
	fr.Close()
	// How many leases the proxy takes to find other replicas is its own
	// business; that both were tried, a bounded number of times, and
	// every lease went back is the contract.
	leased := b.leased(t)
	tried := map[string]bool{}
	for _, a := range leased {
		tried[a] = true
	}
	if want := map[string]bool{dead1: true, dead2: true}; !maps.Equal(tried, want) || len(leased) > 20 {
		t.Errorf("leased %v, want both dead replicas tried, a bounded number of times", leased)
	}
}

// A replica that read part of the body and then dropped the connection may
// have acted on it: the request must not be sent again.
func TestNoRetryAfterBodyRead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	readSome := make(chan struct{})
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		buf := make([]byte, 4096)
		conn.Read(buf) // headers and the start of the body
		close(readSome)
		conn.Close()
	}()
	var hits atomic.Int32
	_, good := upstream(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	b := newFakeBackends()
	b.set("f", ln.Addr().String(), good)
	fr := front(t, b)

	resp, _ := do(t, newRequest(t, "POST", fr.URL+"/function/f/charge", bytes.NewReader(make([]byte, 64<<10))))
	select {
	case <-readSome:
	case <-time.After(time.Minute): // a guard against hanging, not a timing assertion
		t.Fatal("the proxy never sent the request to the first replica")
	}
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status = %d, want 502", resp.StatusCode)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("second replica got the request %d times, want 0 (no retry)", n)
	}
	fr.Close()
	if diff := cmp.Diff([]string{ln.Addr().String()}, b.leased(t)); diff != "" {
		t.Errorf("leases (-want +got):\n%s", diff)
	}
}

func TestStreaming(t *testing.T) {
	next := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(next) }) }
	_, addr := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		io.WriteString(w, `{"n":1}`+"\n")
		w.(http.Flusher).Flush()
		select {
		case <-next:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, `{"n":2}`+"\n")
	})
	t.Cleanup(unblock) // runs before the servers close, should the test fail early
	b := newFakeBackends()
	b.set("f", addr)
	fr := front(t, b)

	resp, err := client.Do(newRequest(t, "GET", fr.URL+"/function/f/events", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ContentLength != -1 {
		t.Errorf("ContentLength = %d, want -1 (streamed)", resp.ContentLength)
	}
	lines := bufio.NewReader(resp.Body)
	readLine := func() string {
		t.Helper()
		got := make(chan string, 1)
		go func() {
			s, _ := lines.ReadString('\n')
			got <- s
		}()
		select {
		case s := <-got:
			return s
		case <-time.After(10 * time.Second): // a guard against hanging, not a timing assertion
			t.Fatal("no line reached the client: the proxy buffers the stream")
			return ""
		}
	}
	if got, want := readLine(), `{"n":1}`+"\n"; got != want {
		t.Fatalf("first line = %q, want %q", got, want)
	}
	// The upstream writes the second line only now.
	unblock()
	if got, want := readLine(), `{"n":2}`+"\n"; got != want {
		t.Errorf("second line = %q, want %q", got, want)
	}
}

func TestRedirectPassedThrough(t *testing.T) {
	var hits atomic.Int32
	_, addr := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Redirect(w, r, "/login?next=%2F", http.StatusFound)
	})
	b := newFakeBackends()
	b.set("f", addr)
	fr := front(t, b)
	noFollow := &http.Client{Timeout: time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Do(newRequest(t, "GET", fr.URL+"/function/f/private", nil))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/login?next=%2F" {
		t.Errorf("response = %d Location %q, want 302 /login?next=%%2F", resp.StatusCode, resp.Header.Get("Location"))
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("upstream hit %d times, want 1 (redirect not followed)", n)
	}
}

func TestLargeBody(t *testing.T) {
	const size = 8 << 20
	payload := make([]byte, size)
	rand.Read(payload)
	sum := sha256.Sum256(payload)
	_, addr := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
	})
	b := newFakeBackends()
	b.set("f", addr)
	fr := front(t, b)
	req := newRequest(t, "POST", fr.URL+"/function/f/upload", bytes.NewReader(payload))
	resp, body := do(t, req)
	if want := fmt.Sprintf("%d %s", size, hex.EncodeToString(sum[:])); resp.StatusCode != http.StatusOK || body != want {
		t.Errorf("response = %d %q, want 200 %q", resp.StatusCode, body, want)
	}

	// Chunked, length unknown up front.
	req = newRequest(t, "POST", fr.URL+"/function/f/upload", io.MultiReader(bytes.NewReader(payload)))
	req.ContentLength = -1
	resp, body = do(t, req)
	if want := fmt.Sprintf("%d %s", size, hex.EncodeToString(sum[:])); resp.StatusCode != http.StatusOK || body != want {
		t.Errorf("chunked: response = %d %q, want 200 %q", resp.StatusCode, body, want)
	}
}

// As OpenFaaS's gateway: a call ID and start time go to the function and
// back to the caller, and invocations are counted under the gateway's
// metric names with NAME.NAMESPACE.
func TestCallIDAndMetrics(t *testing.T) {
	got := make(chan seen, 2)
	_, addr := upstream(t, recorder(t, got))
	b := newFakeBackends()
	b.set("f", addr)
	fr, reg := frontWithMetrics(t, b)

	resp, _ := do(t, newRequest(t, "GET", fr.URL+"/function/f/", nil))
	s := <-got
	id := s.Header.Get("X-Call-Id")
	if id == "" || s.Header.Get("X-Start-Time") == "" {
		t.Errorf("upstream headers X-Call-Id %q X-Start-Time %q, want both set", id, s.Header.Get("X-Start-Time"))
	}
	if got := resp.Header.Values("X-Call-Id"); !slices.Equal(got, []string{id}) {
		t.Errorf("response X-Call-Id = %q, want the one sent upstream [%s]", got, id)
	}

	req := newRequest(t, "GET", fr.URL+"/function/f/", nil)
	req.Header.Set("X-Call-Id", "caller-chosen")
	resp, _ = do(t, req)
	if s := <-got; s.Header.Get("X-Call-Id") != "caller-chosen" || resp.Header.Get("X-Call-Id") != "caller-chosen" {
		t.Errorf("call ID upstream %q, response %q: want the caller's kept", s.Header.Get("X-Call-Id"), resp.Header.Get("X-Call-Id"))
	}
	fr.Close()
	if diff := cmp.Diff(map[string]float64{"f.openfaas-fn 201": 2}, invocations(t, reg)); diff != "" {
		t.Errorf("gateway_function_invocation_total (-want +got):\n%s", diff)
	}
}

// invocations reads gateway_function_invocation_total as
// "function_name code" → count.
func invocations(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	counts := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "gateway_function_invocation_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			counts[labels["function_name"]+" "+labels["code"]] = m.GetCounter().GetValue()
		}
	}
	return counts
}

// /function/* needs no credentials, so names that do not exist come from
// anyone: each must not leave a metric series behind, or random names grow
// the registry (and the proxy's cache) without bound.
func TestMetricsUnknownFunctions(t *testing.T) {
	b := newFakeBackends()
	fr, reg := frontWithMetrics(t, b)
	for i := range 50 {
		resp, _ := do(t, newRequest(t, "GET", fmt.Sprintf("%s/function/random-%d/", fr.URL, i), nil))
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("status %d, want 404", resp.StatusCode)
		}
	}
	fr.Close()
	if got := invocations(t, reg); len(got) != 0 {
		t.Errorf("%d series for functions that do not exist, want 0", len(got))
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if n := len(mf.GetMetric()); n != 0 {
			t.Errorf("%s has %d series, want 0", mf.GetName(), n)
		}
	}
}
