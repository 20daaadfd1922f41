package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/emberfaas/ember/api"
	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/function"
)

// specRecorder is the controller behind a real API handler: it keeps the
// specs deployed, as the API hands them over.
type specRecorder struct {
	mu    sync.Mutex // guards below
	specs []function.Spec
}

func (f *specRecorder) Deploy(_ context.Context, s function.Spec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.specs = append(f.specs, s)
	return nil
}
func (f *specRecorder) Remove(context.Context, string) error                { return nil }
func (f *specRecorder) Scale(context.Context, string, int) error            { return nil }
func (f *specRecorder) Restart(context.Context, string) error               { return nil }
func (f *specRecorder) SetBounds(context.Context, string, *int, *int) error { return nil }
func (f *specRecorder) Spec(string) (function.Spec, error)                  { return function.Spec{}, nil }
func (f *specRecorder) Status(string) (function.Status, error)              { return function.Status{}, nil }
func (f *specRecorder) Functions() []function.Spec                          { return nil }
func (f *specRecorder) WaitReady(context.Context, string) error             { return nil }
func (f *specRecorder) Usage(string) (function.Usage, error)                { return function.Usage{}, nil }

func (f *specRecorder) last(t *testing.T) function.Spec {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.specs) == 0 {
		t.Fatal("nothing deployed")
	}
	return f.specs[len(f.specs)-1]
}

// The same function deployed by `ember deploy NAME --image`, by `ember
// deploy -f stack.yml` and by faas-cli (its request bodies as faas-cli
// 0.18.12 sends them for that stack file) is one spec with one hash, so
// switching between them rolls no replica.
func TestDeployPathsGiveOneSpec(t *testing.T) {
	rec := &specRecorder{}
	h := api.New(api.Config{}, api.Deps{Functions: rec, Gatherer: prometheus.NewRegistry()}, slog.New(slog.DiscardHandler)).Handler(false)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	run := func(args ...string) function.Spec {
		t.Helper()
		root := newRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(append([]string{"--socket", srv.URL}, args...))
		if err := root.ExecuteContext(t.Context()); err != nil {
			t.Fatalf("ember %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		return rec.last(t)
	}
	faasCLI := func(body string) function.Spec {
		t.Helper()
		resp, err := http.Post(srv.URL+"/system/functions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST %s: %s %s", body, resp.Status, msg)
		}
		return rec.last(t)
	}
	for _, tc := range []struct {
		name    string
		flags   []string
		stack   string
		faasCLI string
	}{{
		name:  "plain",
		flags: []string{"--image", "127.0.0.1:5000/echo:v1"},
		stack: `
provider: {name: openfaas}
functions:
  echo:
    image: 127.0.0.1:5000/echo:v1
`,
		faasCLI: `{"service":"echo","image":"127.0.0.1:5000/echo:v1","labels":{},"annotations":{}}`,
	}, {
		name:  "untagged image",
		flags: []string{"--image", "127.0.0.1:5000/echo"},
		stack: `
provider: {name: openfaas}
functions:
  echo:
    image: 127.0.0.1:5000/echo
    labels: {}
    environment: {}
    secrets: []
`,
		faasCLI: `{"service":"echo","image":"127.0.0.1:5000/echo:latest","labels":{},"annotations":{}}`,
	}, {
		name: "everything",
		flags: []string{"--image", "127.0.0.1:5000/echo:v1", "--env", "K=V", "--secret", "s1",
			"--label", "com.openfaas.scale.min=2", "--memory-limit", "64Mi", "--readonly"},
		stack: `
provider: {name: openfaas}
functions:
  echo:
    image: 127.0.0.1:5000/echo:v1
    environment: {K: V}
    secrets: [s1]
    labels: {com.openfaas.scale.min: 2}
    limits: {memory: 64Mi}
    readonly_root_filesystem: true
`,
		faasCLI: `{"service":"echo","image":"127.0.0.1:5000/echo:v1","envVars":{"K":"V"},"secrets":["s1"],` +
			`"labels":{"com.openfaas.scale.min":"2"},"annotations":{},"limits":{"memory":"64Mi"},"readOnlyRootFilesystem":true}`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			byName := run(append([]string{"deploy", "echo", "--wait=false"}, tc.flags...)...)
			byStack := run("deploy", "-f", writeStack(t, tc.stack, nil), "--wait=false")
			byFaasCLI := faasCLI(tc.faasCLI)
			want := byName.Normalize()
			for path, s := range map[string]function.Spec{"stack": byStack, "faas-cli": byFaasCLI} {
				if d := cmp.Diff(want, s.Normalize()); d != "" {
					t.Errorf("%s spec differs from the CLI's (-cli +%s):\n%s", path, path, d)
				}
				if s.Hash() != byName.Hash() {
					t.Errorf("%s spec hashes %s, the CLI's %s", path, s.Hash(), byName.Hash())
				}
			}
		})
	}
}

func TestScaleMessage(t *testing.T) {
	u := func(n uint64) *uint64 { return &n }
	for _, tc := range []struct {
		o    scaleOptions
		f    wire.FunctionStatus
		want string
	}{
		{scaleOptions{Name: "echo", Replicas: u(3)}, wire.FunctionStatus{MinReplicas: 1, MaxReplicas: 20, Autoscaling: true},
			"Scaled echo to 3 replicas; autoscaling between 1 and 20 will move it with load — use --min/--max to pin."},
		{scaleOptions{Name: "echo", Replicas: u(3)}, wire.FunctionStatus{MinReplicas: 3, MaxReplicas: 3},
			"Scaled echo to 3 replicas; autoscaling is off (min = max = 3), so it stays at 3."},
		{scaleOptions{Name: "echo", Min: u(2), Max: u(5)}, wire.FunctionStatus{MinReplicas: 2, MaxReplicas: 5, Autoscaling: true},
			"Set echo's replicas between 2 and 5; autoscaling between 2 and 5 moves it with load."},
		{scaleOptions{Name: "echo", Replicas: u(0)}, wire.FunctionStatus{MinReplicas: 1, MaxReplicas: 20, Autoscaling: true},
			"Scaled echo to zero; the next request wakes it; autoscaling between 1 and 20 moves it with load."},
	} {
		if got := scaleMessage(tc.o, tc.f); got != tc.want {
			t.Errorf("got  %q\nwant %q", got, tc.want)
		}
	}
}
