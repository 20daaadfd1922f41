package main

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// serverLimits protect a listener from clients that are slow or idle on
// purpose. Nothing here limits how long a handler may take: functions
// may answer slowly, and log streams run until the client leaves.
type serverLimits struct {
	// ReadHeaderTimeout is how long a client has to send a request's
	// headers, from its first byte, or from the connection's start.
	ReadHeaderTimeout time.Duration
	// IdleTimeout is how long a keep-alive connection may wait for its
	// next request.
	IdleTimeout time.Duration
	// BodyTimeout is how long a client has to send a request body,
	// beyond what BodyMinRate earns it; zero means no limit.
	BodyTimeout time.Duration
	// BodyMinRate, in bytes per second, extends BodyTimeout for large
	// bodies: a body may take BodyTimeout plus its size at this rate, but
	// never stall for longer than BodyTimeout. Zero: BodyTimeout is a plain
	// deadline for the whole body.
	BodyMinRate int64
	// MaxConnections caps open connections; zero means no cap. Beyond it,
	// a new connection is answered 503 and closed at once.
	MaxConnections int
}

// newHTTPServer returns the server the daemon runs on a listener, with the
// limits applied. The write side has no deadline: a function's answer and
// a followed log stream take as long as they take.
func newHTTPServer(h http.Handler, l serverLimits, log *slog.Logger) *http.Server {
	if l.BodyTimeout > 0 {
		h = bodyDeadline(h, l.BodyTimeout, l.BodyMinRate)
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		IdleTimeout:       l.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// bodyDeadline sets a read deadline on the connection while the request
// body arrives, and clears it once the body has been read to its end.
//
// The deadline must never be armed while the server's background read
// runs: once a body is consumed (at once for a request without one) the
// server reads on in the background to notice a client that leaves, and
// that read failing on a deadline cancels the request's context — cutting
// a function that merely takes long to answer. So there is no deadline
// for a request without a body (the proxy never reads one), and it is
// cleared as soon as the body ends. http.Server's ReadTimeout is a plain
// deadline for headers and body together; this one also lets a large
// body that keeps arriving at the minimum rate take longer.
func bodyDeadline(h http.Handler, timeout time.Duration, minRate int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r)
			return
		}
		now := time.Now()
		b := &deadlineBody{ReadCloser: r.Body, rc: http.NewResponseController(w), timeout: timeout, rate: minRate,
			start: now, deadline: now.Add(timeout)}
		if err := b.rc.SetReadDeadline(b.deadline); err != nil {
			// A connection without deadlines (none of ours): serve as is.
			h.ServeHTTP(w, r)
			return
		}
		r.Body = b
		h.ServeHTTP(w, r)
	})
}

// deadlineBody is a request body whose connection read deadline moves
// with the bytes read. Reads of one body are sequential, as for any
// io.Reader, so it needs no lock.
type deadlineBody struct {
	io.ReadCloser
	rc       *http.ResponseController
	timeout  time.Duration
	rate     int64
	start    time.Time
	deadline time.Time
	read     int64
	done     bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if b.done {
		return n, err
	}
	if errors.Is(err, io.EOF) {
		// The whole body is in: from here on the handler may take as
		// long as it likes.
		b.done = true
		b.rc.SetReadDeadline(time.Time{})
		return n, err
	}
	if n > 0 && b.rate > 0 {
		b.read += int64(n)
		now := time.Now()
		earned := b.start.Add(b.timeout + time.Duration(float64(b.read)/float64(b.rate)*float64(time.Second)))
		d := earned
		if stall := now.Add(b.timeout); stall.Before(d) {
			d = stall
		}
		if d.After(b.deadline) {
			b.deadline = d
			b.rc.SetReadDeadline(d)
		}
	}
	return n, err
}

// limitListener caps the connections open at once. A connection beyond
// the cap is accepted and answered "503 Service Unavailable" with
// Connection: close, instead of waiting in the kernel's backlog: a client
// learns at once that the server is full, and the backlog cannot grow a
// hidden queue in front of the gateway.
type limitListener struct {
	net.Listener
	max  int
	open atomic.Int64
	// shedding counts connections being answered 503; at max of them,
	// further ones are closed without an answer, so a flood cannot pile
	// up goroutines either.
	shedding atomic.Int64
}

func newLimitListener(ln net.Listener, max int) net.Listener {
	if max <= 0 {
		return ln
	}
	return &limitListener{Listener: ln, max: max}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= int64(l.max) {
			return &limitConn{Conn: c, release: func() { l.open.Add(-1) }}, nil
		}
		l.open.Add(-1)
		if l.shedding.Add(1) > int64(l.max) {
			l.shedding.Add(-1)
			c.Close()
			continue
		}
		go func() {
			defer l.shedding.Add(-1)
			shed(c)
		}()
	}
}

// shedResponse is what a connection beyond the cap gets.
const shedResponse = "HTTP/1.1 503 Service Unavailable\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Retry-After: 1\r\n" +
	"Connection: close\r\n" +
	"Content-Length: 28\r\n" +
	"\r\n" +
	"too many connections: retry\n"

// shed answers 503 and closes. It waits (briefly) for the request's
// headers first: an answer sent before the request arrives is one a
// client may discard as unsolicited. After answering it half-closes and
// reads on for a moment, because closing a socket with unread input
// makes the kernel send a reset, which can destroy the answer before the
// client reads it.
func shed(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if !readHeaders(c, 64<<10) {
		return
	}
	if _, err := io.WriteString(c, shedResponse); err != nil {
		return
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	io.Copy(io.Discard, io.LimitReader(c, 64<<10))
}

// readHeaders reads from r until the blank line that ends a request's
// headers, at most limit bytes; it reports whether it found it.
func readHeaders(r io.Reader, limit int) bool {
	var seen []byte
	buf := make([]byte, 4096)
	for len(seen) < limit {
		n, err := r.Read(buf)
		seen = append(seen, buf[:n]...)
		if bytes.Contains(seen, []byte("\r\n\r\n")) {
			return true
		}
		if err != nil {
			return false
		}
	}
	return false
}

// limitConn gives its slot back when closed, once.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite lets http.Server half-close as it does on a bare TCP
// connection, so its error answers reach the client.
func (c *limitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
