package api_test

import (
	"context"
	"encoding/json"
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

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emberfaas/ember/api"
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
	case "pulled:1":
		// Pulled, one layer in two reports, as the runtime reports.
		if report := function.PullProgressFrom(ctx); report != nil {
			for _, done := range []int64{512, 1024} {
				report(function.PullProgress{Image: spec.Image, Layers: []function.LayerProgress{{Digest: "sha256:ab", Done: done, Total: 1024}}})
			}
		}
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

// fakeNamespaces keeps namespaces in memory, the default always there.
type fakeNamespaces struct {
	mu  sync.Mutex // guards nss
	nss map[string]function.Namespace
}

func newFakeNamespaces() *fakeNamespaces {
	return &fakeNamespaces{nss: map[string]function.Namespace{
		function.DefaultNamespace: {Name: function.DefaultNamespace, Labels: map[string]string{"openfaas": "1"}}}}
}

func (f *fakeNamespaces) Namespaces() ([]function.Namespace, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []function.Namespace{f.nss[function.DefaultNamespace]}
	for _, k := range slices.Sorted(maps.Keys(f.nss)) {
		if k != function.DefaultNamespace {
			out = append(out, f.nss[k])
		}
	}
	return out, nil
}

func (f *fakeNamespaces) Namespace(name string) (function.Namespace, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ns, ok := f.nss[name]
	if !ok {
		return ns, fmt.Errorf("namespace %s: %w", name, function.ErrNotFound)
	}
	return ns, nil
}

func (f *fakeNamespaces) CreateNamespace(ns function.Namespace) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.nss[ns.Name]; ok {
		return fmt.Errorf("namespace %s: %w", ns.Name, function.ErrExists)
	}
	f.nss[ns.Name] = ns
	return nil
}

func (f *fakeNamespaces) UpdateNamespace(ns function.Namespace) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.nss[ns.Name]; !ok {
		return fmt.Errorf("namespace %s: %w", ns.Name, function.ErrNotFound)
	}
	f.nss[ns.Name] = ns
	return nil
}

func (f *fakeNamespaces) DeleteNamespace(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.nss[name]; !ok {
		return fmt.Errorf("namespace %s: %w", name, function.ErrNotFound)
	}
	delete(f.nss, name)
	return nil
}

type server struct {
	nss     *fakeNamespaces
	fns     *fakeFunctions
	images  *fakeImages
	secrets *fakeSecrets
	proj    *fakeProjector
	logs    *fakeLogs
	host    *fakeServiceHost
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
	s := &server{nss: newFakeNamespaces(), fns: newFakeFunctions(specs...), images: &fakeImages{}, secrets: newFakeSecrets(), proj: &fakeProjector{},
		logs: &fakeLogs{}, ready: &readyFlag{v: true}, host: newFakeServiceHost()}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "ember_test_total", Help: "test"}))
	proxy := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "proxied %s %s", r.Method, r.URL.Path)
	})
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	a := api.New(api.Config{Version: "1.2.3", Commit: "abc1234", User: user, Password: password, MaxBodyBytes: maxBody},
		api.Deps{Functions: s.fns, Images: s.images, Secrets: s.secrets, SecretProjector: s.proj, Logs: s.logs, Namespaces: s.nss, Proxy: proxy, Gatherer: reg, Ready: s.ready.get,
			Services: s.host},
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
