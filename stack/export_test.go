package stack

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/function"
)

// What Export writes deploys back to what was exported.
func TestExportRoundTrip(t *testing.T) {
	fns := []wire.FunctionStatus{
		{Name: "api", Namespace: "staging", Image: "ghcr.io/acme/api:1", EnvProcess: "./api",
			EnvVars: map[string]string{"MODE": "fast"}, Secrets: []string{"db"}, Constraints: []string{"disk=ssd"},
			Labels:      &map[string]string{function.LabelScaleMin: "2", function.LabelFunctionName: "api"},
			Annotations: &map[string]string{"topic": "orders"},
			Limits:      &wire.FunctionResources{Memory: "128Mi", CPU: "500m"}, Requests: &wire.FunctionResources{Memory: "64Mi"},
			ReadOnlyRootFilesystem: true},
		{Name: "web", Namespace: function.DefaultNamespace, Image: "web:2", Labels: &map[string]string{}, Annotations: &map[string]string{}},
	}
	out, err := Export(fns, "http://127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "openfaas-fn") {
		t.Errorf("export names the default namespace:\n%s", out)
	}
	path := filepath.Join(t.TempDir(), "stack.yml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	got := deployments(t, load(t, path, nil), "")
	want := []Deployment{
		{Name: "api", Function: wire.FunctionDeployment{Service: "api", Image: "ghcr.io/acme/api:1", Namespace: "staging", EnvProcess: "./api",
			EnvVars: map[string]string{"MODE": "fast"}, Secrets: []string{"db"}, Constraints: []string{"disk=ssd"},
			Labels:      &map[string]string{function.LabelScaleMin: "2", function.LabelFunctionName: "api"},
			Annotations: &map[string]string{"topic": "orders"},
			Limits:      &wire.FunctionResources{Memory: "128Mi", CPU: "500m"}, Requests: &wire.FunctionResources{Memory: "64Mi"},
			ReadOnlyRootFilesystem: true}},
		{Name: "web", Function: wire.FunctionDeployment{Service: "web", Image: "web:2", Labels: &map[string]string{}, Annotations: &map[string]string{}}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("deployments of the export (-want +got):\n%s\n%s", diff, out)
	}
}

func TestExportRefusesOneNameInTwoNamespaces(t *testing.T) {
	_, err := Export([]wire.FunctionStatus{{Name: "a", Namespace: "x", Image: "i"}, {Name: "a", Namespace: "y", Image: "i"}}, "")
	if err == nil {
		t.Fatal("Export of a name in two namespaces succeeded")
	}
}
