package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/emberfaas/ember/function"
)

// outgoing makes the request sent upstream, once per call: the caller's,
// with the function's path, the function's deadline, and the headers a
// gateway adds. A WebSocket or other upgrade has no deadline: it lives as
// long as both ends want. The caller ends the deadline's timer (c.stop)
// once the call is done.
func (p *Proxy) outgoing(r *http.Request, c *call, lease function.Lease) {
	ctx := r.Context()
	if r.Header.Get("Upgrade") == "" {
		c.timeout = lease.Timeout()
		if c.timeout <= 0 {
			c.timeout = p.timeout
		}
		ctx, c.cancel = context.WithTimeout(ctx, c.timeout)
	}
	c.ctx = ctx
	out := r.WithContext(ctx)
	out.RequestURI = ""
	out.Close = false // the caller's connection is not the replica's
	c.url = url.URL{Scheme: "http", Path: c.path, RawPath: c.rawPath, RawQuery: r.URL.RawQuery, ForceQuery: r.URL.ForceQuery}
	out.URL = &c.url
	out.Header = outHeader(r, c)
	if r.ContentLength == 0 {
		// No body: a nil one lets the transport retry a request that
		// met a keep-alive connection the replica had just closed.
		out.Body = nil
	} else {
		c.body.rc = r.Body
		out.Body = &c.body
	}
	c.out = out
}

// retarget gives a retry a request of its own: the transport may still be
// reading the failed attempt's.
func (c *call) retarget() {
	u := *c.out.URL
	c.out = c.out.WithContext(c.ctx)
	c.out.URL = &u
}

// outHeader is the caller's header without its hop-by-hop fields, plus
// what OpenFaaS's gateway adds: X-Call-Id, X-Start-Time and X-Forwarded-*
// (keeping values a front proxy already set). Values are shared with the
// caller's header and c.vals, not copied: the transport only reads them.
func outHeader(r *http.Request, c *call) http.Header {
	in := r.Header
	out := make(http.Header, len(in)+6)
	for k, v := range in {
		// Forwarded is dropped as ReverseProxy did: ember sets the
		// X-Forwarded-* family, and a caller's Forwarded could contradict
		// it.
		if !isHopHeader(k) && k != "Forwarded" {
			out[k] = v
		}
	}
	if conn, ok := in["Connection"]; ok {
		deleteConnectionTokens(out, conn)
	}
	if hasToken(in["Te"], "trailers") {
		// Tell a function that cares that trailers reach the caller.
		out["Te"] = []string{"trailers"}
	}
	if up := upgradeType(in); up != "" {
		out["Connection"] = []string{"Upgrade"}
		out["Upgrade"] = []string{up}
	}
	set := func(k string, i int, v string) {
		c.vals[i] = v
		out[k] = c.vals[i : i+1 : i+1]
	}
	if in.Get("X-Forwarded-For") == "" {
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			set("X-Forwarded-For", valForwardedFor, host)
		}
	}
	if in.Get("X-Forwarded-Host") == "" {
		set("X-Forwarded-Host", valForwardedHost, r.Host)
	}
	if in.Get("X-Forwarded-Proto") == "" {
		proto := "http"
		if r.TLS != nil {
			proto = "https"
		}
		set("X-Forwarded-Proto", valForwardedProto, proto)
	}
	if _, ok := in["User-Agent"]; !ok {
		// An empty value keeps the transport from sending Go's own.
		set("User-Agent", valUserAgent, "")
	}
	out["X-Call-Id"] = c.vals[valCallID : valCallID+1 : valCallID+1]
	out["X-Start-Time"] = c.vals[valStart : valStart+1 : valStart+1]
	return out
}

// forward makes one attempt on lease and answers the caller, unless the
// attempt failed before the app could have acted on the request: then it
// returns why, and the request may be sent to another replica.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, c *call, lease function.Lease) error {
	defer lease.Release()
	c.out.URL.Host = lease.Addr()
	resp, err := p.transport.RoundTrip(c.out)
	if err != nil {
		return p.upstreamError(w, r, c, lease, err)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		p.upgrade(w, r, c, resp)
		return nil
	}
	p.answer(w, r, c, resp)
	return nil
}

func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, c *call, lease function.Lease, err error) error {
	if r.Context().Err() != nil {
		// The caller went away; nobody reads an answer.
		c.gone = true
		return nil
	}
	if c.cancel != nil && c.ctx.Err() != nil {
		p.log.Warn("function timed out", "fn", c.name, "addr", lease.Addr(), "timeout", c.timeout)
		c.fail(w, http.StatusGatewayTimeout, fmt.Sprintf("function %s did not answer within %s", c.name, c.timeout))
		return nil
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		// Nothing was sent: the caller retries on another replica, and this
		// one leaves rotation until it accepts connections again.
		lease.Refused()
		return err
	}
	if c.out.Body != nil && !c.body.read.Load() {
		// The connection failed before any of the body was sent: the app
		// cannot have acted on the request. (A bodiless request that
		// failed on a reused connection before anything was written is
		// retried by the transport itself; one that failed after, as when
		// the app died handling it, is not sent again: it may be what
		// killed it.)
		return err
	}
	p.log.Warn("upstream error", "fn", c.name, "addr", lease.Addr(), "err", err)
	c.code = http.StatusBadGateway
	w.WriteHeader(http.StatusBadGateway)
	return nil
}

// answer copies the function's answer to the caller: status, headers
// (but for hop-by-hop ones and the function's own X-Call-Id and
// X-Start-Time: the gateway's, already set, are the ones that count),
// body and trailers. A stream (no length, or server-sent events) is
// flushed on every write. An answer that breaks off half-way aborts the
// caller's response, so that the caller sees it broken rather than short.
func (p *Proxy) answer(w http.ResponseWriter, r *http.Request, c *call, resp *http.Response) {
	if conn, ok := resp.Header["Connection"]; ok {
		deleteConnectionTokens(resp.Header, conn)
	}
	h := w.Header()
	for k, v := range resp.Header {
		if !isHopHeader(k) && k != "X-Call-Id" && k != "X-Start-Time" {
			h[k] = v
		}
	}
	// The transport moves the Trailer header into resp.Trailer's keys.
	announced := len(resp.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		h.Add("Trailer", strings.Join(keys, ", "))
	}
	c.code = resp.StatusCode
	w.WriteHeader(resp.StatusCode)
	rc := http.NewResponseController(w)
	stream := resp.ContentLength == -1 || isEventStream(resp.Header.Get("Content-Type"))
	if stream {
		// The headers go out now, before the first event.
		rc.Flush()
	}
	if werr, rerr := p.copyBody(w, rc, resp.Body, stream); werr != nil || rerr != nil {
		resp.Body.Close()
		if werr != nil {
			c.gone = true
		} else {
			p.log.Debug("answer broke off", "fn", c.name, "addr", c.out.URL.Host, "err", rerr)
		}
		if r.Context().Value(http.ServerContextKey) != nil {
			// Under an http.Server, which recovers it and drops the
			// connection. (Called directly, as by the async queue, there
			// is no connection to drop.)
			panic(http.ErrAbortHandler)
		}
		return
	}
	resp.Body.Close() // now, to fill resp.Trailer
	if len(resp.Trailer) == 0 {
		return
	}
	// A trailer forces chunking: without the flush, net/http would set a
	// Content-Length on a short body and drop the trailers.
	rc.Flush()
	if len(resp.Trailer) == announced {
		for k, v := range resp.Trailer {
			h[k] = v
		}
		return
	}
	for k, vv := range resp.Trailer {
		for _, v := range vv {
			h.Add(http.TrailerPrefix+k, v)
		}
	}
}

// copyBody copies body to w through a pooled buffer, flushing after every
// write when flush is set. It returns the error of whichever side failed.
func (p *Proxy) copyBody(w io.Writer, rc *http.ResponseController, body io.Reader, flush bool) (werr, rerr error) {
	bp := p.buffers.Get()
	defer p.buffers.Put(bp)
	buf := *bp
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr, nil
			}
			if flush {
				// A writer that cannot flush (ErrNotSupported) still gets
				// the whole answer; one whose connection broke fails the
				// next Write.
				rc.Flush()
			}
		}
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// upgrade completes a protocol switch (a WebSocket) the function agreed
// to: the caller's connection is taken over and joined to the replica's
// until either end closes.
func (p *Proxy) upgrade(w http.ResponseWriter, r *http.Request, c *call, resp *http.Response) {
	want, got := upgradeType(c.out.Header), upgradeType(resp.Header)
	back, ok := resp.Body.(io.ReadWriteCloser)
	if !ok || !printable(got) || !strings.EqualFold(want, got) {
		resp.Body.Close()
		p.log.Warn("upstream switched protocols unasked", "fn", c.name, "addr", c.out.URL.Host, "asked", want, "got", got)
		c.code = http.StatusBadGateway
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	defer back.Close()
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		p.log.Warn("upgrade: take over the caller's connection", "fn", c.name, "err", err)
		c.code = http.StatusBadGateway
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	defer conn.Close()
	// The caller's request ending (the daemon shutting down) ends the
	// replica's side too.
	stop := context.AfterFunc(r.Context(), func() { back.Close() })
	defer stop()
	h := w.Header()
	for k, v := range resp.Header {
		if k != "X-Call-Id" && k != "X-Start-Time" {
			h[k] = v
		}
	}
	resp.Header, resp.Body = h, nil // Write sends the head only: the body is back
	c.code = http.StatusSwitchingProtocols
	if err := resp.Write(brw); err != nil {
		return
	}
	// Bytes the caller sent after its request's head, already buffered.
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		if _, err := back.Write(b); err != nil {
			return
		}
	}
	if err := brw.Flush(); err != nil {
		return
	}
	errc := make(chan error, 2)
	go join(conn, back, errc)
	go join(back, conn, errc)
	// Done when both directions ended, or either failed.
	if err := <-errc; err == nil {
		<-errc
	}
	c.done = true
}

// join copies from src to dst, then half-closes dst so that its reader
// sees the end too. It sends the copy's error, or nil, on errc.
func join(dst io.Writer, src io.Reader, errc chan<- error) {
	if _, err := io.Copy(dst, src); err != nil {
		errc <- err
		return
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	errc <- nil
}

// isHopHeader reports the hop-by-hop fields (RFC 9110 §7.6.1, and the
// older names ReverseProxy also drops): they describe one connection and
// are not forwarded either way.
func isHopHeader(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// deleteConnectionTokens deletes from h the fields a Connection header
// names: they are hop-by-hop too.
func deleteConnectionTokens(h http.Header, conn []string) {
	for _, f := range conn {
		for f != "" {
			var tok string
			tok, f, _ = strings.Cut(f, ",")
			if tok = textproto.TrimString(tok); tok != "" {
				delete(h, textproto.CanonicalMIMEHeaderKey(tok))
			}
		}
	}
}

// hasToken reports whether a comma-separated header holds token, in any
// case.
func hasToken(vals []string, token string) bool {
	for _, f := range vals {
		for f != "" {
			var tok string
			tok, f, _ = strings.Cut(f, ",")
			if strings.EqualFold(textproto.TrimString(tok), token) {
				return true
			}
		}
	}
	return false
}

// upgradeType is the protocol a request or response switches to, or "".
func upgradeType(h http.Header) string {
	if !hasToken(h["Connection"], "upgrade") {
		return ""
	}
	return h.Get("Upgrade")
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// isEventStream reports whether a Content-Type is text/event-stream,
// parameters or not, without mime.ParseMediaType's allocations.
func isEventStream(ct string) bool {
	const es = "text/event-stream"
	ct = strings.TrimLeft(ct, " \t")
	if len(ct) < len(es) || !strings.EqualFold(ct[:len(es)], es) {
		return false
	}
	rest := ct[len(es):]
	return rest == "" || rest[0] == ';' || rest[0] == ' ' || rest[0] == '\t'
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
