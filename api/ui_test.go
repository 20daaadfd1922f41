package api_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emberfaas/ember/api"
)

// The dashboard is behind the same auth as /system/*, and the root sends
// a browser to it.
func TestUIRoutes(t *testing.T) {
	ui := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ui "+r.URL.Path) })
	a := api.New(api.Config{User: "admin", Password: "pw"}, api.Deps{Functions: newFakeFunctions(), Images: &fakeImages{},
		Secrets: newFakeSecrets(), Logs: &fakeLogs{}, Proxy: http.NotFoundHandler(), UI: ui, Gatherer: prometheus.NewRegistry()},
		slog.New(slog.NewTextHandler(t.Output(), nil)))
	srv := httptest.NewServer(a.Handler(true))
	t.Cleanup(srv.Close)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	for _, tc := range []struct {
		path, user, pass string
		wantCode         int
		wantBody         string
		wantLocation     string
	}{
		{path: "/", wantCode: http.StatusFound, wantLocation: "/ui/"},
		{path: "/ui/", wantCode: http.StatusUnauthorized},
		{path: "/ui/app.js", user: "admin", pass: "wrong", wantCode: http.StatusUnauthorized},
		{path: "/ui/", user: "admin", pass: "pw", wantCode: http.StatusOK, wantBody: "ui /ui/"},
		{path: "/ui/app.js", user: "admin", pass: "pw", wantCode: http.StatusOK, wantBody: "ui /ui/app.js"},
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+tc.path, nil)
		if tc.user != "" {
			req.SetBasicAuth(tc.user, tc.pass)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.wantCode {
			t.Errorf("GET %s (user %q) = %d, want %d", tc.path, tc.user, resp.StatusCode, tc.wantCode)
		}
		if tc.wantBody != "" && string(body) != tc.wantBody {
			t.Errorf("GET %s body = %q, want %q", tc.path, body, tc.wantBody)
		}
		if got := resp.Header.Get("Location"); got != tc.wantLocation {
			t.Errorf("GET %s Location = %q, want %q", tc.path, got, tc.wantLocation)
		}
		if tc.wantCode == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("GET %s: 401 without WWW-Authenticate: a browser would not ask for a password", tc.path)
		}
	}
}
