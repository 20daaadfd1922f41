package wire

import (
	"time"

	"github.com/emberfaas/ember/function"
)

// The JSON shapes below are OpenFaaS's (faas-provider/types), field for
// field, so faas-cli and other OpenFaaS clients can use ember unchanged.

// FunctionResources are Kubernetes-style quantities.
type FunctionResources struct {
	Memory string `json:"memory,omitempty"`
	CPU    string `json:"cpu,omitempty"`
}

// FunctionDeployment is the body of POST and PUT /system/functions.
type FunctionDeployment struct {
	Service                string             `json:"service"`
	Image                  string             `json:"image"`
	Namespace              string             `json:"namespace,omitempty"`
	EnvProcess             string             `json:"envProcess,omitempty"`
	EnvVars                map[string]string  `json:"envVars,omitempty"`
	Constraints            []string           `json:"constraints,omitempty"`
	Secrets                []string           `json:"secrets,omitempty"`
	Labels                 *map[string]string `json:"labels,omitempty"`
	Annotations            *map[string]string `json:"annotations,omitempty"`
	Limits                 *FunctionResources `json:"limits,omitempty"`
	Requests               *FunctionResources `json:"requests,omitempty"`
	ReadOnlyRootFilesystem bool               `json:"readOnlyRootFilesystem,omitempty"`
}

// Spec is the function the deployment describes, as ember stores it
// (before normalisation). Every path that deploys — the API, the CLI's
// flags and stack files — validates this spec with Spec.Validate.
func (d FunctionDeployment) Spec() function.Spec {
	s := function.Spec{
		Name:                   d.Service,
		Image:                  d.Image,
		EnvProcess:             d.EnvProcess,
		Env:                    d.EnvVars,
		Secrets:                d.Secrets,
		Constraints:            d.Constraints,
		ReadOnlyRootFilesystem: d.ReadOnlyRootFilesystem,
	}
	if d.Labels != nil {
		s.Labels = *d.Labels
	}
	if d.Annotations != nil {
		s.Annotations = *d.Annotations
	}
	if d.Limits != nil {
		s.Limits = &function.Resources{Memory: d.Limits.Memory, CPU: d.Limits.CPU}
	}
	if d.Requests != nil {
		s.Requests = &function.Resources{Memory: d.Requests.Memory, CPU: d.Requests.CPU}
	}
	return s
}

// FunctionStatus is an element of GET /system/functions and the body of
// GET /system/function/NAME.
type FunctionStatus struct {
	Name                   string             `json:"name"`
	Image                  string             `json:"image"`
	Namespace              string             `json:"namespace,omitempty"`
	EnvProcess             string             `json:"envProcess,omitempty"`
	EnvVars                map[string]string  `json:"envVars,omitempty"`
	Constraints            []string           `json:"constraints,omitempty"`
	Secrets                []string           `json:"secrets,omitempty"`
	Labels                 *map[string]string `json:"labels,omitempty"`
	Annotations            *map[string]string `json:"annotations,omitempty"`
	Limits                 *FunctionResources `json:"limits,omitempty"`
	Requests               *FunctionResources `json:"requests,omitempty"`
	ReadOnlyRootFilesystem bool               `json:"readOnlyRootFilesystem,omitempty"`
	InvocationCount        float64            `json:"invocationCount,omitempty"`
	Replicas               uint64             `json:"replicas,omitempty"`
	AvailableReplicas      uint64             `json:"availableReplicas,omitempty"`
	CreatedAt              time.Time          `json:"createdAt"`
	Usage                  *FunctionUsage     `json:"usage,omitempty"`

	// Phase and ReplicaStates are ember's additions, in list and describe:
	// "active", "paused" or "zero", and how many replicas are in each
	// state, so that a list can say how a function is doing without
	// fetching every replica. OpenFaaS clients ignore them.
	Phase         string                 `json:"phase,omitempty"`
	ReplicaStates map[function.State]int `json:"replicaStates,omitempty"`
	// InvocationRate is ember's: requests per second over about the last
	// minute, beside OpenFaaS's total.
	InvocationRate float64 `json:"invocationRate,omitempty"`

	// Instances is ember's addition, in describe only: each replica's
	// state. OpenFaaS clients ignore it.
	Instances []function.Replica `json:"instances,omitempty"`
	// LastError is ember's, in describe only: why the function's last
	// replica creation failed, until one succeeds.
	LastError string `json:"lastError,omitempty"`
	// MinReplicas, MaxReplicas and Autoscaling are ember's: the bounds
	// the autoscaler keeps the count in (labels or scale --min/--max),
	// and whether it moves the count at all.
	MinReplicas int  `json:"minReplicas"`
	MaxReplicas int  `json:"maxReplicas"`
	Autoscaling bool `json:"autoscaling"`
}

// FunctionUsage is a function's resource use.
type FunctionUsage struct {
	CPU              float64 `json:"cpu,omitempty"`
	TotalMemoryBytes float64 `json:"totalMemoryBytes,omitempty"`
}

// DeleteFunctionRequest is the body of DELETE /system/functions.
type DeleteFunctionRequest struct {
	FunctionName string `json:"functionName"`
	Namespace    string `json:"namespace,omitempty"`
}

// ScaleServiceRequest is the body of POST /system/scale-function/NAME.
type ScaleServiceRequest struct {
	ServiceName string `json:"serviceName"`
	Replicas    uint64 `json:"replicas"`
	Namespace   string `json:"namespace,omitempty"`
	// Min and Max are ember's: they set the function's replica bounds.
	Min *uint64 `json:"min,omitempty"`
	Max *uint64 `json:"max,omitempty"`
}

// ProgressType is the media type ember's CLI accepts from POST and PUT
// /system/functions to follow a deploy: the answer is then 200 and a
// stream of DeployEvent, one JSON object a line, ending with "ready" (or
// "deployed" when not waiting) or "error". Without it the answer is
// OpenFaaS's, a bare 202, as faas-cli expects.
const ProgressType = "application/x-ndjson"

// Deploy stages, in the order they come.
const (
	StagePull     = "pull"     // an image layer's bytes moved
	StageDeployed = "deployed" // stored: the controller converges on it
	StageReady    = "ready"    // a replica of the new spec is ready
	StageError    = "error"    // the deploy failed; Code and Error say why
)

// DeployEvent is one line of a followed deploy.
type DeployEvent struct {
	Stage string                 `json:"stage"`
	Pull  *function.PullProgress `json:"pull,omitempty"`
	// Code is the HTTP status the error would have had, and Error its
	// message, when Stage is "error".
	Code  int    `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
}
