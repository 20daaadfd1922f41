package api_test

import (
	"errors"
	"maps"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/function"
)

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
