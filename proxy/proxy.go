package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emberfaas/ember/function"
)

// Backends lends ready replicas; implemented by the controller.
type Backends interface {
	Acquire(ctx context.Context, name string) (function.Lease, error)
}

// Prefix is the path under which functions are served.
const Prefix = "/function/"

// maxAttempts bounds how often a request that never reached an app (its
// connection refused, or its body not yet read when the connection failed)
// is tried again. Each refusal takes that replica out of rotation, so the
// next attempt goes to another ready replica or waits for one.
const maxAttempts = 8

// DefaultUpstreamTimeout is how long the gateway waits for a function that
// declares no timeout of its own, as OpenFaaS's gateway's upstream_timeout.
const DefaultUpstreamTimeout = 60 * time.Second

// StatusClientClosed is recorded, as nginx does, for a request whose caller
// went away before the answer was complete. Nobody receives it.
const StatusClientClosed = 499

// Proxy forwards function calls.
type Proxy struct {
	backends Backends
	log      *slog.Logger
	rp       *httputil.ReverseProxy
	metrics  *metrics
	timeout  time.Duration
}

// Option tunes a Proxy.
type Option func(*Proxy)

// WithUpstreamTimeout sets how long a function that declares no timeout
// may take to answer (default DefaultUpstreamTimeout); past it the caller
// gets 504.
func WithUpstreamTimeout(d time.Duration) Option {
	return func(p *Proxy) {
		if d > 0 {
			p.timeout = d
		}
	}
}

// New returns a Proxy using transport (nil: a transport tuned for many
// short requests to a few local hosts). Its metrics are registered on reg
// (nil: not registered).
func New(b Backends, transport http.RoundTripper, reg prometheus.Registerer, log *slog.Logger, opts ...Option) *Proxy {
	if transport == nil {
		transport = NewTransport()
	}
	p := &Proxy{backends: b, log: log, metrics: newMetrics(reg), timeout: DefaultUpstreamTimeout}
	for _, o := range opts {
		o(p)
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      transport,
		FlushInterval:  0, // responses of unknown length (SSE, NDJSON, chunked) are still flushed on every write
		ErrorHandler:   p.upstreamError,
		ModifyResponse: dropCallHeaders,
		BufferPool:     &bufferPool{},
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return p
}

// bufferPool recycles the buffers ReverseProxy copies bodies through;
// without it each request allocates 32 KiB, and collecting that garbage
// was a fifth of the gateway's CPU.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

// dropCallHeaders removes a function's own X-Call-Id and X-Start-Time:
// the gateway's, already on the response, are the ones that count.
func dropCallHeaders(resp *http.Response) error {
	resp.Header.Del("X-Call-Id")
	resp.Header.Del("X-Start-Time")
	return nil
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
	name    string
	lease   function.Lease
	path    string
	rawPath string // path's original encoding, when it has one
	callID  string
	start   string
	sw      *statusWriter
	client  context.Context // the caller's: done when it went away
	timeout time.Duration   // the upstream deadline of this call, 0 for none
	timeCtx context.Context // carries that deadline
	// retryErr is set when the attempt failed before the app received the
	// request, so it may be sent again; refused when the replica refused
	// the connection.
	retryErr error
	refused  bool
	// body tracks whether the request body was read: once it was, a
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
	started := time.Now()
	// The series are made once the function is known to exist: names
	// from open traffic must not grow the registry without bound.
	var fm *fnMetrics
	count := func() {
		if fm == nil {
			fm = p.metrics.function(name)
			fm.started.Inc()
		}
	}
	sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
	w = sw
	defer func() {
		if fm == nil {
			return
		}
		code := sw.code
		if sw.gone || (!sw.done && r.Context().Err() != nil) {
			code = StatusClientClosed
		}
		cm := p.metrics.code(fm, code)
		cm.invocations.Inc()
		cm.seconds.Observe(time.Since(started).Seconds())
	}()
	// As OpenFaaS's gateway: a call ID (kept if the caller sent one) and
	// the start time, on the request to the function and on the response.
	c := &call{name: name, path: rest, callID: r.Header.Get("X-Call-Id"), start: strconv.FormatInt(started.UnixNano(), 10), sw: sw}
	if c.callID == "" {
		c.callID = newCallID()
	}
	w.Header().Set("X-Call-Id", c.callID)
	w.Header().Set("X-Start-Time", c.start)
	if r.Body != nil && r.Body != http.NoBody {
		c.body = &trackedBody{rc: r.Body}
		r.Body = c.body
		defer c.body.rc.Close()
	}
	if r.URL.RawPath != "" {
		if _, raw, ok := splitPath(r.URL.RawPath); ok {
			c.rawPath = raw // used only if it encodes path (url.URL.EscapedPath checks)
		}
	}
	var failed [maxAttempts]string // replicas that refused this request
	var out *http.Request
	for attempt := 0; ; attempt++ {
		lease, err := p.acquire(r.Context(), name, failed[:attempt])
		if !errors.Is(err, function.ErrNotFound) {
			count()
		}
		if err != nil {
			p.acquireError(w, r, ref, err)
			return
		}
		if out == nil {
			var cancel context.CancelFunc
			out, cancel = p.outgoing(r, c, lease)
			defer cancel()
		}
		c.lease, c.retryErr, c.refused = lease, nil, false
		p.rp.ServeHTTP(w, out)
		// Not reached when copying the answer failed half-way: the
		// ReverseProxy aborts the handler with a panic.
		sw.done = true
		if c.refused {
			lease.Refused()
		}
		lease.Release()
		if c.retryErr == nil {
			return
		}
		failed[attempt] = lease.Addr()
		if attempt+1 >= maxAttempts || (c.body != nil && c.body.read.Load()) {
			p.log.Warn("function unreachable", "fn", name, "addr", lease.Addr(), "err", c.retryErr)
			http.Error(w, "function "+ref+" unreachable", http.StatusBadGateway)
			return
		}
	}
}

// outgoing makes the request sent upstream: the call rides in its context
// for the ReverseProxy callbacks, with the function's deadline. A
// WebSocket or other upgrade has none: it lives as long as both ends want.
// The caller ends the deadline's timer with cancel once the call is done.
func (p *Proxy) outgoing(r *http.Request, c *call, lease function.Lease) (*http.Request, context.CancelFunc) {
	ctx := r.Context()
	c.client = ctx
	cancel := context.CancelFunc(func() {})
	if r.Header.Get("Upgrade") == "" {
		c.timeout = lease.Timeout()
		if c.timeout <= 0 {
			c.timeout = p.timeout
		}
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		c.timeCtx = ctx
	}
	return r.WithContext(context.WithValue(ctx, callKey{}, c)), cancel
}

// acquire lends a replica, preferring one that has not refused this
// request yet: a replica whose process just died refuses connections until
// the controller notices, and the retry should go elsewhere.
func (p *Proxy) acquire(ctx context.Context, name string, avoid []string) (function.Lease, error) {
	for i := 0; ; i++ {
		lease, err := p.backends.Acquire(ctx, name)
		if err != nil || i >= 1 || !slices.Contains(avoid, lease.Addr()) {
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
		if sw, ok := w.(*statusWriter); ok {
			sw.gone = true
		}
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
	pr.Out.URL.RawPath = c.rawPath
	pr.Out.Host = pr.In.Host
	pr.Out.Header.Set("X-Call-Id", c.callID)
	pr.Out.Header.Set("X-Start-Time", c.start)
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
	if c.client.Err() != nil {
		// The caller went away; nobody reads an answer.
		c.sw.gone = true
		return
	}
	if c.timeCtx != nil && c.timeCtx.Err() != nil {
		p.log.Warn("function timed out", "fn", c.name, "addr", c.lease.Addr(), "timeout", c.timeout)
		http.Error(w, fmt.Sprintf("function %s did not answer within %s", c.name, c.timeout), http.StatusGatewayTimeout)
		return
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		// Nothing was sent: the caller retries on another replica, and this
		// one leaves rotation until it accepts connections again.
		c.retryErr, c.refused = err, true
		return
	}
	if c.body != nil && !c.body.read.Load() {
		// The connection failed before any of the body was sent: the app
		// cannot have acted on the request. (A bodiless request that
		// failed on a reused connection before anything was written is
		// retried by the transport itself; one that failed after, as when
		// the app died handling it, is not sent again: it may be what
		// killed it.)
		c.retryErr = err
		return
	}
	p.log.Warn("upstream error", "fn", c.name, "addr", c.lease.Addr(), "err", err)
	w.WriteHeader(http.StatusBadGateway)
}

// statusWriter records the status code for the metrics. Unwrap lets
// http.ResponseController reach the real writer for flushing and for
// hijacking WebSocket upgrades.
type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
	done  bool // the exchange ended normally, whatever its status
	gone  bool // the caller went away before an answer was written
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote && code >= 200 {
		s.code, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// newCallID returns a random UUID (version 4).
func newCallID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
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
