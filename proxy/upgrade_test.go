package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestUpgradePassesThrough checks that a WebSocket-style upgrade reaches
// the function and that bytes then flow both ways over the hijacked
// connection.
func TestUpgradePassesThrough(t *testing.T) {
	_, addr := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want an upgrade", http.StatusBadRequest)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprint(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		rw.Flush()
		// Echo one line back, upper-cased.
		line, err := rw.ReadString('\n')
		if err != nil {
			return
		}
		fmt.Fprint(rw, strings.ToUpper(line))
		rw.Flush()
	})
	b := newFakeBackends()
	b.set("ws", addr)
	srv := front(t, b)

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprint(conn, "GET /function/ws/socket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d %q, want 101", resp.StatusCode, body)
	}
	fmt.Fprint(conn, "hello over the upgrade\n")
	got, err := br.ReadString('\n')
	if err != nil || got != "HELLO OVER THE UPGRADE\n" {
		t.Errorf("echo over the upgraded connection: %q, %v", got, err)
	}
}

// TestNoRetryAfterRequestSent: a replica that received a request and then
// dropped the connection (its process died handling it) may have acted on
// it, or the request may be what killed it: neither a GET nor a POST is
// sent to another replica, whose death would follow.
func TestNoRetryAfterRequestSent(t *testing.T) {
	_, dead := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	var hits atomic.Int32
	_, alive := upstream(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1); io.WriteString(w, "alive") })
	for _, method := range []string{"GET", "POST"} {
		t.Run(method, func(t *testing.T) {
			b := newFakeBackends()
			b.set("f", dead, alive)
			srv := front(t, b)
			var body io.Reader
			if method == "POST" {
				body = strings.NewReader("once")
			}
			req, err := http.NewRequest(method, srv.URL+"/function/f/die", body)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadGateway {
				t.Errorf("%s: %d, want 502 (not retried)", method, resp.StatusCode)
			}
			if n := hits.Load(); n != 0 {
				t.Errorf("%s reached the other replica %d times, want 0", method, n)
			}
		})
	}
}
