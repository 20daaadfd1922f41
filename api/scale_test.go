package api_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/emberfaas/ember/function"
)

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
