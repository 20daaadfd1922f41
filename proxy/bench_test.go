package proxy_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emberfaas/ember/proxy"
)

// BenchmarkProxy measures the gateway's own cost per request against a
// bare httputil.ReverseProxy baseline in BenchmarkBaseline: run both with
// -benchmem and compare.
func BenchmarkProxy(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer up.Close()
	be := newFakeBackends()
	be.set("f", up.Listener.Addr().String())
	p := proxy.New(be, nil, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	req := httptest.NewRequest("GET", "/function/f/a/b?x=1", nil)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		p.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}

func BenchmarkBaseline(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer up.Close()
	target := up.Listener.Addr().String()
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host, pr.Out.URL.Path = "http", target, "/a/b"
		},
		Transport: proxy.NewTransport(),
	}
	req := httptest.NewRequest("GET", "/function/f/a/b?x=1", nil)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		rp.ServeHTTP(w, req)
	}
}
