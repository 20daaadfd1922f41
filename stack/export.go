package stack

import (
	"fmt"
	"maps"

	"go.yaml.in/yaml/v3"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/function"
)

// exported is a function as Export writes it: only the fields faas-cli
// deploys, each left out when empty, so the file reads as one written by
// hand.
type exported struct {
	Image                  string            `yaml:"image"`
	FProcess               string            `yaml:"fprocess,omitempty"`
	Namespace              string            `yaml:"namespace,omitempty"`
	Environment            map[string]string `yaml:"environment,omitempty"`
	Secrets                []string          `yaml:"secrets,omitempty"`
	Constraints            []string          `yaml:"constraints,omitempty"`
	Labels                 map[string]string `yaml:"labels,omitempty"`
	Annotations            map[string]string `yaml:"annotations,omitempty"`
	Limits                 *exportedRes      `yaml:"limits,omitempty"`
	Requests               *exportedRes      `yaml:"requests,omitempty"`
	ReadOnlyRootFilesystem bool              `yaml:"readonly_root_filesystem,omitempty"`
}

type exportedRes struct {
	Memory string `yaml:"memory,omitempty"`
	CPU    string `yaml:"cpu,omitempty"`
}

type exportedStack struct {
	Version   string              `yaml:"version"`
	Provider  Provider            `yaml:"provider"`
	Functions map[string]exported `yaml:"functions"`
}

// Export writes functions as they are deployed as a stack file that
// faas-cli deploys to OpenFaaS on Kubernetes or faasd: images, fprocess,
// environment, secrets by name (their values stay behind: create them
// there with faas-cli secret create), labels, annotations, limits and
// requests, and a read-only root. The namespace is written only outside
// the default, so the file deploys to a faasd CE, which has one.
func Export(fns []wire.FunctionStatus, gateway string) ([]byte, error) {
	st := exportedStack{Version: "1.0", Provider: Provider{Name: ProviderName, Gateway: gateway},
		Functions: make(map[string]exported, len(fns))}
	for _, f := range fns {
		if _, dup := st.Functions[f.Name]; dup {
			return nil, fmt.Errorf("%w: function %s is in two namespaces: export one namespace at a time", function.ErrInvalid, f.Name)
		}
		e := exported{
			Image:                  f.Image,
			FProcess:               f.EnvProcess,
			Environment:            f.EnvVars,
			Secrets:                f.Secrets,
			Constraints:            f.Constraints,
			Limits:                 exportRes(f.Limits),
			Requests:               exportRes(f.Requests),
			ReadOnlyRootFilesystem: f.ReadOnlyRootFilesystem,
		}
		if f.Namespace != function.DefaultNamespace {
			e.Namespace = f.Namespace
		}
		if f.Labels != nil {
			// faas_function stays although providers derive it from the
			// name: faas-cli diff compares every label the provider
			// lists, and providers overwrite it with the same value.
			e.Labels = maps.Clone(*f.Labels)
		}
		if f.Annotations != nil {
			e.Annotations = maps.Clone(*f.Annotations)
		}
		st.Functions[f.Name] = e
	}
	out, err := yaml.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	return out, nil
}

func exportRes(r *wire.FunctionResources) *exportedRes {
	if r == nil || r.Memory == "" && r.CPU == "" {
		return nil
	}
	return &exportedRes{Memory: r.Memory, CPU: r.CPU}
}
