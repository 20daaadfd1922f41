package stack

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/function"
)

// envOf returns a lookup over m, so tests do not depend on the real
// environment.
func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func load(t *testing.T, path string, env map[string]string) *Stack {
	t.Helper()
	s, err := Load(path, LoadOptions{Env: envOf(env)})
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	return s
}

func deployments(t *testing.T, s *Stack, filter string) []Deployment {
	t.Helper()
	ds, err := s.Deployments(filter)
	if err != nil {
		t.Fatalf("Deployments(%q): %v", filter, err)
	}
	return ds
}

func ptr[T any](v T) *T { return &v }

func TestFullStack(t *testing.T) {
	s := load(t, "testdata/full/stack.yml", nil)
	if s.Version != "1.0" {
		t.Errorf("Version = %q, want 1.0", s.Version)
	}
	if want := (Provider{Name: "openfaas", Gateway: "http://127.0.0.1:8080"}); s.Provider != want {
		t.Errorf("Provider = %+v, want %+v", s.Provider, want)
	}
	got := deployments(t, s, "")
	want := []Deployment{
		{Name: "hello", Function: wire.FunctionDeployment{
			Service:    "hello",
			Image:      "ghcr.io/acme/hello:0.1.0",
			Namespace:  "openfaas-fn",
			EnvProcess: "python index.py",
			EnvVars: map[string]string{
				// YAML scalars arrive as written.
				"write_debug":  "true",
				"max_inflight": "10",
				"ratio":        "0.50",
				"greeting":     "hi there",
				"empty":        "",
				// environment_file wins over environment, and a
				// later file over an earlier one.
				"from_file": "common",
				"shared":    "override",
				"port":      "8080",
			},
			Constraints: []string{"node.platform.os == linux"},
			Secrets:     []string{"api-key", "db-password"},
			Labels: &map[string]string{
				"com.openfaas.scale.min":  "1",
				"com.openfaas.scale.max":  "4",
				"com.openfaas.scale.zero": "true",
			},
			Annotations: &map[string]string{
				"topic":                         "orders",
				"com.openfaas.health.http.path": "/healthz",
			},
			Limits:                 &wire.FunctionResources{Memory: "128Mi", CPU: "500m"},
			Requests:               &wire.FunctionResources{Memory: "64Mi", CPU: "100m"},
			ReadOnlyRootFilesystem: true,
		}},
		{Name: "echo-env", Function: wire.FunctionDeployment{
			Service:     "echo-env",
			Image:       "ghcr.io/openfaas/alpine:latest",
			EnvProcess:  "env",
			Labels:      ptr(map[string]string{}),
			Annotations: ptr(map[string]string{}),
		}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Deployments (-want +got):\n%s", diff)
	}

	// The wire form of a minimal function is faas-cli's: labels and
	// annotations present and empty, nothing else beyond what was set.
	body, err := json.Marshal(got[1].Function)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"service":"echo-env","image":"ghcr.io/openfaas/alpine:latest","envProcess":"env","labels":{},"annotations":{}}`; string(body) != want {
		t.Errorf("JSON:\n got %s\nwant %s", body, want)
	}
}

func TestDeploymentsDoNotShareMaps(t *testing.T) {
	s := load(t, "testdata/full/stack.yml", nil)
	ds := deployments(t, s, "hello")
	(*ds[0].Function.Labels)["changed"] = "yes"
	ds[0].Function.Secrets[0] = "changed"
	again := deployments(t, s, "hello")
	if _, ok := (*again[0].Function.Labels)["changed"]; ok || again[0].Function.Secrets[0] == "changed" {
		t.Error("a Deployment shares maps or slices with the Stack")
	}
}

func TestFilter(t *testing.T) {
	s := load(t, "testdata/full/stack.yml", nil)
	for _, tc := range []struct {
		filter string
		want   []string
	}{
		{"", []string{"hello", "echo-env"}},
		{"*", []string{"hello", "echo-env"}},
		{"echo-*", []string{"echo-env"}},
		{"h?llo", []string{"hello"}},
		{"[eh]*", []string{"hello", "echo-env"}},
	} {
		var got []string
		for _, d := range deployments(t, s, tc.filter) {
			got = append(got, d.Name)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("filter %q (-want +got):\n%s", tc.filter, diff)
		}
	}
	if _, err := s.Deployments("nothing*"); err == nil || err.Error() != `testdata/full/stack.yml: filter "nothing*" matches no function` {
		t.Errorf("no match: err = %v", err)
	}
	if _, err := s.Deployments("[a-"); err == nil || !strings.HasPrefix(err.Error(), `filter "[a-": syntax error in pattern`) {
		t.Errorf("bad pattern: err = %v", err)
	}
}

// A filter picks good functions out of a stack with a broken one, and
// only the selected functions' environment files are read.
func TestFilterSkipsBrokenFunctions(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "stack.yml")
	writeFile(t, path, `
provider:
  name: openfaas
functions:
  good:
    image: ghcr.io/acme/good:1
  broken:
    environment_file: [missing.yml]
`)
	s := load(t, path, nil)
	if got := deployments(t, s, "good"); len(got) != 1 || got[0].Name != "good" {
		t.Errorf("Deployments(good) = %+v", got)
	}
	if _, err := s.Deployments(""); err == nil {
		t.Error("Deployments of the whole stack: no error for the broken function")
	}
}

func TestEnvsubst(t *testing.T) {
	s := load(t, "testdata/envsubst.yml", map[string]string{
		"TAG":      "0.2.0",
		"REGISTRY": "", // empty counts as unset, as in faas-cli
		"HOME":     "/root",
	})
	if s.Provider.Gateway != "http://127.0.0.1:8080" {
		t.Errorf("gateway = %q", s.Provider.Gateway)
	}
	got := deployments(t, s, "")
	want := []Deployment{{Name: "hello", Function: wire.FunctionDeployment{
		Service: "hello",
		Image:   "ghcr.io/acme/hello:0.2.0",
		EnvVars: map[string]string{
			"mode":    "prod",
			"nested":  "0.2.0-fallback",
			"literal": "${NOT_SUBSTITUTED}",
			"dollar":  "$HOME", // envsubst only expands ${...}
		},
		Labels:      ptr(map[string]string{}),
		Annotations: ptr(map[string]string{}),
	}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Deployments (-want +got):\n%s", diff)
	}

	s = load(t, "testdata/envsubst.yml", map[string]string{
		"FN_NAME": "greet", "REGISTRY": "registry.local:5000", "TAG": "1", "MODE": "dev",
	})
	d := deployments(t, s, "")[0]
	if d.Name != "greet" || d.Function.Image != "registry.local:5000/hello:1" || d.Function.EnvVars["mode"] != "dev" {
		t.Errorf("with variables set: %+v", d)
	}

	s, err := Load("testdata/envsubst.yml", LoadOptions{NoEnvsubst: true, Env: envOf(map[string]string{"TAG": "1"})})
	if err != nil {
		t.Fatal(err)
	}
	if f := s.Functions[0]; f.Name != "${FN_NAME:-hello}" || f.Image != "${REGISTRY:-ghcr.io/acme}/hello:${TAG}" {
		t.Errorf("NoEnvsubst: got %+v", f)
	}
}

func TestExpand(t *testing.T) {
	env := envOf(map[string]string{"A": "a", "EMPTY": "", "N1": "one"})
	for _, tc := range []struct{ in, want string }{
		{"plain text", "plain text"},
		{"${A}", "a"},
		{"x${A}y${A}", "xaya"},
		{"${UNSET}", ""},
		{"${UNSET:-def}", "def"},
		{"${EMPTY:-def}", "def"},
		{"${EMPTY-def}", "def"},
		{"${UNSET=def}", "def"},
		{"${UNSET:=def}", "def"},
		{"${A:-def}", "a"},
		{"${UNSET:-}", ""},
		{"${UNSET:-${A}-${N1}}", "a-one"},
		{"${UNSET:-http://h:8080/p}", "http://h:8080/p"},
		{"$${A}", "${A}"},
		{"cost: $$5", "cost: $5"},
		{"$A and $ alone and trailing $", "$A and $ alone and trailing $"},
		{"${1}", ""},
	} {
		got, err := expand(tc.in, env)
		if err != nil {
			t.Errorf("expand(%q): %s", tc.in, err.msg)
			continue
		}
		if got != tc.want {
			t.Errorf("expand(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct {
		in   string
		line int
		msg  string
	}{
		{"a\nb ${A", 2, "unterminated ${"},
		{"${}", 1, "${}: want a variable name"},
		{"\n\n${A^^}", 3, "${A^^}: unsupported substitution (use ${NAME} or ${NAME:-default})"},
		{"${A:+x}", 1, "${A:+x}: unsupported substitution (use ${NAME} or ${NAME:-default})"},
		{"\n${UNSET:-${B#x}}", 2, "${B#x}: unsupported substitution (use ${NAME} or ${NAME:-default})"},
	} {
		_, err := expand(tc.in, env)
		if err == nil {
			t.Errorf("expand(%q): no error", tc.in)
			continue
		}
		if err.line != tc.line || err.msg != tc.msg {
			t.Errorf("expand(%q): error at line %d %q, want line %d %q", tc.in, err.line, err.msg, tc.line, tc.msg)
		}
	}
}

func TestTemplateStack(t *testing.T) {
	s := load(t, "testdata/template.yml", nil)
	got := deployments(t, s, "")
	want := []Deployment{{Name: "api", Function: wire.FunctionDeployment{
		Service:     "api",
		Image:       "acme/api:latest",
		Labels:      ptr(map[string]string{}),
		Annotations: ptr(map[string]string{}),
	}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Deployments (-want +got):\n%s", diff)
	}
}

func TestEmptyStacks(t *testing.T) {
	dir := t.TempDir()
	for _, body := range []string{
		"provider:\n  name: openfaas\n",
		"provider:\n  name: openfaas\nfunctions:\n",
		"provider:\n  name: openfaas\nfunctions: {}\n",
	} {
		path := filepath.Join(dir, "stack.yml")
		writeFile(t, path, body)
		s := load(t, path, nil)
		if ds := deployments(t, s, ""); len(ds) != 0 {
			t.Errorf("%q: %d deployments", body, len(ds))
		}
	}
}

func TestInvalid(t *testing.T) {
	const dns = "must be a DNS-1123 label"
	for _, tc := range []struct {
		file string
		want string // a prefix of the message, which starts with the file
		is   error  // what errors.Is must find; nil to skip
	}{
		{"no-image.yml", `no-image.yml: function "hello": image is required`, function.ErrInvalid},
		{"bad-name.yml", `bad-name.yml: function "Hello": name ` + dns, function.ErrInvalid},
		{"bad-memory.yml", `bad-memory.yml: function "x": limits.memory "12Q": not a quantity such as 128Mi`, function.ErrInvalid},
		{"small-memory.yml", `small-memory.yml: function "x": limits.memory "1Ki": below the 4Mi a process needs`, function.ErrInvalid},
		{"bad-cpu.yml", `bad-cpu.yml: function "x": requests.cpu "lots": not a quantity such as 500m or 0.5`, function.ErrInvalid},
		{"bad-secret.yml", `bad-secret.yml: function "x": secrets "api_key": ` + dns, function.ErrInvalid},
		{"missing-env-file.yml", `missing-env-file.yml: function "x": environment_file "env.yml": no such file`, fs.ErrNotExist},
		{"bad-env-file.yml", `bad-env-file.yml: function "x": environment_file "bad-env.yml": line 3: cannot unmarshal !!map into string`, nil},
		{"bad-provider.yml", `bad-provider.yml: provider.name "faas": must be "openfaas"`, function.ErrInvalid},
		{"no-provider.yml", `no-provider.yml: provider.name is required: it must be "openfaas"`, function.ErrInvalid},
		{"bad-version.yml", `bad-version.yml: version "1.35": only "1.0" is supported`, function.ErrInvalid},
		{"syntax.yml", `syntax.yml:6: mapping values are not allowed in this context`, nil},
		{"wrong-type.yml", `wrong-type.yml:7: function "x": cannot unmarshal !!map into []string`, nil},
		{"duplicate.yml", `duplicate.yml:6: function "x": defined twice (first at line 4)`, function.ErrInvalid},
		{"functions-list.yml", `functions-list.yml:4: functions must map function names to functions`, function.ErrInvalid},
		{"bad-subst.yml", `bad-subst.yml:5: ${TAG^^}: unsupported substitution`, function.ErrInvalid},
		{"unterminated-subst.yml", `unterminated-subst.yml:5: unterminated ${`, function.ErrInvalid},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := "testdata/invalid/" + tc.file
			s, err := Load(path, LoadOptions{Env: envOf(nil)})
			if err == nil {
				_, err = s.Deployments("")
			}
			if err == nil {
				t.Fatal("no error")
			}
			if want := "testdata/invalid/" + tc.want; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error:\n got %s\nwant %s...", err, want)
			}
			var se *Error
			if !errors.As(err, &se) {
				t.Errorf("error is a %T, not a *stack.Error", err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("errors.Is(err, %v) = false", tc.is)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/nonexistent.yml", LoadOptions{})
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "testdata/nonexistent.yml") {
		t.Errorf("err = %v, want a not-exist error naming the file", err)
	}
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
