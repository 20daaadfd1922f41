package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// stackDaemon stands in for the daemon: it records what the CLI sends and
// answers each function with the status set for it (200 by default).
type stackDaemon struct {
	url string

	mu     sync.Mutex // guards below
	reqs   []stackRequest
	answer map[string]int // function name → status code
}

// stackRequest is one recorded request; Body is decoded JSON, so tests
// compare content, not key order.
type stackRequest struct {
	Method, Path, Query, ContentType string
	Body                             map[string]any
}

func newStackDaemon(t *testing.T) *stackDaemon {
	d := &stackDaemon{answer: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		var body map[string]any
		if err := json.Unmarshal(data, &body); err != nil {
			http.Error(w, "bad JSON: "+err.Error(), http.StatusBadRequest)
			return
		}
		name, _ := body["service"].(string)
		if name == "" {
			name, _ = body["functionName"].(string)
		}
		d.mu.Lock()
		d.reqs = append(d.reqs, stackRequest{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Content-Type"), body})
		code := d.answer[name]
		d.mu.Unlock()
		if code != 0 && code != http.StatusOK {
			http.Error(w, "refused "+name, code)
		}
	}))
	t.Cleanup(srv.Close)
	d.url = srv.URL
	return d
}

func (d *stackDaemon) answerWith(name string, code int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.answer[name] = code
}

func (d *stackDaemon) requests() []stackRequest {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]stackRequest(nil), d.reqs...)
}

// ember runs the CLI against d and returns its output.
func (d *stackDaemon) ember(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"--socket", d.url}, args...))
	err := root.ExecuteContext(t.Context())
	return out.String(), err
}

// writeStack writes files (name → content) into a new directory and
// returns the path of the first, the stack file.
func writeStack(t *testing.T, stackYAML string, extra map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range extra {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "stack.yml")
	if err := os.WriteFile(path, []byte(stackYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func jsonObject(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return m
}

const threeFunctions = `
version: 1.0
provider:
  name: openfaas
  gateway: http://127.0.0.1:8080
functions:
  hello:
    lang: golang-middleware
    handler: ./hello
    image: ghcr.io/acme/hello:${TAG:-0.1.0}
    fprocess: ./handler
    environment:
      write_debug: true
    environment_file: [env.yml]
    secrets: [api-key]
    labels:
      com.openfaas.scale.min: 2
    annotations:
      topic: orders
    limits:
      memory: 128Mi
      cpu: 500m
    readonly_root_filesystem: true
  echo:
    image: ghcr.io/openfaas/alpine:latest
    fprocess: env
  world:
    image: ghcr.io/acme/world:1
    namespace: openfaas-fn
`

func TestDeployStack(t *testing.T) {
	t.Setenv("TAG", "") // empty: the stack's default applies
	d := newStackDaemon(t)
	file := writeStack(t, threeFunctions, map[string]string{"env.yml": "environment:\n  port: 8080\n"})
	out, err := d.ember(t, "deploy", "-f", file, "--timeout", "30s")
	if err != nil {
		t.Fatalf("deploy -f: %v\n%s", err, out)
	}
	want := []stackRequest{
		{"POST", "/system/functions", "wait=30s", "application/json", jsonObject(t, `{
			"service": "hello", "image": "ghcr.io/acme/hello:0.1.0", "envProcess": "./handler",
			"envVars": {"write_debug": "true", "port": "8080"},
			"secrets": ["api-key"],
			"labels": {"com.openfaas.scale.min": "2"}, "annotations": {"topic": "orders"},
			"limits": {"memory": "128Mi", "cpu": "500m"},
			"readOnlyRootFilesystem": true}`)},
		{"POST", "/system/functions", "wait=30s", "application/json", jsonObject(t,
			`{"service":"echo","image":"ghcr.io/openfaas/alpine:latest","envProcess":"env","labels":{},"annotations":{}}`)},
		{"POST", "/system/functions", "wait=30s", "application/json", jsonObject(t,
			`{"service":"world","image":"ghcr.io/acme/world:1","namespace":"openfaas-fn","labels":{},"annotations":{}}`)},
	}
	if diff := cmp.Diff(want, d.requests()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	wantOut := `Deployed hello: ready.
URL: http://127.0.0.1:8080/function/hello
Deployed echo: ready.
URL: http://127.0.0.1:8080/function/echo
Deployed world: ready.
URL: http://127.0.0.1:8080/function/world.openfaas-fn
`
	if out != wantOut {
		t.Errorf("output:\n%s\nwant:\n%s", out, wantOut)
	}
}

func TestDeployStackFilterNoWaitJSON(t *testing.T) {
	d := newStackDaemon(t)
	file := writeStack(t, threeFunctions, map[string]string{"env.yml": "environment: {}\n"})
	out, err := d.ember(t, "deploy", "-f", file, "--filter", "*o", "--wait=false", "-o", "json", "--gateway", "http://gw:8080/")
	if err != nil {
		t.Fatalf("deploy -f --filter: %v\n%s", err, out)
	}
	var got []string
	for _, r := range d.requests() {
		if r.Query != "" {
			t.Errorf("%s: query %q without --wait", r.Body["service"], r.Query)
		}
		got = append(got, r.Body["service"].(string))
	}
	if diff := cmp.Diff([]string{"hello", "echo"}, got); diff != "" {
		t.Errorf("deployed (-want +got):\n%s", diff)
	}
	var results []map[string]any
	if err := json.Unmarshal([]byte(out), &results); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	wantResults := []map[string]any{
		{"name": "hello", "url": "http://gw:8080/function/hello", "ready": false},
		{"name": "echo", "url": "http://gw:8080/function/echo", "ready": false},
	}
	if diff := cmp.Diff(wantResults, results); diff != "" {
		t.Errorf("JSON output (-want +got):\n%s", diff)
	}
}

func TestDeployStackStopsAtFirstFailure(t *testing.T) {
	d := newStackDaemon(t)
	d.answerWith("echo", http.StatusBadRequest)
	file := writeStack(t, threeFunctions, map[string]string{"env.yml": "environment: {}\n"})
	out, err := d.ember(t, "deploy", "-f", file)
	if err == nil {
		t.Fatal("no error")
	}
	if want := "deploy echo: refused echo (not attempted: world)"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if !strings.Contains(out, "Deployed hello") || strings.Contains(out, "world") {
		t.Errorf("output:\n%s", out)
	}
	if n := len(d.requests()); n != 2 {
		t.Errorf("%d requests, want 2 (hello, echo)", n)
	}
}

// An invalid function anywhere in the selection stops the deploy before
// anything is sent.
func TestDeployStackValidatesFirst(t *testing.T) {
	d := newStackDaemon(t)
	file := writeStack(t, threeFunctions+"  Bad:\n    image: x\n", map[string]string{"env.yml": "environment: {}\n"})
	_, err := d.ember(t, "deploy", "-f", file)
	if err == nil || !strings.HasPrefix(err.Error(), file+`: function "Bad": name must be a DNS-1123 label`) {
		t.Errorf("error = %v", err)
	}
	if n := len(d.requests()); n != 0 {
		t.Errorf("%d requests sent for an invalid stack", n)
	}
	// A missing environment file is reported before anything is sent too.
	file = writeStack(t, threeFunctions, nil)
	_, err = d.ember(t, "deploy", "-f", file)
	if err == nil || err.Error() != file+`: function "hello": environment_file "env.yml": no such file` {
		t.Errorf("error = %v", err)
	}
	if n := len(d.requests()); n != 0 {
		t.Errorf("%d requests sent for an invalid stack", n)
	}
}

func TestRemoveStack(t *testing.T) {
	d := newStackDaemon(t)
	d.answerWith("echo", http.StatusNotFound)
	d.answerWith("world", http.StatusInternalServerError)
	// Removing needs neither the environment files nor valid images.
	file := writeStack(t, threeFunctions, nil)
	out, err := d.ember(t, "rm", "-f", file)
	if err == nil || err.Error() != "remove world: refused world" {
		t.Errorf("error = %v, want remove world: refused world", err)
	}
	if want := "Removed hello.\necho is not deployed.\n"; out != want {
		t.Errorf("output %q, want %q", out, want)
	}
	var got []stackRequest
	for _, n := range []string{"hello", "echo", "world"} {
		got = append(got, stackRequest{"DELETE", "/system/functions", "", "application/json", map[string]any{"functionName": n}})
	}
	if diff := cmp.Diff(got, d.requests()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}

	d = newStackDaemon(t)
	if out, err := d.ember(t, "remove", "-f", file, "--filter", "hel*"); err != nil || out != "Removed hello.\n" {
		t.Errorf("remove --filter: %q, %v", out, err)
	}
	if n := len(d.requests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

// Without -f, deploy and remove behave as before.
func TestDeployAndRemoveByName(t *testing.T) {
	d := newStackDaemon(t)
	if out, err := d.ember(t, "deploy", "fn", "--image", "ghcr.io/acme/fn:1", "--wait=false"); err != nil {
		t.Fatalf("deploy: %v\n%s", err, out)
	}
	if out, err := d.ember(t, "rm", "fn"); err != nil || out != "Removed fn.\n" {
		t.Fatalf("rm: %q, %v", out, err)
	}
	want := []stackRequest{
		{"POST", "/system/functions", "", "application/json", map[string]any{"service": "fn", "image": "ghcr.io/acme/fn:1"}},
		{"DELETE", "/system/functions", "", "application/json", map[string]any{"functionName": "fn"}},
	}
	if diff := cmp.Diff(want, d.requests()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestStackArgs(t *testing.T) {
	d := newStackDaemon(t)
	file := writeStack(t, threeFunctions, nil)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"deploy"}, "accepts 1 arg(s), received 0"},
		{[]string{"deploy", "fn"}, "--image is required (or give a stack file with -f)"},
		{[]string{"deploy", "fn", "-f", file}, "give NAME or -f " + file + ", not both"},
		{[]string{"deploy", "fn", "--image", "x", "--filter", "f*"}, "--filter selects functions of a stack file: add -f FILE"},
		{[]string{"deploy", "-f", file, "--image", "x"}, "--image cannot be combined with -f: set it in the stack file"},
		{[]string{"deploy", "-f", file, "-e", "A=1"}, "--env cannot be combined with -f"},
		{[]string{"deploy", "-f", file, "-o", "yaml"}, `--output "yaml": want json or nothing`},
		{[]string{"deploy", "-f", filepath.Join(t.TempDir(), "none.yml")}, "no such file or directory"},
		{[]string{"deploy", "-f", file, "--filter", "nope"}, `filter "nope" matches no function`},
		{[]string{"remove"}, "accepts 1 arg(s), received 0"},
		{[]string{"remove", "fn", "-f", file}, "not both"},
		{[]string{"rm", "fn", "--filter", "x"}, "--filter selects functions"},
	} {
		_, err := d.ember(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ember %s: error %v, want %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
	if n := len(d.requests()); n != 0 {
		t.Errorf("%d requests sent for bad invocations", n)
	}
}
