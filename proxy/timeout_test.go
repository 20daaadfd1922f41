package proxy_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/emberfaas/ember/proxy"
)

// A function that never answers gets 504 once its own timeout (or, when it
// declares none, the gateway's) has passed, with a body naming both.
func TestUpstreamTimeout(t *testing.T) {
	for _, tc := range []struct {
		name             string
		leaseTimeout     time.Duration
		gatewayTimeout   time.Duration
		wantBody         string
		wantUpstreamDone bool
	}{
		{"function's own", 50 * time.Millisecond, time.Hour, "function f did not answer within 50ms\n", true},
		{"gateway default", 0, 80 * time.Millisecond, "function f did not answer within 80ms\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			entered, done := make(chan struct{}), make(chan struct{})
			_, addr := upstream(t, func(w http.ResponseWriter, r *http.Request) {
				close(entered)
				defer close(done)
				io.ReadAll(r.Body)   // after the body, the server watches the connection
				<-r.Context().Done() // hangs until the gateway gives up
			})
			b := newFakeBackends()
			b.set("f", addr)
			b.timeout = tc.leaseTimeout
			reg := prometheus.NewRegistry()
			log := slog.New(slog.NewTextHandler(t.Output(), nil))
			fr := httptest.NewServer(proxy.New(b, nil, reg, log, proxy.WithUpstreamTimeout(tc.gatewayTimeout)))
			t.Cleanup(fr.Close)

			resp, body := do(t, newRequest(t, "POST", fr.URL+"/function/f/hang", strings.NewReader("x")))
			if resp.StatusCode != http.StatusGatewayTimeout || body != tc.wantBody {
				t.Errorf("answer %d %q, want 504 %q", resp.StatusCode, body, tc.wantBody)
			}
			select {
			case <-entered:
				select {
				case <-done: // the upstream connection was closed: nothing leaks
				case <-time.After(time.Minute): // a guard, not a timing assertion
					t.Fatal("the upstream request was never cancelled")
				}
			default:
				// On a loaded machine the deadline can pass before the
				// request even reached the upstream: nothing to leak.
			}
			fr.Close()
			if diff := cmp.Diff(map[string]float64{"f.openfaas-fn 504": 1}, invocations(t, reg)); diff != "" {
				t.Errorf("invocations (-want +got):\n%s", diff)
			}
		})
	}
}

// A caller that goes away is counted as 499, as nginx does, not as the
// 200 nobody received.
func TestClientGoneCounted499(t *testing.T) {
	entered := make(chan struct{})
	_, addr := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done()
	})
	b := newFakeBackends()
	b.set("f", addr)
	fr, reg := frontWithMetrics(t, b)

	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, "GET", fr.URL+"/function/f/", nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		<-entered
		cancel()
	}()
	if resp, err := client.Do(req); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		t.Fatalf("request answered %d, want it cancelled", resp.StatusCode)
	}
	fr.Close()
	if diff := cmp.Diff(map[string]float64{"f.openfaas-fn 499": 1}, invocations(t, reg)); diff != "" {
		t.Errorf("invocations (-want +got):\n%s", diff)
	}
	b.leased(t)
}

// A refused connection is reported on the lease, so the controller takes
// that replica out of rotation; the request is served by another.
func TestRefusedReported(t *testing.T) {
	got := make(chan seen, 1)
	_, good := upstream(t, recorder(t, got))
	dead := closedAddr(t)
	b := newFakeBackends()
	b.set("f", dead, good)
	fr := front(t, b)
	resp, _ := do(t, newRequest(t, "GET", fr.URL+"/function/f/", nil))
	<-got
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("status %d, want 201 from the live replica", resp.StatusCode)
	}
	fr.Close()
	b.leased(t)
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range b.leases {
		want := int32(0)
		if l.addr == dead {
			want = 1
		}
		if n := l.refused.Load(); n != want {
			t.Errorf("lease of %s: Refused called %d times, want %d", l.addr, n, want)
		}
	}
}
