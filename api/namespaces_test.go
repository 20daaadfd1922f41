package api_test

import (
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/function"
)

func TestNamespaceCRUD(t *testing.T) {
	s := newServer(t, false)
	for _, tc := range []struct {
		method, path string
		body         any
		want         int
	}{
		{"POST", "/system/namespace/", map[string]any{"name": "staging", "labels": map[string]string{"openfaas": "1", "team": "a"}}, http.StatusCreated},
		{"POST", "/system/namespace/", map[string]any{"name": "staging"}, http.StatusConflict},
		{"POST", "/system/namespace/", map[string]any{"name": "openfaas-fn"}, http.StatusConflict},
		{"POST", "/system/namespace/", map[string]any{"name": "Bad_Name"}, http.StatusBadRequest},
		{"POST", "/system/namespace/dev", map[string]any{"name": "prod"}, http.StatusBadRequest},
		{"PUT", "/system/namespace/staging", map[string]any{"name": "staging", "annotations": map[string]string{"owner": "ops"}}, http.StatusAccepted},
		{"PUT", "/system/namespace/nope", map[string]any{"name": "nope"}, http.StatusNotFound},
		{"DELETE", "/system/namespace/openfaas-fn", nil, http.StatusBadRequest},
		{"DELETE", "/system/namespace/nope", nil, http.StatusNotFound},
		{"GET", "/system/namespace/nope", nil, http.StatusNotFound},
	} {
		if r := s.call(t, tc.method, tc.path, tc.body); r.code != tc.want {
			t.Errorf("%s %s %v = %d %q, want %d", tc.method, tc.path, tc.body, r.code, r.body, tc.want)
		}
	}
	r := s.call(t, "GET", "/system/namespace/staging", nil)
	want := wire.FunctionNamespace{Name: "staging", Annotations: map[string]string{"owner": "ops"}}
	if diff := cmp.Diff(want, decode[wire.FunctionNamespace](t, r)); r.code != http.StatusOK || diff != "" {
		t.Errorf("GET staging = %d (-want +got):\n%s", r.code, diff)
	}
	if diff := cmp.Diff([]string{"openfaas-fn", "staging"}, decode[[]string](t, s.call(t, "GET", "/system/namespaces", nil))); diff != "" {
		t.Errorf("namespaces (-want +got):\n%s", diff)
	}
	if r := s.call(t, "DELETE", "/system/namespace/staging", nil); r.code != http.StatusAccepted {
		t.Errorf("DELETE staging = %d %q", r.code, r.body)
	}
	if diff := cmp.Diff([]string{"openfaas-fn"}, decode[[]string](t, s.call(t, "GET", "/system/namespaces", nil))); diff != "" {
		t.Errorf("namespaces after delete (-want +got):\n%s", diff)
	}
}

func TestNamespacesKeepFunctionsAndSecretsApart(t *testing.T) {
	s := newServer(t, false)
	if r := s.call(t, "POST", "/system/namespace/", map[string]any{"name": "staging"}); r.code != http.StatusCreated {
		t.Fatalf("create staging = %d %q", r.code, r.body)
	}
	for _, b := range []wire.FunctionDeployment{
		{Service: "echo", Image: "i:1"},
		{Service: "echo", Image: "i:2", Namespace: "staging"},
	} {
		if r := s.call(t, "POST", "/system/functions", b); r.code != http.StatusAccepted {
			t.Fatalf("deploy %+v = %d %q", b, r.code, r.body)
		}
	}
	if r := s.call(t, "POST", "/system/functions", wire.FunctionDeployment{Service: "echo", Image: "i", Namespace: "nope"}); r.code != http.StatusNotFound {
		t.Errorf("deploy into a missing namespace = %d, want 404", r.code)
	}
	if r := s.call(t, "POST", "/system/functions", wire.FunctionDeployment{Service: "echo.staging", Image: "i"}); r.code != http.StatusBadRequest {
		t.Errorf("deploy of a dotted name = %d, want 400", r.code)
	}
	if _, err := s.fns.Spec("echo.staging"); err != nil {
		t.Fatalf("staging's echo is not under its key: %v", err)
	}
	list := func(q string) []string {
		var out []string
		for _, f := range decode[[]wire.FunctionStatus](t, s.call(t, "GET", "/system/functions"+q, nil)) {
			out = append(out, f.Name+" "+f.Namespace+" "+f.Image)
		}
		return out
	}
	if diff := cmp.Diff([]string{"echo openfaas-fn i:1"}, list("")); diff != "" {
		t.Errorf("default list (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"echo staging i:2"}, list("?namespace=staging")); diff != "" {
		t.Errorf("staging list (-want +got):\n%s", diff)
	}
	for _, path := range []string{"/system/function/echo?namespace=staging", "/system/function/echo.staging"} {
		f := decode[wire.FunctionStatus](t, s.call(t, "GET", path, nil))
		if f.Name != "echo" || f.Namespace != "staging" || f.Image != "i:2" || (*f.Labels)[function.LabelFunctionName] != "echo" {
			t.Errorf("GET %s = %+v", path, f)
		}
	}

	for _, sec := range []wire.Secret{{Name: "db", Value: "default"}, {Name: "db", Namespace: "staging", Value: "staging"}} {
		if r := s.call(t, "POST", "/system/secrets", sec); r.code != http.StatusCreated {
			t.Fatalf("create secret %+v = %d %q", sec, r.code, r.body)
		}
	}
	if diff := cmp.Diff(map[string]string{"db": "default", "db.staging": "staging"}, s.secrets.snapshot()); diff != "" {
		t.Errorf("secret keys (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]wire.Secret{{Name: "db", Namespace: "staging"}},
		decode[[]wire.Secret](t, s.call(t, "GET", "/system/secrets?namespace=staging", nil))); diff != "" {
		t.Errorf("staging secrets (-want +got):\n%s", diff)
	}

	r := s.call(t, "DELETE", "/system/namespace/staging", nil)
	want := wire.NamespaceInUse{Message: "namespace staging is not empty: remove its functions echo and secrets db first",
		Functions: []string{"echo"}, Secrets: []string{"db"}}
	if diff := cmp.Diff(want, decode[wire.NamespaceInUse](t, r)); r.code != http.StatusConflict || diff != "" {
		t.Errorf("DELETE non-empty staging = %d (-want +got):\n%s", r.code, diff)
	}
	if r := s.call(t, "DELETE", "/system/functions", wire.DeleteFunctionRequest{FunctionName: "echo", Namespace: "staging"}); r.code != http.StatusAccepted {
		t.Fatalf("remove staging's echo = %d %q", r.code, r.body)
	}
	if r := s.call(t, "DELETE", "/system/secrets?namespace=staging", wire.Secret{Name: "db"}); r.code != http.StatusOK {
		t.Fatalf("remove staging's db = %d %q", r.code, r.body)
	}
	if _, err := s.fns.Spec("echo"); err != nil {
		t.Errorf("the default echo went with staging's: %v", err)
	}
	if r := s.call(t, "DELETE", "/system/namespace/staging", nil); r.code != http.StatusAccepted {
		t.Errorf("DELETE emptied staging = %d %q", r.code, r.body)
	}
}

func TestUnknownSystemRouteIsNamed(t *testing.T) {
	s := newServer(t, false)
	r := s.call(t, "GET", "/system/nonsense", nil)
	if want := "no such API route: GET /system/nonsense\n"; r.code != http.StatusNotFound || r.body != want {
		t.Errorf("GET /system/nonsense = %d %q, want 404 %q", r.code, r.body, want)
	}
}
