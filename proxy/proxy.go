package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
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
//
// It drives the transport itself rather than through
// httputil.ReverseProxy: every call is on the gateway's hot path, and
// ReverseProxy's generality (a cloned request and header map, a context
// per callback, a client trace, media-type parsing of every response) cost
// more than half of the gateway's allocations and a good part of its
// added latency. What it did that a function call needs is here: hop-by-hop
// headers, upgrades, trailers, flushing of streams, aborting a half-copied
// answer.
type Proxy struct {
	backends  Backends
	log       *slog.Logger
	transport http.RoundTripper
	metrics   *metrics
	timeout   time.Duration
	ids       *callIDs
	buffers   *bufferPool
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
	p := &Proxy{backends: b, log: log, transport: transport, metrics: newMetrics(reg), timeout: DefaultUpstreamTimeout,
		ids: newCallIDs(), buffers: &bufferPool{}}
	for _, o := range opts {
		o(p)
	}
	return p
}

// bufferPool recycles the buffers bodies are copied through; without it
// each request allocates 32 KiB, and collecting that garbage was a fifth
// of the gateway's CPU.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() *[]byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return v
	}
	buf := make([]byte, 32<<10)
	return &buf
}

func (b *bufferPool) Put(buf *[]byte) { b.p.Put(buf) }

// NewTransport returns the transport New uses by default.
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy: nil, // never send function traffic to an HTTP proxy from the environment
		DialContext: (&net.Dialer{
			Timeout:   2 * time.Second, // replicas are on a local bridge: a slow dial is a dead one
			KeepAlive: 30 * time.Second,
		}).DialContext,
		// Enough idle connections per replica that a burst of concurrent
		// callers finds one each instead of dialling (and closing) anew.
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     60 * time.Second,
		DisableCompression:  true, // pass bodies through untouched
	}
}

// call is one request's state. Everything a call needs lives in this one
// allocation, including the backing of the header values the proxy adds
// to the request and to the answer, which the header maps share.
type call struct {
	name    string
	ref     string // as the caller wrote it, for messages
	started time.Time
	fm      *fnMetrics // set once the function is known to exist
	code    int        // the status the caller got
	done    bool       // the exchange ended normally, whatever its status
	gone    bool       // the caller went away before an answer was written
	path    string
	rawPath string // path's original encoding, when it has one
	timeout time.Duration
	ctx     context.Context // the upstream request's: the caller's, with the deadline
	cancel  context.CancelFunc
	out     *http.Request
	url     url.URL // the first attempt's out.URL
	body    trackedBody
	// vals back the header values set by the proxy: X-Call-Id,
	// X-Start-Time, X-Forwarded-For, -Host, -Proto and User-Agent.
	vals [6]string
	buf  [20 + callIDLen]byte // backs X-Start-Time and a new X-Call-Id
}

const (
	valCallID = iota
	valStart
	valForwardedFor
	valForwardedHost
	valForwardedProto
	valUserAgent
)

// stop ends the upstream deadline's timer.
func (c *call) stop() {
	if c.cancel != nil {
		c.cancel()
	}
}

// fail answers with an error of the proxy's own.
func (c *call) fail(w http.ResponseWriter, code int, msg string) {
	c.code = code
	http.Error(w, msg, code)
}

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
	c := &call{name: name, ref: ref, path: rest, started: time.Now(), code: http.StatusOK}
	defer p.record(c, r)
	defer c.stop()
	// As OpenFaaS's gateway: a call ID (kept if the caller sent one) and
	// the start time, on the request to the function and on the response.
	// Both values are cut from one string: one allocation, not two.
	b := strconv.AppendInt(c.buf[:0], c.started.UnixNano(), 10)
	n := len(b)
	c.vals[valCallID] = r.Header.Get("X-Call-Id")
	if c.vals[valCallID] == "" {
		b = p.ids.append(b)
	}
	both := string(b)
	c.vals[valStart] = both[:n]
	if len(both) > n {
		c.vals[valCallID] = both[n:]
	}
	h := w.Header()
	h["X-Call-Id"] = c.vals[valCallID : valCallID+1 : valCallID+1]
	h["X-Start-Time"] = c.vals[valStart : valStart+1 : valStart+1]
	if r.URL.RawPath != "" {
		if _, raw, ok := splitPath(r.URL.RawPath); ok {
			c.rawPath = raw // used only if it encodes path (url.URL.EscapedPath checks)
		}
	}
	var failed [maxAttempts]string // replicas that refused this request
	for attempt := 0; ; attempt++ {
		lease, err := p.acquire(r.Context(), name, failed[:attempt])
		if c.fm == nil && !errors.Is(err, function.ErrNotFound) {
			// The series are made once the function is known to exist:
			// names from open traffic must not grow the registry
			// without bound.
			c.fm = p.metrics.function(name)
			c.fm.started.Inc()
		}
		if err != nil {
			p.acquireError(w, r, c, err)
			return
		}
		if c.out == nil {
			p.outgoing(r, c, lease)
		} else {
			c.retarget()
		}
		retryErr := p.forward(w, r, c, lease)
		if retryErr == nil {
			c.done = true
			return
		}
		failed[attempt] = lease.Addr()
		if attempt+1 >= maxAttempts || c.body.read.Load() {
			p.log.Warn("function unreachable", "fn", name, "addr", lease.Addr(), "err", retryErr)
			c.fail(w, http.StatusBadGateway, "function "+ref+" unreachable")
			return
		}
	}
}

// record counts the call under its function and final status.
func (p *Proxy) record(c *call, r *http.Request) {
	if c.fm == nil {
		return
	}
	code := c.code
	if c.gone || (!c.done && r.Context().Err() != nil) {
		code = StatusClientClosed
	}
	cm := p.metrics.code(c.fm, code)
	cm.invocations.Inc()
	cm.seconds.Observe(time.Since(c.started).Seconds())
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

func (p *Proxy) acquireError(w http.ResponseWriter, r *http.Request, c *call, err error) {
	switch {
	case errors.Is(err, function.ErrNotFound):
		c.fail(w, http.StatusNotFound, "function "+c.ref+" not found")
	case errors.Is(err, function.ErrQueueFull):
		w.Header().Set("Retry-After", "1")
		c.fail(w, http.StatusTooManyRequests, fmt.Sprintf("function %s is waking and already holds too many requests: retry shortly", c.ref))
	case r.Context().Err() != nil:
		// The caller went away; nobody reads an answer.
		c.gone = true
	default:
		c.fail(w, http.StatusServiceUnavailable, fmt.Sprintf("function %s is not available: %v", c.ref, err))
	}
}

// splitPath turns "/function/REF/a/b" into ("REF", "/a/b"), REF being
// NAME or NAME.NAMESPACE. It is the one place a function route is parsed.
func splitPath(p string) (ref, rest string, ok bool) {
	s, found := strings.CutPrefix(p, Prefix)
	if !found {
		return "", "", false
	}
	ref, _, found = strings.Cut(s, "/")
	if ref == "" {
		return "", "", false
	}
	if !found {
		return ref, "/", true
	}
	// rest is s's own tail with its slash: no concatenation.
	return ref, s[len(ref):], true
}
