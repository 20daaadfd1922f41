package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/emberfaas/ember/api"
	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/function"
)

var (
	_ api.Functions       = (*fakeFunctions)(nil)
	_ api.Images          = (*fakeImages)(nil)
	_ api.Secrets         = (*fakeSecrets)(nil)
	_ api.SecretProjector = (*fakeProjector)(nil)
	_ api.Logs            = (*fakeLogs)(nil)
)

var created = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// fakeFunctions is an in-memory controller.
type fakeFunctions struct {
	mu      sync.Mutex // guards below
	specs   map[string]function.Spec
	status  map[string]function.Status // overrides the status derived from the spec
	waitErr error
	removed []string
	deploys int // calls of Deploy, valid or not
}

func newFakeFunctions(specs ...function.Spec) *fakeFunctions {
	f := &fakeFunctions{specs: map[string]function.Spec{}, status: map[string]function.Status{}}
	for _, s := range specs {
		s.CreatedAt = created
		f.specs[s.Name] = s
	}
	return f
}

func (f *fakeFunctions) Deploy(ctx context.Context, spec function.Spec) error {
	f.mu.Lock()
	f.deploys++
	f.mu.Unlock()
	if err := spec.Validate(); err != nil {
		return err
	}
	switch spec.Image {
	case "missing:1":
		return fmt.Errorf("pull %s: %w", spec.Image, function.ErrImageNotFound)
	case "down:1":
		return fmt.Errorf("pull %s: %w", spec.Image, function.ErrImage)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	spec.CreatedAt = created
	f.specs[spec.Name] = spec
	return nil
}

func (f *fakeFunctions) Remove(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.specs[name]; !ok {
		return fmt.Errorf("function %s: %w", name, function.ErrNotFound)
	}
	delete(f.specs, name)
	f.removed = append(f.removed, name)
	return nil
}

func (f *fakeFunctions) Scale(ctx context.Context, name string, replicas int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.specs[name]
	if !ok {
		return fmt.Errorf("function %s: %w", name, function.ErrNotFound)
	}
	s.Replicas = replicas
	f.specs[name] = s
	return nil
}

func (f *fakeFunctions) SetBounds(ctx context.Context, name string, lo, hi *int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.specs[name]
	if !ok {
		return fmt.Errorf("function %s: %w", name, function.ErrNotFound)
	}
	if lo != nil {
		s.ScaleMin = lo
	}
	if hi != nil {
		s.ScaleMax = hi
	}
	if err := s.ValidateBounds(); err != nil {
		return err
	}
	f.specs[name] = s
	return nil
}

func (f *fakeFunctions) Restart(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.specs[name]
	if !ok {
		return fmt.Errorf("function %s: %w", name, function.ErrNotFound)
	}
	s.RestartGeneration++
	f.specs[name] = s
	return nil
}

func (f *fakeFunctions) Spec(name string) (function.Spec, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.specs[name]
	if !ok {
		return function.Spec{}, fmt.Errorf("function %s: %w", name, function.ErrNotFound)
	}
	return s.Clone(), nil
}

func (f *fakeFunctions) Status(name string) (function.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.specs[name]
	if !ok {
		return function.Status{}, fmt.Errorf("function %s: %w", name, function.ErrNotFound)
	}
	if st, ok := f.status[name]; ok {
		return st, nil
	}
	return function.Status{Desired: s.DesiredReplicas(), Ready: s.DesiredReplicas()}, nil
}

func (f *fakeFunctions) Functions() []function.Spec {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []function.Spec
	for _, name := range slices.Sorted(maps.Keys(f.specs)) {
		out = append(out, f.specs[name].Clone())
	}
	return out
}

func (f *fakeFunctions) WaitReady(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.waitErr
}

// Usage reports a fixed use for every function that exists.
func (f *fakeFunctions) Usage(name string) (function.Usage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.specs[name]; !ok {
		return function.Usage{}, fmt.Errorf("function %s: %w", name, function.ErrNotFound)
	}
	return function.Usage{CPU: 250, MemoryBytes: 64 << 20}, nil
}

func (f *fakeFunctions) setStatus(name string, st function.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status[name] = st
}

func (f *fakeFunctions) setWaitErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.waitErr = err
}

func (f *fakeFunctions) deployCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.deploys
}

func (f *fakeFunctions) removedNames() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.removed)
}

// fakeImages records archives and names what they held.
type fakeImages struct {
	mu       sync.Mutex // guards below
	archives []string
}

func (im *fakeImages) imported() []string {
	im.mu.Lock()
	defer im.mu.Unlock()
	return slices.Clone(im.archives)
}

func (im *fakeImages) Import(ctx context.Context, archive io.Reader) ([]string, error) {
	b, err := io.ReadAll(archive)
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty archive", function.ErrInvalid)
	}
	im.mu.Lock()
	defer im.mu.Unlock()
	im.archives = append(im.archives, string(b))
	return []string{"docker.io/library/echo:1", "docker.io/library/echo:2"}, nil
}

// fakeProjector records which secrets were re-projected.
type fakeProjector struct {
	mu        sync.Mutex // guards below
	refreshed []string
	err       error
}

func (p *fakeProjector) RefreshSecret(ctx context.Context, name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refreshed = append(p.refreshed, name)
	return p.err
}

func (p *fakeProjector) names() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.refreshed)
}

// fakeSecrets is an in-memory secret store.
type fakeSecrets struct {
	mu     sync.Mutex // guards values
	values map[string]string
}

func newFakeSecrets() *fakeSecrets { return &fakeSecrets{values: map[string]string{}} }

func (s *fakeSecrets) Create(name string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.values[name]; ok {
		return fmt.Errorf("secret %s: %w", name, function.ErrExists)
	}
	s.values[name] = string(value)
	return nil
}

func (s *fakeSecrets) Update(name string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.values[name]; !ok {
		return fmt.Errorf("secret %s: %w", name, function.ErrNotFound)
	}
	s.values[name] = string(value)
	return nil
}

func (s *fakeSecrets) Delete(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.values[name]; !ok {
		return fmt.Errorf("secret %s: %w", name, function.ErrNotFound)
	}
	delete(s.values, name)
	return nil
}

func (s *fakeSecrets) Names() ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.values)), nil
}

func (s *fakeSecrets) snapshot() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.values)
}

// fakeLogs serves fixed lines and records the queries.
type fakeLogs struct {
	mu      sync.Mutex // guards queries
	queries []function.LogQuery
}

func (l *fakeLogs) Logs(ctx context.Context, fn string, q function.LogQuery, out func(function.LogLine) error) error {
	l.mu.Lock()
	l.queries = append(l.queries, q)
	l.mu.Unlock()
	for i, text := range []string{"starting", "listening on :8080"} {
		if err := out(function.LogLine{Time: created.Add(time.Duration(i) * time.Second), Function: fn,
			Instance: fn + "-1", Text: text}); err != nil {
			return err
		}
	}
	return nil
}

func (l *fakeLogs) lastQuery() function.LogQuery {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.queries[len(l.queries)-1]
}

const (
	user     = "admin"
	password = "s3cret"
	maxBody  = 4 << 10
)

type server struct {
	fns     *fakeFunctions
	images  *fakeImages
	secrets *fakeSecrets
	proj    *fakeProjector
	logs    *fakeLogs
	url     string
	ready   *readyFlag
}

type readyFlag struct {
	mu sync.Mutex // guards v
	v  bool
}

func (b *readyFlag) set(v bool) { b.mu.Lock(); b.v = v; b.mu.Unlock() }
func (b *readyFlag) get() bool  { b.mu.Lock(); defer b.mu.Unlock(); return b.v }

// newServer serves the API over loopback HTTP, with basic auth when auth.
func newServer(t *testing.T, auth bool, specs ...function.Spec) *server {
	t.Helper()
	s := &server{fns: newFakeFunctions(specs...), images: &fakeImages{}, secrets: newFakeSecrets(), proj: &fakeProjector{},
		logs: &fakeLogs{}, ready: &readyFlag{v: true}}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "ember_test_total", Help: "test"}))
	proxy := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "proxied %s %s", r.Method, r.URL.Path)
	})
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	a := api.New(api.Config{Version: "1.2.3", Commit: "abc1234", User: user, Password: password, MaxBodyBytes: maxBody},
		api.Deps{Functions: s.fns, Images: s.images, Secrets: s.secrets, SecretProjector: s.proj, Logs: s.logs, Proxy: proxy, Gatherer: reg, Ready: s.ready.get},
		log)
	srv := httptest.NewServer(a.Handler(auth))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

type response struct {
	code   int
	header http.Header
	body   string
}

// call sends method path with body (JSON-encoded unless a string) and the
// right credentials.
func (s *server) call(t *testing.T, method, path string, body any) response {
	t.Helper()
	return s.callAs(t, user, password, method, path, body)
}

func (s *server) callAs(t *testing.T, u, p, method, path string, body any) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = strings.NewReader(string(j))
	}
	req, err := http.NewRequestWithContext(t.Context(), method, s.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if u != "" || p != "" {
		req.SetBasicAuth(u, p)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, string(b)}
}

func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
	return v
}

func fullSpec() function.Spec {
	return function.Spec{
		Name:        "echo",
		Image:       "ghcr.io/acme/echo:1",
		EnvProcess:  "cat",
		Env:         map[string]string{"MODE": "fast"},
		Labels:      map[string]string{function.LabelScaleMin: "2"},
		Annotations: map[string]string{"topic": "orders"},
		Secrets:     []string{"db-password"},
		Limits:      &function.Resources{Memory: "128Mi", CPU: "500m"},
		Requests:    &function.Resources{Memory: "64Mi"},
	}
}

func TestListEmpty(t *testing.T) {
	s := newServer(t, false)
	r := s.call(t, "GET", "/system/functions", nil)
	if r.code != http.StatusOK || strings.TrimSpace(r.body) != "[]" {
		t.Errorf("GET /system/functions = %d %q, want 200 []", r.code, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
}

func TestListAndDescribe(t *testing.T) {
	s := newServer(t, false, fullSpec(), function.Spec{Name: "bare", Image: "bare:1"})
	s.fns.setStatus("echo", function.Status{Phase: "active", Desired: 2, Ready: 1, Invoked: 5, Replicas: []function.Replica{
		{ID: "echo-1", IP: "10.63.0.2", State: function.StateReady, Started: created, Restarts: 1, LastExit: "exit code 2"},
		{ID: "echo-2", State: function.StateStarting, Started: created, Message: "no lock file /tmp/.lock yet"},
	}})
	s.fns.setStatus("bare", function.Status{}) // nothing known: phase and states omitted

	echo := map[string]any{
		"name":              "echo",
		"image":             "ghcr.io/acme/echo:1",
		"namespace":         "openfaas-fn",
		"envProcess":        "cat",
		"envVars":           map[string]any{"MODE": "fast"},
		"labels":            map[string]any{"com.openfaas.scale.min": "2", "faas_function": "echo"},
		"annotations":       map[string]any{"topic": "orders"},
		"secrets":           []any{"db-password"},
		"limits":            map[string]any{"memory": "128Mi", "cpu": "500m"},
		"requests":          map[string]any{"memory": "64Mi"},
		"invocationCount":   5.0,
		"replicas":          2.0,
		"availableReplicas": 1.0,
		"createdAt":         "2024-01-02T03:04:05Z",
		"minReplicas":       2.0,
		"maxReplicas":       20.0,
		"autoscaling":       true,
		"phase":             "active",
		"replicaStates":     map[string]any{"ready": 1.0, "starting": 1.0},
	}
	bare := map[string]any{
		"name":        "bare",
		"image":       "bare:1",
		"namespace":   "openfaas-fn",
		"labels":      map[string]any{"faas_function": "bare"},
		"annotations": map[string]any{},
		"createdAt":   "2024-01-02T03:04:05Z",
		"minReplicas": 1.0,
		"maxReplicas": 20.0,
		"autoscaling": true,
		// replicas, availableReplicas and invocationCount are 0: omitted.
	}

	r := s.call(t, "GET", "/system/functions", nil)
	if r.code != http.StatusOK {
		t.Fatalf("list: %d %s", r.code, r.body)
	}
	if diff := cmp.Diff([]map[string]any{bare, echo}, decode[[]map[string]any](t, r)); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}
	if r := s.call(t, "GET", "/system/functions?namespace=openfaas-fn", nil); r.code != http.StatusOK {
		t.Errorf("list in openfaas-fn: %d", r.code)
	}
	if r := s.call(t, "GET", "/system/functions?namespace=other", nil); r.code != http.StatusNotFound {
		t.Errorf("list in other namespace: %d, want 404", r.code)
	}

	withInstances := maps.Clone(echo)
	withInstances["usage"] = map[string]any{"cpu": 250.0, "totalMemoryBytes": float64(64 << 20)}
	withInstances["instances"] = []any{
		map[string]any{"id": "echo-1", "ip": "10.63.0.2", "state": "ready", "started": "2024-01-02T03:04:05Z",
			"restarts": 1.0, "lastExit": "exit code 2"},
		map[string]any{"id": "echo-2", "state": "starting", "started": "2024-01-02T03:04:05Z",
			"restarts": 0.0, "message": "no lock file /tmp/.lock yet"},
	}
	for _, tc := range []struct {
		path     string
		wantCode int
		want     map[string]any
	}{
		{"/system/function/echo", http.StatusOK, withInstances},
		{"/system/function/echo?namespace=openfaas-fn", http.StatusOK, withInstances},
		{"/system/function/echo.openfaas-fn", http.StatusOK, withInstances},
		{"/system/function/bare", http.StatusOK, withUsage(bare)},
		{"/system/function/echo?usage=false", http.StatusOK, withoutUsage(withInstances)},
		{"/system/function/nope", http.StatusNotFound, nil},
		{"/system/function/echo?namespace=other", http.StatusNotFound, nil},
		{"/system/function/echo.other", http.StatusNotFound, nil},
		{"/system/function/Bad_Name", http.StatusBadRequest, nil},
	} {
		r := s.call(t, "GET", tc.path, nil)
		if r.code != tc.wantCode {
			t.Errorf("GET %s = %d %q, want %d", tc.path, r.code, r.body, tc.wantCode)
			continue
		}
		if tc.want == nil {
			continue
		}
		if diff := cmp.Diff(tc.want, decode[map[string]any](t, r)); diff != "" {
			t.Errorf("GET %s (-want +got):\n%s", tc.path, diff)
		}
	}
}

func withUsage(m map[string]any) map[string]any {
	m = maps.Clone(m)
	m["usage"] = map[string]any{"cpu": 250.0, "totalMemoryBytes": float64(64 << 20)}
	return m
}

func withoutUsage(m map[string]any) map[string]any {
	m = maps.Clone(m)
	delete(m, "usage")
	return m
}

func TestDeploy(t *testing.T) {
	labels := map[string]string{function.LabelScaleMin: "2"}
	annotations := map[string]string{"topic": "orders"}
	full := wire.FunctionDeployment{
		Service:     "echo",
		Image:       "ghcr.io/acme/echo:1",
		EnvProcess:  "cat",
		EnvVars:     map[string]string{"MODE": "fast"},
		Secrets:     []string{"db-password"},
		Labels:      &labels,
		Annotations: &annotations,
		Limits:      &wire.FunctionResources{Memory: "128Mi", CPU: "500m"},
		Requests:    &wire.FunctionResources{Memory: "64Mi"},
	}
	wantFull := fullSpec()
	wantFull.CreatedAt = created
	withNS := func(ns string) wire.FunctionDeployment { d := full; d.Namespace = ns; return d }

	for _, tc := range []struct {
		name, method, path string
		existing           bool
		body               any
		wantCode           int
		wantSpec           *function.Spec
	}{
		{"create", "POST", "/system/functions", false, full, http.StatusAccepted, &wantFull},
		{"create in openfaas-fn", "POST", "/system/functions", false, withNS("openfaas-fn"), http.StatusAccepted, &wantFull},
		{"create in query namespace", "POST", "/system/functions?namespace=openfaas-fn", false, full, http.StatusAccepted, &wantFull},
		{"create over existing", "POST", "/system/functions", true, full, http.StatusAccepted, &wantFull},
		{"update", "PUT", "/system/functions", true, full, http.StatusAccepted, &wantFull},
		{"update unknown", "PUT", "/system/functions", false, full, http.StatusNotFound, nil},
		{"other namespace", "POST", "/system/functions", false, withNS("other"), http.StatusNotFound, nil},
		{"other query namespace", "POST", "/system/functions?namespace=other", false, full, http.StatusNotFound, nil},
		{"invalid name", "POST", "/system/functions", false, wire.FunctionDeployment{Service: "Echo", Image: "x"}, http.StatusBadRequest, nil},
		{"no image", "POST", "/system/functions", false, wire.FunctionDeployment{Service: "echo"}, http.StatusBadRequest, nil},
		{"image not found", "POST", "/system/functions", false, wire.FunctionDeployment{Service: "echo", Image: "missing:1"}, http.StatusBadRequest, nil},
		{"registry down", "POST", "/system/functions", false, wire.FunctionDeployment{Service: "echo", Image: "down:1"}, http.StatusBadGateway, nil},
		{"malformed JSON", "POST", "/system/functions", false, `{"service": "echo",`, http.StatusBadRequest, nil},
		{"malformed JSON on PUT", "PUT", "/system/functions", true, `not json`, http.StatusBadRequest, nil},
		{"too large", "POST", "/system/functions", false,
			`{"service":"echo","image":"echo:1","envVars":{"BIG":"` + strings.Repeat("x", maxBody) + `"}}`,
			http.StatusRequestEntityTooLarge, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var specs []function.Spec
			old := function.Spec{Name: "echo", Image: "echo:0"}
			if tc.existing {
				specs = append(specs, old)
			}
			s := newServer(t, false, specs...)
			r := s.call(t, tc.method, tc.path, tc.body)
			if r.code != tc.wantCode {
				t.Fatalf("%s %s = %d %q, want %d", tc.method, tc.path, r.code, r.body, tc.wantCode)
			}
			got, err := s.fns.Spec("echo")
			switch {
			case tc.wantSpec != nil:
				if diff := cmp.Diff(*tc.wantSpec, got); diff != "" {
					t.Errorf("deployed spec (-want +got):\n%s", diff)
				}
			case tc.existing:
				if diff := cmp.Diff(old, got, cmpIgnoreCreated); diff != "" {
					t.Errorf("a refused request changed the spec (-want +got):\n%s", diff)
				}
			case err == nil:
				t.Errorf("a refused request deployed %+v", got)
			}
		})
	}
}

var cmpIgnoreCreated = cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".CreatedAt" }, cmp.Ignore())

func TestDeployWait(t *testing.T) {
	for _, tc := range []struct {
		name, query string
		waitErr     error
		wantCode    int
		wantBody    string
	}{
		{"ready", "?wait=30s", nil, http.StatusAccepted, ""},
		{"not ready", "?wait=30s", errors.New("echo not ready: crash-looping: process exited: exit code 3"),
			http.StatusGatewayTimeout, "crash-looping: process exited: exit code 3"},
		{"bad duration", "?wait=soon", nil, http.StatusBadRequest, "not a positive duration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, false)
			s.fns.setWaitErr(tc.waitErr)
			r := s.call(t, "POST", "/system/functions"+tc.query, wire.FunctionDeployment{Service: "echo", Image: "echo:1"})
			if r.code != tc.wantCode || !strings.Contains(r.body, tc.wantBody) {
				t.Errorf("deploy%s = %d %q, want %d containing %q", tc.query, r.code, r.body, tc.wantCode, tc.wantBody)
			}
		})
	}
}

func TestDelete(t *testing.T) {
	for _, tc := range []struct {
		name, query string
		body        any
		wantCode    int
	}{
		{"by name", "", `{"functionName":"echo"}`, http.StatusAccepted},
		{"query namespace", "?namespace=openfaas-fn", `{"functionName":"echo"}`, http.StatusAccepted},
		{"body namespace", "", `{"functionName":"echo","namespace":"openfaas-fn"}`, http.StatusAccepted},
		{"qualified name", "", `{"functionName":"echo.openfaas-fn"}`, http.StatusAccepted},
		{"other query namespace", "?namespace=other", `{"functionName":"echo"}`, http.StatusNotFound},
		{"other body namespace", "", `{"functionName":"echo","namespace":"other"}`, http.StatusNotFound},
		{"other qualified", "", `{"functionName":"echo.other"}`, http.StatusNotFound},
		{"unknown", "", `{"functionName":"nope"}`, http.StatusNotFound},
		{"no name", "", `{}`, http.StatusBadRequest},
		{"malformed JSON", "", `{"functionName":`, http.StatusBadRequest},
		{"too large", "", `{"functionName":"` + strings.Repeat("e", maxBody) + `"}`, http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, false, function.Spec{Name: "echo", Image: "echo:1"})
			r := s.call(t, "DELETE", "/system/functions"+tc.query, tc.body)
			if r.code != tc.wantCode {
				t.Fatalf("DELETE = %d %q, want %d", r.code, r.body, tc.wantCode)
			}
			var want []string
			if tc.wantCode == http.StatusAccepted {
				want = []string{"echo"}
			}
			if diff := cmp.Diff(want, s.fns.removedNames()); diff != "" {
				t.Errorf("removed (-want +got):\n%s", diff)
			}
		})
	}
}

func TestScale(t *testing.T) {
	for _, tc := range []struct {
		name, path string
		body       any
		wantCode   int
		want       int // replicas after
	}{
		{"path and body name", "/system/scale-function/echo", `{"serviceName":"echo","replicas":3}`, http.StatusAccepted, 3},
		{"path name only", "/system/scale-function/echo", `{"replicas":4}`, http.StatusAccepted, 4},
		{"qualified path name", "/system/scale-function/echo.openfaas-fn", `{"replicas":2}`, http.StatusAccepted, 2},
		{"query namespace", "/system/scale-function/echo?namespace=openfaas-fn", `{"replicas":2}`, http.StatusAccepted, 2},
		{"body namespace", "/system/scale-function/echo", `{"replicas":2,"namespace":"openfaas-fn"}`, http.StatusAccepted, 2},
		{"to zero", "/system/scale-function/echo", `{"serviceName":"echo","replicas":0}`, http.StatusAccepted, 0},
		{"other namespace", "/system/scale-function/echo?namespace=other", `{"replicas":2}`, http.StatusNotFound, 1},
		{"other body namespace", "/system/scale-function/echo", `{"replicas":2,"namespace":"other"}`, http.StatusNotFound, 1},
		{"unknown", "/system/scale-function/nope", `{"replicas":2}`, http.StatusNotFound, 1},
		{"too many", "/system/scale-function/echo", `{"replicas":1001}`, http.StatusBadRequest, 1},
		{"negative", "/system/scale-function/echo", `{"replicas":-1}`, http.StatusBadRequest, 1},
		{"malformed JSON", "/system/scale-function/echo", `{`, http.StatusBadRequest, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, false, function.Spec{Name: "echo", Image: "echo:1", Replicas: 1})
			r := s.call(t, "POST", tc.path, tc.body)
			if r.code != tc.wantCode {
				t.Fatalf("POST %s = %d %q, want %d", tc.path, r.code, r.body, tc.wantCode)
			}
			sp, _ := s.fns.Spec("echo")
			if sp.Replicas != tc.want {
				t.Errorf("replicas = %d, want %d", sp.Replicas, tc.want)
			}
		})
	}
}

// ember's min and max in the scale body set the bounds; without replicas
// they leave the count alone, and bounds are checked as on deploy.
func TestScaleBounds(t *testing.T) {
	for _, tc := range []struct {
		name, body       string
		wantCode         int
		replicas, lo, hi int
	}{
		{"bounds only", `{"serviceName":"echo","min":2,"max":5}`, http.StatusAccepted, 1, 2, 5},
		{"bounds and replicas", `{"serviceName":"echo","replicas":3,"min":2,"max":5}`, http.StatusAccepted, 3, 2, 5},
		{"pin", `{"serviceName":"echo","min":4,"max":4}`, http.StatusAccepted, 1, 4, 4},
		{"max only", `{"serviceName":"echo","max":3}`, http.StatusAccepted, 1, 1, 3},
		{"min above max", `{"serviceName":"echo","min":6,"max":5}`, http.StatusBadRequest, 1, 1, 20},
		{"max above the limit", `{"serviceName":"echo","max":1001}`, http.StatusBadRequest, 1, 1, 20},
		{"huge max", `{"serviceName":"echo","max":18446744073709551615}`, http.StatusBadRequest, 1, 1, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, false, function.Spec{Name: "echo", Image: "echo:1", Replicas: 1})
			r := s.call(t, "POST", "/system/scale-function/echo", tc.body)
			if r.code != tc.wantCode {
				t.Fatalf("POST %s = %d %q, want %d", tc.body, r.code, r.body, tc.wantCode)
			}
			sp, _ := s.fns.Spec("echo")
			if sp.Replicas != tc.replicas || sp.MinReplicas() != tc.lo || sp.MaxReplicas() != tc.hi {
				t.Errorf("replicas %d, bounds [%d, %d]; want %d, [%d, %d]", sp.Replicas, sp.MinReplicas(), sp.MaxReplicas(), tc.replicas, tc.lo, tc.hi)
			}
		})
	}
}

// The handler falls back to the body's serviceName when the path has no
// name, but no route lets a request without one reach it.
func TestScaleBodyNameOnly(t *testing.T) {
	for _, path := range []string{"/system/scale-function", "/system/scale-function/"} {
		s := newServer(t, false, function.Spec{Name: "echo", Image: "echo:1", Replicas: 1})
		r := s.call(t, "POST", path, `{"serviceName":"echo","replicas":3}`)
		if r.code != http.StatusAccepted {
			t.Errorf("POST %s = %d %q, want 202", path, r.code, r.body)
			continue
		}
		if sp, _ := s.fns.Spec("echo"); sp.Replicas != 3 {
			t.Errorf("POST %s: replicas = %d, want 3", path, sp.Replicas)
		}
	}
}

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

func TestSecrets(t *testing.T) {
	s := newServer(t, false)
	steps := []struct {
		method, path, body string
		wantCode           int
		wantBody           string // substring
		want               map[string]string
	}{
		{"GET", "/system/secrets", "", http.StatusOK, "[]", map[string]string{}},
		{"POST", "/system/secrets", `{"name":"db","value":"pw1"}`, http.StatusCreated, "", map[string]string{"db": "pw1"}},
		{"POST", "/system/secrets", `{"name":"db","value":"again"}`, http.StatusConflict, "already exists", map[string]string{"db": "pw1"}},
		{"GET", "/system/secrets", "", http.StatusOK, `[{"name":"db","namespace":"openfaas-fn"}]`, nil},
		// faas-cli --from-file sends rawValue (base64 in JSON); it wins over value.
		{"PUT", "/system/secrets", `{"name":"db","value":"ignored","rawValue":"cmF3AGJ5dGVz"}`, http.StatusOK, "", map[string]string{"db": "raw\x00bytes"}},
		{"PUT", "/system/secrets", `{"name":"nope","value":"x"}`, http.StatusNotFound, "", nil},
		{"POST", "/system/secrets?namespace=other", `{"name":"x","value":"v"}`, http.StatusNotFound, "", nil},
		{"POST", "/system/secrets", `{"name":"x","value":"v","namespace":"other"}`, http.StatusNotFound, "", nil},
		{"POST", "/system/secrets", `{"name":"Bad_Name","value":"v"}`, http.StatusBadRequest, "", nil},
		{"POST", "/system/secrets", `{"name":`, http.StatusBadRequest, "", nil},
		{"GET", "/system/secrets?namespace=other", "", http.StatusNotFound, "", nil},
		{"DELETE", "/system/secrets", `{"name":"db"}`, http.StatusOK, "", map[string]string{}},
		{"DELETE", "/system/secrets", `{"name":"db"}`, http.StatusNotFound, "unable to find secret: db", nil},
	}
	for _, st := range steps {
		var body any
		if st.body != "" {
			body = st.body
		}
		r := s.call(t, st.method, st.path, body)
		if r.code != st.wantCode || !strings.Contains(r.body, st.wantBody) {
			t.Errorf("%s %s %s = %d %q, want %d containing %q", st.method, st.path, st.body, r.code, r.body, st.wantCode, st.wantBody)
		}
		if st.want != nil {
			if diff := cmp.Diff(st.want, s.secrets.snapshot()); diff != "" {
				t.Errorf("after %s %s: secrets (-want +got):\n%s", st.method, st.body, diff)
			}
		}
	}
}

// Every update and deletion is re-projected into running replicas; a
// failed projection is reported, not hidden behind a 200.
func TestSecretsReachReplicas(t *testing.T) {
	s := newServer(t, false)
	s.call(t, "POST", "/system/secrets", `{"name":"db","value":"pw1"}`)
	s.call(t, "PUT", "/system/secrets", `{"name":"db","value":"pw2"}`)
	s.call(t, "PUT", "/system/secrets", `{"name":"ghost","value":"x"}`)
	s.call(t, "DELETE", "/system/secrets", `{"name":"db"}`)
	if diff := cmp.Diff([]string{"db", "db"}, s.proj.names()); diff != "" {
		t.Errorf("refreshed (-want +got):\n%s", diff)
	}
	s.call(t, "POST", "/system/secrets", `{"name":"db","value":"pw1"}`)
	s.proj.mu.Lock()
	s.proj.err = errors.New("disk full")
	s.proj.mu.Unlock()
	r := s.call(t, "PUT", "/system/secrets", `{"name":"db","value":"pw3"}`)
	if r.code != http.StatusInternalServerError || !strings.Contains(r.body, "may still see the old one: disk full") {
		t.Errorf("failed projection = %d %q", r.code, r.body)
	}
}

func TestRestart(t *testing.T) {
	for _, tc := range []struct {
		name, path string
		waitErr    error
		wantCode   int
		wantGen    int64
	}{
		{"by name", "/system/restart/echo", nil, http.StatusAccepted, 1},
		{"qualified", "/system/restart/echo.openfaas-fn", nil, http.StatusAccepted, 1},
		{"wait", "/system/restart/echo?wait=30s", nil, http.StatusAccepted, 1},
		{"not ready", "/system/restart/echo?wait=30s", errors.New("echo not ready: exit code 3"), http.StatusGatewayTimeout, 1},
		{"bad wait", "/system/restart/echo?wait=soon", nil, http.StatusBadRequest, 0},
		{"other namespace", "/system/restart/echo?namespace=other", nil, http.StatusNotFound, 0},
		{"unknown", "/system/restart/nope", nil, http.StatusNotFound, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, false, function.Spec{Name: "echo", Image: "echo:1"})
			s.fns.setWaitErr(tc.waitErr)
			if r := s.call(t, "POST", tc.path, nil); r.code != tc.wantCode {
				t.Errorf("POST %s = %d %q, want %d", tc.path, r.code, r.body, tc.wantCode)
			}
			if sp, _ := s.fns.Spec("echo"); sp.RestartGeneration != tc.wantGen {
				t.Errorf("restart generation %d, want %d", sp.RestartGeneration, tc.wantGen)
			}
		})
	}
}

func TestLogs(t *testing.T) {
	s := newServer(t, false, function.Spec{Name: "echo", Image: "echo:1"})
	r := s.call(t, "GET", "/system/logs?name=echo&tail=5&since=2024-01-01T00:00:00Z&instance=echo-1&follow=false", nil)
	if r.code != http.StatusOK {
		t.Fatalf("GET /system/logs = %d %q", r.code, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("Content-Type = %q, want application/x-ndjson", ct)
	}
	var got []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(r.body), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		got = append(got, m)
	}
	want := []map[string]any{
		{"name": "echo", "namespace": "openfaas-fn", "instance": "echo-1", "timestamp": "2024-01-02T03:04:05Z", "text": "starting"},
		{"name": "echo", "namespace": "openfaas-fn", "instance": "echo-1", "timestamp": "2024-01-02T03:04:06Z", "text": "listening on :8080"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("log lines (-want +got):\n%s", diff)
	}
	wantQ := function.LogQuery{Instance: "echo-1", Tail: 5, Since: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	if diff := cmp.Diff(wantQ, s.logs.lastQuery()); diff != "" {
		t.Errorf("query (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		query    string
		wantCode int
	}{
		{"name=echo.openfaas-fn&follow=true", http.StatusOK},
		{"", http.StatusBadRequest},
		{"name=nope", http.StatusNotFound},
		{"name=echo&namespace=other", http.StatusNotFound},
		{"name=echo.other", http.StatusNotFound},
		{"name=echo&tail=many", http.StatusUnprocessableEntity},
		{"name=echo&since=yesterday", http.StatusUnprocessableEntity},
	} {
		if r := s.call(t, "GET", "/system/logs?"+tc.query, nil); r.code != tc.wantCode {
			t.Errorf("GET /system/logs?%s = %d %q, want %d", tc.query, r.code, r.body, tc.wantCode)
		}
	}
	if q := s.logs.lastQuery(); !q.Follow {
		t.Errorf("follow=true gave query %+v, want Follow", q)
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
