package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emberfaas/ember/function"
)

// Backends lends ready replicas; implemented by the controller.
type Backends interface {
	Acquire(ctx context.Context, name string) (function.Lease, error)
}

// Prefix is the path under which functions are served.
const Prefix = "/function/"

// maxAttempts bounds how often a request whose connection could not even be
// opened is tried on another (or the same) replica.
const maxAttempts = 3

// Proxy forwards function calls.
type Proxy struct {
	backends Backends
	log      *slog.Logger
	rp       *httputil.ReverseProxy
}

// New returns a Proxy using transport (nil: a transport tuned for many
// short requests to a few local hosts).
func New(b Backends, transport http.RoundTripper, log *slog.Logger) *Proxy {
	if transport == nil {
		transport = NewTransport()
	}
	p := &Proxy{backends: b, log: log}
	p.rp = &httputil.ReverseProxy{
		Rewrite:       p.rewrite,
		Transport:     transport,
		FlushInterval: -1, // stream: SSE, NDJSON and chunked bodies reach the caller as written
		ErrorHandler:  p.upstreamError,
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return p
}

// NewTransport returns the transport New uses by default.
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy: nil, // never send function traffic to an HTTP proxy from the environment
		DialContext: (&net.Dialer{
			Timeout:   2 * time.Second, // replicas are on a local bridge: a slow dial is a dead one
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     60 * time.Second,
		DisableCompression:  true, // pass bodies through untouched
	}
}

// call is one request's state, shared with the ReverseProxy callbacks
// through the request context.
type call struct {
	lease   function.Lease
	path    string
	dialErr error
	// retryable is false once the request body has been read, when a
	// failure can no longer be retried safely.
	body *trackedBody
}

type callKey struct{}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ref, rest, ok := splitPath(r.URL.Path)
	if !ok {
		http.Error(w, "function name missing: use /function/NAME", http.StatusNotFound)
		return
	}
	name, err := function.ResolveRef(ref)
	if err != nil {
		http.Error(w, "function "+ref+" not found", http.StatusNotFound)
		return
	}
	c := &call{path: rest}
	if r.Body != nil && r.Body != http.NoBody {
		c.body = &trackedBody{rc: r.Body}
		r.Body = c.body
		defer c.body.rc.Close()
	}
	ctx := context.WithValue(r.Context(), callKey{}, c)
	out := r.WithContext(ctx)
	var failed [maxAttempts]string // replicas that refused this request
	for attempt := 0; ; attempt++ {
		lease, err := p.acquire(ctx, name, failed[:attempt])
		if err != nil {
			p.acquireError(w, r, ref, err)
			return
		}
		c.lease, c.dialErr = lease, nil
		p.rp.ServeHTTP(w, out)
		lease.Release()
		if c.dialErr == nil {
			return
		}
		failed[attempt] = lease.Addr()
		if attempt+1 >= maxAttempts || (c.body != nil && c.body.read.Load()) {
			p.log.Warn("function unreachable", "fn", name, "addr", lease.Addr(), "err", c.dialErr)
			http.Error(w, "function "+ref+" unreachable", http.StatusBadGateway)
			return
		}
	}
}

// acquire lends a replica, preferring one that has not refused this
// request yet: a replica whose process just died refuses connections until
// the controller notices, and the retry should go elsewhere.
func (p *Proxy) acquire(ctx context.Context, name string, avoid []string) (function.Lease, error) {
	for i := 0; ; i++ {
		lease, err := p.backends.Acquire(ctx, name)
		if err != nil || i >= 4 || !slices.Contains(avoid, lease.Addr()) {
			return lease, err
		}
		lease.Release()
	}
}

func (p *Proxy) acquireError(w http.ResponseWriter, r *http.Request, ref string, err error) {
	switch {
	case errors.Is(err, function.ErrNotFound):
		http.Error(w, "function "+ref+" not found", http.StatusNotFound)
	case errors.Is(err, function.ErrQueueFull):
		w.Header().Set("Retry-After", "1")
		http.Error(w, fmt.Sprintf("function %s is waking and already holds too many requests: retry shortly", ref), http.StatusTooManyRequests)
	case r.Context().Err() != nil:
		// The caller went away; nobody reads an answer.
	default:
		http.Error(w, fmt.Sprintf("function %s is not available: %v", ref, err), http.StatusServiceUnavailable)
	}
}

// splitPath turns "/function/NAME/a/b" into ("NAME", "/a/b").
func splitPath(p string) (ref, rest string, ok bool) {
	s, found := strings.CutPrefix(p, Prefix)
	if !found {
		return "", "", false
	}
	ref, rest, _ = strings.Cut(s, "/")
	if ref == "" {
		return "", "", false
	}
	return ref, "/" + rest, true
}

func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	c := pr.In.Context().Value(callKey{}).(*call)
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = c.lease.Addr()
	pr.Out.URL.Path = c.path
	pr.Out.URL.RawPath = ""
	pr.Out.Host = pr.In.Host
	// ReverseProxy.Rewrite strips X-Forwarded-*; set them as OpenFaaS's
	// gateway does, keeping values a front proxy already set.
	in, out := pr.In.Header, pr.Out.Header
	if v := in.Get("X-Forwarded-For"); v != "" {
		out.Set("X-Forwarded-For", v)
	} else if host, _, err := net.SplitHostPort(pr.In.RemoteAddr); err == nil {
		out.Set("X-Forwarded-For", host)
	}
	if v := in.Get("X-Forwarded-Host"); v != "" {
		out.Set("X-Forwarded-Host", v)
	} else {
		out.Set("X-Forwarded-Host", pr.In.Host)
	}
	if v := in.Get("X-Forwarded-Proto"); v != "" {
		out.Set("X-Forwarded-Proto", v)
	} else if pr.In.TLS != nil {
		out.Set("X-Forwarded-Proto", "https")
	} else {
		out.Set("X-Forwarded-Proto", "http")
	}
}

func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	c := r.Context().Value(callKey{}).(*call)
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		// Nothing was sent: the caller retries on another replica.
		c.dialErr = err
		return
	}
	if r.Context().Err() != nil {
		return
	}
	p.log.Warn("upstream error", "path", r.URL.Path, "addr", c.lease.Addr(), "err", err)
	w.WriteHeader(http.StatusBadGateway)
}

// trackedBody notes whether the request body was read, so a failed attempt
// knows if it may be retried, and ignores Close so the transport's closing
// of a failed attempt's body does not end the next attempt's.
type trackedBody struct {
	rc   io.ReadCloser
	read atomic.Bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	b.read.Store(true)
	return b.rc.Read(p)
}

func (b *trackedBody) Close() error { return nil }
