package itest

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

// Registry is an in-memory OCI distribution registry served over plain HTTP
// on 127.0.0.1. Its content lives as long as the value, across SetDown, so a
// test can take it down and bring it back with the same images.
type Registry struct {
	// Addr is "127.0.0.1:PORT", the host part of image references.
	Addr string

	handler http.Handler
	// throttle is the blob download rate in bytes per second; 0: none.
	throttle atomic.Int64

	mu     sync.Mutex // guards below
	srv    *http.Server
	served chan struct{} // closed when srv.Serve returns
}

// StartRegistry starts a registry on a free port of 127.0.0.1.
func StartRegistry() (*Registry, error) {
	r := &Registry{
		// The registry logs every request; the tests care about outcomes.
		handler: registry.New(registry.Logger(log.New(io.Discard, "", 0))),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("registry listen: %w", err)
	}
	r.Addr = ln.Addr().String()
	r.serve(ln)
	return r, nil
}

// Ref returns the reference "ADDR/repo" for a repository path such as
// "echo:v1" on this registry.
func (r *Registry) Ref(repo string) string {
	return r.Addr + "/" + repo
}

func (r *Registry) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(r.serveHTTP), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	r.srv, r.served = srv, served
	go func() {
		defer close(served)
		_ = srv.Serve(ln) // returns ErrServerClosed on Close
	}()
}

// SetThrottle limits blob downloads to bytesPerSec, each on its own (0:
// no limit), as a slow uplink does, so that a test can watch a pull go.
// It applies to downloads that start after it.
func (r *Registry) SetThrottle(bytesPerSec int64) { r.throttle.Store(bytesPerSec) }

func (r *Registry) serveHTTP(w http.ResponseWriter, req *http.Request) {
	if rate := r.throttle.Load(); rate > 0 && req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/") {
		w = &slowWriter{ResponseWriter: w, rate: rate}
	}
	r.handler.ServeHTTP(w, req)
}

// slowWriter writes in chunks of a tenth of a second's worth at its rate.
type slowWriter struct {
	http.ResponseWriter
	rate int64
}

func (s *slowWriter) Write(p []byte) (int, error) {
	chunk := max(int(s.rate/10), 1)
	n := 0
	for len(p) > 0 {
		c := min(chunk, len(p))
		m, err := s.ResponseWriter.Write(p[:c])
		n += m
		if err != nil {
			return n, err
		}
		http.NewResponseController(s.ResponseWriter).Flush()
		time.Sleep(time.Duration(int64(c) * int64(time.Second) / s.rate))
		p = p[c:]
	}
	return n, nil
}

// SetDown simulates an outage: true closes the listener and every open
// connection, so clients get "connection refused" as from a registry that is
// down; false listens again on the same address. Content is kept.
func (r *Registry) SetDown(down bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case down && r.srv != nil:
		r.stopLocked()
		return nil
	case !down && r.srv == nil:
		ln, err := net.Listen("tcp", r.Addr)
		if err != nil {
			return fmt.Errorf("registry relisten on %s: %w", r.Addr, err)
		}
		r.serve(ln)
		return nil
	}
	return nil
}

// Close stops the registry for good. It is safe to call more than once.
func (r *Registry) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopLocked()
}

func (r *Registry) stopLocked() {
	if r.srv == nil {
		return
	}
	// Close, not Shutdown: an outage does not drain in-flight pulls. Its
	// error is the listener's close error; the listener is gone either way.
	_ = r.srv.Close()
	<-r.served
	r.srv, r.served = nil, nil
}

// Up reports whether the registry answers the distribution API's version
// check; tests use it to assert SetDown took effect.
func (r *Registry) Up(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.Addr+"/v2/", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
