package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
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

// TestRetryIdempotentAfterReset: a replica that drops the connection
// before answering (its process died) gets a bodiless GET retried on
// another replica; a POST is not retried.
func TestRetryIdempotentAfterReset(t *testing.T) {
	_, dead := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	_, alive := upstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "alive") })
	b := newFakeBackends()
	b.set("f", dead, alive)
	srv := front(t, b)

	resp, err := http.Get(srv.URL + "/function/f/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "alive" {
		t.Errorf("GET: %d %q, want 200 from the other replica", resp.StatusCode, body)
	}

	b.set("g", dead, alive)
	resp, err = http.Post(srv.URL+"/function/g/", "text/plain", strings.NewReader("once"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("POST: %d, want 502 (not retried)", resp.StatusCode)
	}
}
