package api_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/emberfaas/ember/api"
	"github.com/emberfaas/ember/function"
)

func TestInfo(t *testing.T) {
	s := newServer(t, false)
	r := s.call(t, "GET", "/system/info", nil)
	if r.code != http.StatusOK {
		t.Fatalf("GET /system/info = %d", r.code)
	}
	// Typed as faas-cli reads it: every nested field is dereferenced.
	var info struct {
		Provider *struct {
			Provider      string `json:"provider"`
			Orchestration string `json:"orchestration"`
			Version       *struct {
				Release string `json:"release"`
				SHA     string `json:"sha"`
			} `json:"version"`
		} `json:"provider"`
		Version *struct {
			Release string `json:"release"`
			SHA     string `json:"sha"`
		} `json:"version"`
		Arch string `json:"arch"`
	}
	if err := json.Unmarshal([]byte(r.body), &info); err != nil {
		t.Fatal(err)
	}
	if info.Provider == nil || info.Provider.Version == nil || info.Version == nil {
		t.Fatalf("info = %s: provider, provider.version and version must all be set", r.body)
	}
	for field, v := range map[string]string{
		"provider.provider":        info.Provider.Provider,
		"provider.orchestration":   info.Provider.Orchestration,
		"provider.version.release": info.Provider.Version.Release,
		"provider.version.sha":     info.Provider.Version.SHA,
		"version.release":          info.Version.Release,
		"version.sha":              info.Version.SHA,
		"arch":                     info.Arch,
	} {
		if v == "" {
			t.Errorf("%s is empty in %s", field, r.body)
		}
	}
	if info.Version.Release != "1.2.3" || info.Version.SHA != "abc1234" {
		t.Errorf("version = %+v, want release 1.2.3 sha abc1234", *info.Version)
	}
}

func TestNamespaces(t *testing.T) {
	s := newServer(t, false)
	r := s.call(t, "GET", "/system/namespaces", nil)
	if r.code != http.StatusOK {
		t.Fatalf("GET /system/namespaces = %d", r.code)
	}
	if diff := cmp.Diff([]string{"openfaas-fn"}, decode[[]string](t, r)); diff != "" {
		t.Errorf("namespaces (-want +got):\n%s", diff)
	}
}

func TestImportImages(t *testing.T) {
	s := newServer(t, false)
	r := s.call(t, "POST", "/system/images", "fake tar archive")
	if r.code != http.StatusOK {
		t.Fatalf("POST /system/images = %d %q", r.code, r.body)
	}
	want := map[string]any{"images": []any{"docker.io/library/echo:1", "docker.io/library/echo:2"}}
	if diff := cmp.Diff(want, decode[map[string]any](t, r)); diff != "" {
		t.Errorf("import (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"fake tar archive"}, s.images.imported()); diff != "" {
		t.Errorf("archives (-want +got):\n%s", diff)
	}
	if r := s.call(t, "POST", "/system/images", ""); r.code != http.StatusBadRequest {
		t.Errorf("empty archive = %d, want 400", r.code)
	}
}

func TestAuth(t *testing.T) {
	routes := []struct{ method, path, body string }{
		{"GET", "/system/functions", ""},
		{"POST", "/system/functions", `{"service":"new","image":"new:1"}`},
		{"PUT", "/system/functions", `{"service":"echo","image":"echo:2"}`},
		{"DELETE", "/system/functions", `{"functionName":"echo"}`},
		{"GET", "/system/function/echo", ""},
		{"POST", "/system/scale-function/echo", `{"replicas":2}`},
		{"GET", "/system/info", ""},
		{"GET", "/system/namespaces", ""},
		{"POST", "/system/images", "tar"},
		{"GET", "/system/status", ""},
		{"GET", "/system/secrets", ""},
		{"POST", "/system/secrets", `{"name":"new","value":"v"}`},
		{"PUT", "/system/secrets", `{"name":"db","value":"v2"}`},
		{"DELETE", "/system/secrets", `{"name":"db"}`},
		{"GET", "/system/logs?name=echo", ""},
		{"GET", "/system/namespace/openfaas-fn", ""},
	}
	for _, tc := range []struct {
		name       string
		auth       bool
		user, pass string
		wantAuthOK bool
	}{
		{"no credentials", true, "", "", false},
		{"wrong password", true, user, "nope", false},
		{"wrong user", true, "root", password, false},
		{"right credentials", true, user, password, true},
		{"socket handler needs none", false, "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, rt := range routes {
				s := newServer(t, tc.auth, function.Spec{Name: "echo", Image: "echo:1"})
				s.secrets.Create("db", []byte("v1"))
				var body any
				if rt.body != "" {
					body = rt.body
				}
				r := s.callAs(t, tc.user, tc.pass, rt.method, rt.path, body)
				if !tc.wantAuthOK {
					if r.code != http.StatusUnauthorized {
						t.Errorf("%s %s = %d, want 401", rt.method, rt.path, r.code)
					}
					if got, want := r.header.Get("WWW-Authenticate"), `Basic realm="Restricted"`; got != want {
						t.Errorf("%s %s: WWW-Authenticate = %q, want %q", rt.method, rt.path, got, want)
					}
					if !strings.Contains(r.body, "invalid credentials") {
						t.Errorf("%s %s: body %q, want it to say invalid credentials", rt.method, rt.path, r.body)
					}
					continue
				}
				if r.code < 200 || r.code > 299 {
					t.Errorf("%s %s = %d %q, want success", rt.method, rt.path, r.code, r.body)
				}
			}
		})
	}
}

// Neither /healthz, /metrics nor the functions themselves are behind auth,
// as on OpenFaaS.
func TestOpenRoutes(t *testing.T) {
	s := newServer(t, true)
	for _, tc := range []struct {
		method, path string
		wantCode     int
		wantBody     string
	}{
		{"GET", "/healthz", http.StatusOK, "OK"},
		{"HEAD", "/healthz", http.StatusOK, ""},
		{"GET", "/metrics", http.StatusOK, "ember_test_total 0"},
		{"GET", "/function/echo/a/b", http.StatusOK, "proxied GET /function/echo/a/b"},
		{"POST", "/function/echo", http.StatusOK, "proxied POST /function/echo"},
		{"DELETE", "/function/echo/x", http.StatusOK, "proxied DELETE /function/echo/x"},
	} {
		r := s.callAs(t, "", "", tc.method, tc.path, nil)
		if r.code != tc.wantCode || !strings.Contains(r.body, tc.wantBody) {
			t.Errorf("%s %s = %d %q, want %d containing %q", tc.method, tc.path, r.code, r.body, tc.wantCode, tc.wantBody)
		}
	}
}

func TestAuthOffWithoutPassword(t *testing.T) {
	fns := newFakeFunctions()
	a := api.New(api.Config{User: "admin"}, api.Deps{Functions: fns, Images: &fakeImages{}, Secrets: newFakeSecrets(),
		Logs: &fakeLogs{}, Proxy: http.NotFoundHandler(), Gatherer: prometheus.NewRegistry()},
		slog.New(slog.NewTextHandler(t.Output(), nil)))
	srv := httptest.NewServer(a.Handler(true))
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/system/functions")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /system/functions with no password configured = %d, want 200", resp.StatusCode)
	}
}

func TestHealthzStarting(t *testing.T) {
	s := newServer(t, false)
	s.ready.set(false)
	if r := s.call(t, "GET", "/healthz", nil); r.code != http.StatusServiceUnavailable {
		t.Errorf("GET /healthz while starting = %d, want 503", r.code)
	}
	s.ready.set(true)
	if r := s.call(t, "GET", "/healthz", nil); r.code != http.StatusOK || r.body != "OK" {
		t.Errorf("GET /healthz = %d %q, want 200 OK", r.code, r.body)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	s := newServer(t, false)
	if r := s.call(t, "GET", "/system/scale-function/echo", nil); r.code != http.StatusMethodNotAllowed {
		t.Errorf("GET /system/scale-function/echo = %d, want 405", r.code)
	}
}

func TestNamespace(t *testing.T) {
	s := newServer(t, false)
	r := s.call(t, "GET", "/system/namespace/openfaas-fn", nil)
	want := map[string]any{"name": "openfaas-fn", "labels": map[string]any{"openfaas": "1"}}
	if r.code != http.StatusOK {
		t.Fatalf("GET /system/namespace/openfaas-fn = %d", r.code)
	}
	if diff := cmp.Diff(want, decode[map[string]any](t, r)); diff != "" {
		t.Errorf("namespace (-want +got):\n%s", diff)
	}
	if r := s.call(t, "GET", "/system/namespace/other", nil); r.code != http.StatusNotFound {
		t.Errorf("GET /system/namespace/other = %d, want 404", r.code)
	}
}
