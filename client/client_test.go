package client_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emberfaas/ember/client"
)

// The tests serve a small fake of the daemon rather than api's handler:
// the client's promise is the request it sends and what it makes of the
// answer, and a test of it that linked the server would undo the point of
// keeping the two apart (archtest forbids it). cmd/ember's integration
// tests drive the client against a real daemon.

// request is what the fake daemon saw of one request.
type request struct {
	method, uri, contentType, auth, host string
	body                                 string
}

// fake serves reply with code to every request and hands each request it
// saw to the returned channel.
func fake(t *testing.T, code int, reply string) (*httptest.Server, <-chan request) {
	t.Helper()
	seen := make(chan request, 16)
	return serve(t, recorder(seen, code, reply)), seen
}

// serve starts h on a TCP port for the test's duration.
func serve(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func recorder(seen chan<- request, code int, reply string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		seen <- request{method: r.Method, uri: r.RequestURI, contentType: r.Header.Get("Content-Type"),
			auth: r.Header.Get("Authorization"), host: r.Host, body: string(body)}
		if reply != "" && code/100 == 2 {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(code)
		io.WriteString(w, reply)
	}
}

func TestUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "ember.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan request, 1)
	srv := httptest.NewUnstartedServer(recorder(seen, http.StatusOK, `{"images":["hello:1"]}`))
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)

	// The socket's file permissions guard it, so no credentials are sent.
	got, err := client.New(sock).Import(t.Context(), strings.NewReader("tar"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "hello:1" {
		t.Errorf("Import = %q, want [hello:1]", got)
	}
	r := <-seen
	if r.method != http.MethodPost || r.uri != "/system/images" || r.auth != "" || r.host != "ember" {
		t.Errorf("daemon saw %+v, want POST /system/images to host ember without credentials", r)
	}
}

func TestUnixSocketMissing(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "absent.sock")
	_, err := client.New(sock).List(t.Context())
	var op *net.OpError
	if !errors.As(err, &op) || !strings.HasPrefix(err.Error(), "ember daemon: ") {
		t.Errorf("List on a missing socket: %v, want a *net.OpError prefixed %q", err, "ember daemon: ")
	}
}

func TestTCPBasicAuth(t *testing.T) {
	srv, seen := fake(t, http.StatusOK, `[]`)
	for _, tc := range []struct {
		name     string
		c        *client.Client
		wantAuth string
	}{
		{"no password", client.New(srv.URL), ""},
		// admin:secret
		{"password", client.New(srv.URL).WithBasicAuth("admin", "secret"), "Basic YWRtaW46c2VjcmV0"},
		{"trailing slash", client.New(srv.URL+"/").WithBasicAuth("admin", "secret"), "Basic YWRtaW46c2VjcmV0"},
		// An empty password turns authentication off on the daemon too.
		{"user only", client.New(srv.URL).WithBasicAuth("admin", ""), ""},
	} {
		if _, err := tc.c.List(t.Context()); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		r := <-seen
		if r.uri != "/system/functions" || r.auth != tc.wantAuth {
			t.Errorf("%s: daemon saw %s with Authorization %q, want /system/functions with %q", tc.name, r.uri, r.auth, tc.wantAuth)
		}
	}
}

func TestStatusErrors(t *testing.T) {
	for _, tc := range []struct {
		code        int
		body        string
		wantMessage string
	}{
		{http.StatusNotFound, "function echo not found\n", "function echo not found"},
		{http.StatusBadRequest, "invalid function: image is required\n", "invalid function: image is required"},
		{http.StatusInsufficientStorage, "store: no space left on device\n", "store: no space left on device"},
		{http.StatusUnauthorized, "invalid credentials\n", "invalid credentials"},
		// No explanation: the status text stands in.
		{http.StatusInternalServerError, "", "Internal Server Error"},
	} {
		srv, _ := fake(t, tc.code, tc.body)
		err := client.New(srv.URL).Remove(t.Context(), "echo")
		var se *client.StatusError
		if !errors.As(err, &se) {
			t.Errorf("%d: Remove = %v (%T), want a *client.StatusError", tc.code, err, err)
			continue
		}
		if se.Code != tc.code || err.Error() != tc.wantMessage {
			t.Errorf("%d: got code %d and message %q, want %d and %q", tc.code, se.Code, err.Error(), tc.code, tc.wantMessage)
		}
	}
}

// A daemon's explanation is read up to a bound, so a broken daemon that
// streams an endless error body cannot hang or exhaust the CLI.
func TestStatusErrorBounded(t *testing.T) {
	srv, _ := fake(t, http.StatusBadGateway, strings.Repeat("x", 1<<20))
	err := client.New(srv.URL).Remove(t.Context(), "echo")
	if len(err.Error()) != 64<<10 {
		t.Errorf("message of %d bytes, want the first %d", len(err.Error()), 64<<10)
	}
}

func TestDecodeError(t *testing.T) {
	srv, _ := fake(t, http.StatusOK, `not json`)
	_, err := client.New(srv.URL).List(t.Context())
	if err == nil || !strings.HasPrefix(err.Error(), "decode GET /system/functions: ") {
		t.Errorf("List of a body that is no JSON: %v, want a decode error naming the request", err)
	}
}
