package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// These tests run the daemon's own server construction (newHTTPServer,
// newLimitListener, unixLimits) on loopback, with short limits.

// serveLimited serves h on a new loopback listener (or a unix socket when
// network is "unix") as the daemon does, and returns its address.
func serveLimited(t *testing.T, network string, h http.Handler, l serverLimits) string {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "s.sock")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	if network == "tcp" {
		ln = newLimitListener(ln, l.MaxConnections)
	}
	srv := newHTTPServer(h, l, slog.New(slog.NewTextHandler(t.Output(), nil)))
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().String()
}

// waitClosed reads from c until the server closes it, and fails the test
// if that has not happened within failsafe. It returns what was read.
func waitClosed(t *testing.T, c net.Conn, failsafe time.Duration) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(failsafe))
	var got []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		switch {
		case err == nil:
			continue
		case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
			return string(got)
		case errors.Is(err, os.ErrDeadlineExceeded):
			t.Fatalf("the server kept the connection open for %s (read %q)", failsafe, got)
		default:
			t.Fatalf("read: %v", err)
		}
	}
}

// dribble writes chunk to c every interval until a write fails (the
// server closed) or the test ends.
func dribble(t *testing.T, c net.Conn, chunk string, interval time.Duration) {
	stop := make(chan struct{})
	done := make(chan struct{})
	t.Cleanup(func() {
		close(stop)
		<-done
	})
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := io.WriteString(c, chunk); err != nil {
					return
				}
			}
		}
	}()
}

// bodyErrs records how handlers' body reads ended.
type bodyErrs struct {
	mu   sync.Mutex // guards errs
	errs []error
}

func (b *bodyErrs) add(err error) { b.mu.Lock(); b.errs = append(b.errs, err); b.mu.Unlock() }
func (b *bodyErrs) get() []error  { b.mu.Lock(); defer b.mu.Unlock(); return slices.Clone(b.errs) }

// Slow and idle clients are cut at the configured timeouts.
func TestServerCutsSlowClients(t *testing.T) {
	const timeout = 300 * time.Millisecond
	limits := serverLimits{ReadHeaderTimeout: timeout, IdleTimeout: timeout, BodyTimeout: timeout, BodyMinRate: 1024}
	for _, tc := range []struct {
		name  string
		start func(t *testing.T, c net.Conn)
		// bodyCut: the handler saw its body read fail on the deadline.
		bodyCut bool
	}{
		{"silent connection", func(t *testing.T, c net.Conn) {}, false},
		{"headers dribbled", func(t *testing.T, c net.Conn) {
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
			dribble(t, c, "X-Pad: 1\r\n", 20*time.Millisecond)
		}, false},
		{"body dribbled", func(t *testing.T, c net.Conn) {
			io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
			dribble(t, c, "x", 20*time.Millisecond) // 50 B/s, below the 1 KiB/s minimum
		}, true},
		{"chunked body dribbled", func(t *testing.T, c net.Conn) {
			io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
			dribble(t, c, "1\r\nx\r\n", 20*time.Millisecond)
		}, true},
		{"idle keep-alive", func(t *testing.T, c net.Conn) {
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Close {
				t.Fatalf("first request: %s, close=%v; want 200 on a kept-alive connection", resp.Status, resp.Close)
			}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var errs bodyErrs
			addr := serveLimited(t, "tcp", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, err := io.Copy(io.Discard, r.Body)
				errs.add(err)
				if err != nil {
					http.Error(w, "body: "+err.Error(), http.StatusRequestTimeout)
				}
			}), limits)
			// Before the dial: the server's clock starts when it accepts,
			// which can be before this goroutine runs again after Dial.
			start := time.Now()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			tc.start(t, c)
			waitClosed(t, c, 10*time.Second)
			if took := time.Since(start); took < timeout {
				t.Errorf("closed after %s, before the %s timeout", took, timeout)
			}
			got := errs.get()
			if tc.bodyCut && (len(got) != 1 || !errors.Is(got[0], os.ErrDeadlineExceeded)) {
				t.Errorf("handler's body reads ended with %v, want one deadline error", got)
			}
			if !tc.bodyCut && slices.ContainsFunc(got, func(err error) bool { return err != nil }) {
				t.Errorf("handler's body reads ended with %v", got)
			}
		})
	}
}

// A function that takes longer to answer than every timeout is not cut,
// whatever its body: the deadline only covers the body's arrival, and the
// server's background read after the body must not cancel the request.
func TestServerKeepsSlowFunctions(t *testing.T) {
	const (
		timeout = 2 * time.Second
		runs    = 10 * time.Second
	)
	limits := serverLimits{ReadHeaderTimeout: timeout, IdleTimeout: timeout, BodyTimeout: timeout, BodyMinRate: 1024}
	for _, tc := range []struct {
		name, method, body string
		chunked            bool
	}{
		{"small body", "POST", `{"order":1}`, false},
		{"chunked body", "POST", `{"order":2}`, true},
		{"no body", "GET", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := serveLimited(t, "tcp", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				began := time.Now()
				// A GET handler (and the proxy, for a request without a
				// body) never reads the body.
				var b []byte
				if r.Method != http.MethodGet {
					var err error
					if b, err = io.ReadAll(r.Body); err != nil {
						http.Error(w, err.Error(), http.StatusBadRequest)
						return
					}
				}
				select {
				case <-time.After(runs):
					fmt.Fprintf(w, "done %s", b)
				case <-r.Context().Done():
					t.Errorf("the request's context ended after %s: %v", time.Since(began), context.Cause(r.Context()))
				}
			}), limits)
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
				if tc.chunked {
					body = io.MultiReader(body) // unknown length: chunked
				}
			}
			req, err := http.NewRequestWithContext(t.Context(), tc.method, "http://"+addr+"/", body)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			if want := "done " + tc.body; resp.StatusCode != http.StatusOK || string(got) != want {
				t.Errorf("%s = %s %q, want 200 %q", tc.name, resp.Status, got, want)
			}
			t.Logf("%s: answered after %s with a %s body timeout", tc.name, time.Since(start).Round(time.Millisecond), timeout)
		})
	}
}

// A large body sent steadily above the minimum rate may take longer than
// the body timeout.
func TestServerKeepsSteadyBodies(t *testing.T) {
	limits := serverLimits{ReadHeaderTimeout: time.Second, IdleTimeout: time.Second, BodyTimeout: 300 * time.Millisecond, BodyMinRate: 1000}
	addr := serveLimited(t, "tcp", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestTimeout)
			return
		}
		fmt.Fprintf(w, "%d", n)
	}), limits)
	// 100 bytes every 50ms (2000 B/s) for 1.5s: five times the timeout.
	pr, pw := io.Pipe()
	go func() {
		for range 30 {
			time.Sleep(50 * time.Millisecond)
			pw.Write([]byte(strings.Repeat("x", 100)))
		}
		pw.Close()
	}()
	resp, err := http.Post("http://"+addr+"/", "text/plain", pr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(got) != "3000" {
		t.Errorf("POST = %s %q, want 200 3000", resp.Status, got)
	}
}

// Streams (GET /system/logs?follow=true) outlive every timeout, on TCP
// and on the unix socket.
func TestServerKeepsStreams(t *testing.T) {
	const timeout = 300 * time.Millisecond
	tcp := serverLimits{ReadHeaderTimeout: timeout, IdleTimeout: timeout, BodyTimeout: timeout, BodyMinRate: 1024, MaxConnections: 16}
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			t.Parallel()
			limits := tcp
			if network == "unix" {
				limits = unixLimits(tcp)
			}
			addr := serveLimited(t, network, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/x-ndjson")
				rc := http.NewResponseController(w)
				for i := range 15 {
					select {
					case <-time.After(100 * time.Millisecond):
					case <-r.Context().Done():
						return
					}
					fmt.Fprintf(w, "{\"line\":%d}\n", i)
					rc.Flush()
				}
			}), limits)
			c, err := net.Dial(network, addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, "GET /system/logs?name=x&follow=true HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			start := time.Now()
			sc := bufio.NewScanner(resp.Body)
			n := 0
			for sc.Scan() {
				n++
			}
			if n != 15 || sc.Err() != nil {
				t.Errorf("read %d lines over %s, then %v; want all 15", n, time.Since(start).Round(time.Millisecond), sc.Err())
			}
		})
	}
}

// Beyond --max-connections a connection is answered 503 and closed; a
// slot that is given back is usable again.
func TestServerConnectionCap(t *testing.T) {
	const max = 4
	limits := serverLimits{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 10 * time.Second, MaxConnections: max}
	addr := serveLimited(t, "tcp", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}), limits)
	get := func(c net.Conn) (*http.Response, error) {
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return nil, err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return nil, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp, nil
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	var held []net.Conn
	for i := range max {
		c := dial()
		if resp, err := get(c); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("connection %d: %v %v", i, resp, err)
		}
		held = append(held, c)
	}
	over := dial()
	resp, err := get(over)
	if err != nil {
		t.Fatalf("connection over the cap: %v, want a 503", err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !resp.Close {
		t.Errorf("over the cap: %s Retry-After=%q close=%v, want 503 with Retry-After and Connection: close",
			resp.Status, resp.Header.Get("Retry-After"), resp.Close)
	}
	waitClosed(t, over, 5*time.Second)

	// The held connections still work.
	if resp, err := get(held[0]); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("held connection: %v %v", resp, err)
	}
	// Closing one gives its slot back once the server notices.
	held[1].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := get(dial())
		if err == nil && resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no slot after a connection closed: %v %v", resp, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// With 1000 idle keep-alive connections held open, normal requests are
// still served; with the cap full, a new connection is refused at once.
// The figures are logged (go test -v -run TestServerUnderIdleFlood).
func TestServerUnderIdleFlood(t *testing.T) {
	const idle, requests = 1000, 500
	for _, tc := range []struct {
		name string
		max  int
		want int // status of the normal requests
	}{
		{"below the cap", 2048, http.StatusOK},
		{"cap full", idle, http.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			limits := serverLimits{ReadHeaderTimeout: time.Minute, IdleTimeout: time.Minute, BodyTimeout: time.Minute, BodyMinRate: 1024, MaxConnections: tc.max}
			addr := serveLimited(t, "tcp", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "ok")
			}), limits)
			for i := range idle {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatalf("idle connection %d: %v", i, err)
				}
				t.Cleanup(func() { c.Close() })
				// One request, then idle, as a keep-alive client would.
				io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil || resp.StatusCode != http.StatusOK {
					t.Fatalf("idle connection %d: %v %v", i, resp, err)
				}
				resp.Body.Close()
			}
			// A fresh connection per request, so each one meets the cap.
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			var lat []time.Duration
			for range requests {
				start := time.Now()
				resp, err := client.Get("http://" + addr + "/")
				if err != nil {
					t.Fatalf("request with %d idle connections: %v", idle, err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat = append(lat, time.Since(start))
				if resp.StatusCode != tc.want {
					t.Fatalf("request with %d idle connections: %s, want %d", idle, resp.Status, tc.want)
				}
			}
			slices.Sort(lat)
			t.Logf("%d idle connections, cap %d: %d requests answered %d; latency p50 %s p99 %s max %s",
				idle, tc.max, requests, tc.want, lat[len(lat)/2].Round(time.Microsecond),
				lat[len(lat)*99/100].Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond))
		})
	}
}
