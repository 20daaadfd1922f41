package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emberfaas/ember/function"
	"github.com/emberfaas/ember/proxy"
)

// Allocation budgets per proxied call, checked by TestAllocations. An
// allocation costs the gateway twice, once to make and once to collect,
// on every call: a change that adds one should say why.
const (
	// ownAllocBudget is the proxy's own share: what a call costs beyond
	// the bare http.Transport round trip it makes. Of the 12: the call's
	// state, one string for its X-Start-Time and X-Call-Id, the upstream
	// request and its header map (2), and the deadline's context, timer
	// and the cancellation links they add to the transport's (about 7).
	ownAllocBudget = 12
	// totalAllocBudget is the whole call, the transport's share
	// included. That share is net/http's (37 in Go 1.26, 40 under the
	// race detector) and may move with a Go release; the budget then
	// moves with it, on purpose.
	totalAllocBudget = 53
)

// TestAllocations counts the allocations of a call through the proxy
// against an upstream that allocates nothing, so that every allocation
// counted is the gateway's. Counts are deterministic enough to assert,
// unlike timings: this runs in every `make check`.
func TestAllocations(t *testing.T) {
	addr := cannedUpstream(t)
	b := &fixedBackends{lease: &fixedLease{addr: addr}}
	tr := proxy.NewTransport()
	t.Cleanup(tr.CloseIdleConnections)
	p := proxy.New(b, tr, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	req := httptest.NewRequest("GET", "/function/f/a/b?x=1", nil)
	req.Header.Set("User-Agent", "bench")
	req.Header.Set("Accept", "*/*")
	w := &discardWriter{h: http.Header{}}
	call := func() {
		clear(w.h)
		w.code = 0
		p.ServeHTTP(w, req)
		if w.code != http.StatusOK {
			t.Fatalf("status %d, want 200", w.code)
		}
	}
	call() // dial, and make the function's series
	total := testing.AllocsPerRun(200, call)

	// The same round trip, straight through the transport.
	direct, err := http.NewRequest("GET", "http://"+addr+"/a/b?x=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	direct.Header = req.Header.Clone()
	roundTrip := func() {
		resp, err := tr.RoundTrip(direct)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	roundTrip()
	bare := testing.AllocsPerRun(200, roundTrip)

	t.Logf("allocations per call: %.0f through the proxy, %.0f of them the transport's round trip, %.0f the proxy's own",
		total, bare, total-bare)
	if own := total - bare; own > ownAllocBudget {
		t.Errorf("the proxy allocates %.0f times per call beyond its transport's round trip, budget %d: profile with "+
			"go test -run x -bench BenchmarkProxyCanned -memprofile mem.out -memprofilerate 1 ./proxy/ && "+
			"go tool pprof -sample_index=alloc_objects -top mem.out", own, ownAllocBudget)
	}
	if total > totalAllocBudget {
		t.Errorf("a proxied call allocates %.0f times, budget %d", total, totalAllocBudget)
	}
}

// BenchmarkProxyCanned is TestAllocations's call as a benchmark: the
// gateway's own cost per call, with an upstream that costs next to
// nothing, for profiles.
func BenchmarkProxyCanned(b *testing.B) {
	addr := cannedUpstream(b)
	p := proxy.New(&fixedBackends{lease: &fixedLease{addr: addr}}, nil, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	req := httptest.NewRequest("GET", "/function/f/a/b?x=1", nil)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		p.ServeHTTP(w, req)
		if w.code != http.StatusOK {
			b.Fatal(w.code)
		}
	}
}

// cannedAnswer is what cannedUpstream answers to every request.
var cannedAnswer = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n" +
	"Date: Tue, 01 Dec 2026 12:00:00 GMT\r\nContent-Length: 2\r\n\r\nok")

// cannedUpstream serves keep-alive connections that answer every
// bodiless request with cannedAnswer, allocating nothing per request.
func cannedUpstream(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				br := bufio.NewReaderSize(conn, 16<<10)
				for {
					for { // the request's head, to its blank line
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(bytes.TrimRight(line, "\r\n")) == 0 {
							break
						}
					}
					if _, err := conn.Write(cannedAnswer); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// fixedBackends lends the same lease every time, allocating nothing.
type fixedBackends struct{ lease *fixedLease }

func (b *fixedBackends) Acquire(context.Context, string) (function.Lease, error) { return b.lease, nil }

type fixedLease struct{ addr string }

func (l *fixedLease) Addr() string           { return l.addr }
func (l *fixedLease) Release()               {}
func (l *fixedLease) Refused()               {}
func (l *fixedLease) Timeout() time.Duration { return 0 }

// discardWriter is a ResponseWriter that keeps only the status.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *discardWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return len(b), nil
}
func (w *discardWriter) Flush() {}
