package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/function"
)

// A refused deploy names what was wrong and changes nothing: the
// controller is never called, and an existing function keeps its spec.
func TestDeployRefusesInvalidInput(t *testing.T) {
	good := `{"service":"echo","image":"echo:1"}`
	dep := func(edit func(*wire.FunctionDeployment)) wire.FunctionDeployment {
		d := wire.FunctionDeployment{Service: "echo", Image: "echo:1"}
		edit(&d)
		return d
	}
	for _, tc := range []struct {
		name, method, path string
		body               any
		wantCode           int
		wantBody           string
	}{
		{"wait not a duration", "POST", "/system/functions?wait=abc", good, http.StatusBadRequest, `wait "abc" is not a positive duration`},
		{"wait negative", "PUT", "/system/functions?wait=-1s", good, http.StatusBadRequest, `wait "-1s"`},
		{"trailing garbage", "POST", "/system/functions", good + "garbage", http.StatusBadRequest, "data after the JSON value"},
		{"trailing brace", "PUT", "/system/functions", good + "}", http.StatusBadRequest, "data after the JSON value"},
		{"two objects", "POST", "/system/functions", good + good, http.StatusBadRequest, "more than one JSON value"},
		{"cpu NaN", "POST", "/system/functions", dep(func(d *wire.FunctionDeployment) { d.Limits = &wire.FunctionResources{CPU: "NaN"} }),
			http.StatusBadRequest, `limits: invalid: cpu "NaN"`},
		{"cpu Inf", "PUT", "/system/functions", dep(func(d *wire.FunctionDeployment) { d.Limits = &wire.FunctionResources{CPU: "Inf"} }),
			http.StatusBadRequest, `cpu "Inf"`},
		{"cpu 1e30", "POST", "/system/functions", dep(func(d *wire.FunctionDeployment) { d.Limits = &wire.FunctionResources{CPU: "1e30"} }),
			http.StatusBadRequest, `cpu "1e30" is above the limit of 1024 cores`},
		{"request cpu NaN", "POST", "/system/functions", dep(func(d *wire.FunctionDeployment) { d.Requests = &wire.FunctionResources{CPU: "NaN"} }),
			http.StatusBadRequest, `requests: invalid: cpu "NaN"`},
		{"memory 1Ti", "POST", "/system/functions", dep(func(d *wire.FunctionDeployment) { d.Limits = &wire.FunctionResources{Memory: "1Ti"} }),
			http.StatusBadRequest, `memory "1Ti" is not below the limit of 1Ti`},
		{"memory 9e18", "PUT", "/system/functions", dep(func(d *wire.FunctionDeployment) { d.Limits = &wire.FunctionResources{Memory: "9e18"} }),
			http.StatusBadRequest, `memory "9e18"`},
		{"env key newline", "POST", "/system/functions", dep(func(d *wire.FunctionDeployment) { d.EnvVars = map[string]string{"A\nB": "1"} }),
			http.StatusBadRequest, `environment variable name "A\nB"`},
		{"env value NUL", "PUT", "/system/functions", dep(func(d *wire.FunctionDeployment) { d.EnvVars = map[string]string{"K": "a\x00b"} }),
			http.StatusBadRequest, `environment variable K: value contains a NUL byte`},
		{"bad label", "PUT", "/system/functions", dep(func(d *wire.FunctionDeployment) {
			d.Labels = &map[string]string{function.LabelScaleMin: "many"}
		}), http.StatusBadRequest, function.LabelScaleMin},
		{"bad scale type", "POST", "/system/functions", dep(func(d *wire.FunctionDeployment) {
			d.Labels = &map[string]string{function.LabelScaleType: "queue"}
		}), http.StatusBadRequest, `label com.openfaas.scale.type="queue": want rps, capacity or cpu`},
		{"bad target proportion", "PUT", "/system/functions", dep(func(d *wire.FunctionDeployment) {
			d.Labels = &map[string]string{function.LabelScaleProportion: "1.5"}
		}), http.StatusBadRequest, function.LabelScaleProportion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := function.Spec{Name: "echo", Image: "echo:0"}
			s := newServer(t, false, old)
			r := s.call(t, tc.method, tc.path, tc.body)
			if r.code != tc.wantCode || !strings.Contains(r.body, tc.wantBody) {
				t.Errorf("%s %s = %d %q, want %d containing %q", tc.method, tc.path, r.code, r.body, tc.wantCode, tc.wantBody)
			}
			if n := s.fns.deployCalls(); n != 0 {
				t.Errorf("the controller was asked to deploy %d times", n)
			}
			got, err := s.fns.Spec("echo")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(old, got, cmpIgnoreCreated); diff != "" {
				t.Errorf("a refused request changed the spec (-want +got):\n%s", diff)
			}
		})
	}
}

// A new function is not created by a refused deploy either.
func TestDeployRefusedCreatesNothing(t *testing.T) {
	s := newServer(t, false)
	for _, path := range []string{"/system/functions?wait=abc", "/system/functions"} {
		body := `{"service":"echo","image":"echo:1"}`
		if !strings.Contains(path, "wait") {
			body += "x"
		}
		if r := s.call(t, "POST", path, body); r.code != http.StatusBadRequest {
			t.Errorf("POST %s = %d %q, want 400", path, r.code, r.body)
		}
	}
	if _, err := s.fns.Spec("echo"); err == nil {
		t.Error("a refused request created echo")
	}
	if n := s.fns.deployCalls(); n != 0 {
		t.Errorf("the controller was asked to deploy %d times", n)
	}
}

// Trailing bytes are refused on every JSON route, before anything is done.
func TestTrailingBytesRefused(t *testing.T) {
	for _, tc := range []struct {
		name, method, path, body string
		unchanged                func(*testing.T, *server)
	}{
		{"delete", "DELETE", "/system/functions", `{"functionName":"echo"} x`, func(t *testing.T, s *server) {
			if got := s.fns.removedNames(); len(got) != 0 {
				t.Errorf("removed %v", got)
			}
		}},
		{"scale", "POST", "/system/scale-function/echo", `{"serviceName":"echo","replicas":5}{}`, func(t *testing.T, s *server) {
			if sp, _ := s.fns.Spec("echo"); sp.Replicas != 0 {
				t.Errorf("scaled to %d", sp.Replicas)
			}
		}},
		{"secret create", "POST", "/system/secrets", `{"name":"db","value":"x"}]`, func(t *testing.T, s *server) {
			if got := s.secrets.snapshot(); len(got) != 0 {
				t.Errorf("secrets %v", got)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, false, function.Spec{Name: "echo", Image: "echo:1"})
			r := s.call(t, tc.method, tc.path, tc.body)
			if r.code != http.StatusBadRequest || !strings.Contains(r.body, "malformed JSON body") {
				t.Errorf("%s %s = %d %q, want 400 naming the malformed body", tc.method, tc.path, r.code, r.body)
			}
			tc.unchanged(t, s)
		})
	}
}

// White space after the value, as json.Encoder writes it, is fine.
func TestTrailingNewlineAccepted(t *testing.T) {
	s := newServer(t, false)
	if r := s.call(t, "POST", "/system/functions", "{\"service\":\"echo\",\"image\":\"echo:1\"}\n\r\n "); r.code != http.StatusAccepted {
		t.Errorf("POST = %d %q, want 202", r.code, r.body)
	}
}
