package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/client"
)

func TestPrintedGateway(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/system/status" {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(wire.SystemStatus{GatewayURL: "http://127.0.0.1:31112"})
	}))
	defer srv.Close()
	daemon := client.New(srv.URL)
	old := httptest.NewServer(http.NotFoundHandler()) // a daemon that does not say
	defer old.Close()
	for _, tc := range []struct {
		name        string
		c           *client.Client
		flag, stack string
		want        string
	}{
		{"the daemon's address", daemon, "", "", "http://127.0.0.1:31112"},
		{"the stack's gateway", daemon, "", "http://pi.local:8080", "http://pi.local:8080"},
		{"--gateway over both", daemon, "https://faas.example.com", "http://pi.local:8080", "https://faas.example.com"},
		{"a daemon that does not say", client.New(old.URL), "", "", fallbackGateway},
	} {
		if got := printedGateway(t.Context(), tc.c, tc.flag, tc.stack); got != tc.want {
			t.Errorf("%s: printedGateway = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestLocalURL(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"0.0.0.0:8080", "http://127.0.0.1:8080"},
		{"[::]:8080", "http://127.0.0.1:8080"},
		{"127.0.0.1:31112", "http://127.0.0.1:31112"},
		{"192.0.2.7:80", "http://192.0.2.7:80"},
		{"[2001:db8::1]:8080", "http://[2001:db8::1]:8080"},
	} {
		addr, err := net.ResolveTCPAddr("tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := localURL(addr); got != tc.want {
			t.Errorf("localURL(%s) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}
