package wire

import "time"

// VersionInfo describes a build.
type VersionInfo struct {
	CommitMessage string `json:"commit_message,omitempty"`
	SHA           string `json:"sha"`
	Release       string `json:"release"`
}

// ProviderInfo describes the provider half of the gateway.
type ProviderInfo struct {
	Name          string       `json:"provider"`
	Version       *VersionInfo `json:"version"`
	Orchestration string       `json:"orchestration"`
}

// GatewayInfo is the body of GET /system/info. faas-cli dereferences every
// nested field without nil checks, so all are always set.
type GatewayInfo struct {
	Provider *ProviderInfo `json:"provider"`
	Version  *VersionInfo  `json:"version"`
	Arch     string        `json:"arch"`
}

// ImportResult is the body of ember's POST /system/images.
type ImportResult struct {
	Images []string `json:"images"`
}

// PhaseActive is the phase of a function that is neither paused nor at
// zero (see function.Status.Phase).
const PhaseActive = "active"

// SystemStatus is the body of GET /system/status, ember's own addition to
// the API that `ember status` shows.
type SystemStatus struct {
	Version       string           `json:"version"`
	Commit        string           `json:"commit"`
	Started       time.Time        `json:"started"`
	UptimeSeconds int64            `json:"uptimeSeconds"`
	Containerd    ContainerdStatus `json:"containerd"`
	Bridge        string           `json:"bridge"`
	Subnet        string           `json:"subnet"`
	StateDir      string           `json:"stateDir"`
	Listen        string           `json:"listen"`
	Socket        string           `json:"socket"`
	// GatewayURL is where functions are reached from this host: the
	// address the daemon serves on, 127.0.0.1 for a wildcard one.
	GatewayURL string `json:"gatewayURL,omitempty"`
	// BridgeGateway is the bridge's address on the host, which functions
	// and services use to reach the host (its --listen included, when it
	// is a wildcard).
	BridgeGateway string `json:"bridgeGateway,omitempty"`
	// Pprof is the profiler's address, absent when it is off.
	Pprof string `json:"pprof,omitempty"`
	// Functions counts functions by phase ("active", "paused", "zero").
	Functions Counts `json:"functions"`
	// Services counts services by their replica's state; absent when
	// there are none.
	Services *Counts `json:"services,omitempty"`
	// Replicas counts replicas by state ("ready", "starting", ...).
	Replicas Counts `json:"replicas"`
	// Cleanup is absent from daemons that do not report it.
	Cleanup *CleanupStatus `json:"cleanup,omitempty"`
	// LogsDropped is absent while no line was ever dropped.
	LogsDropped *LogDrops `json:"logsDropped,omitempty"`
}

// ContainerdStatus is containerd as the daemon sees it. Version is empty
// and Error says why when containerd does not answer.
type ContainerdStatus struct {
	Socket    string `json:"socket"`
	Namespace string `json:"namespace"`
	Version   string `json:"version,omitempty"`
	Error     string `json:"error,omitempty"`
}

// Counts is a total and its breakdown.
type Counts struct {
	Total   int            `json:"total"`
	ByState map[string]int `json:"byState"`
}

// LogDrops counts function log lines read but not kept because the state
// dir refused them (full, above all): Dropping from a failed append until
// one works again, Since when that began, totals since start.
type LogDrops struct {
	Dropping   bool              `json:"dropping"`
	Since      time.Time         `json:"since,omitzero"`
	Lines      uint64            `json:"lines"`
	Bytes      uint64            `json:"bytes"`
	ByFunction map[string]uint64 `json:"byFunction,omitempty"`
	LastError  string            `json:"lastError,omitempty"`
}

// CleanupStatus is what the daemon failed to free and retries: Pending
// things the last attempt could not free, Failures since start.
type CleanupStatus struct {
	Pending   int       `json:"pending"`
	Failures  uint64    `json:"failures"`
	LastError string    `json:"lastError,omitempty"`
	RetryAt   time.Time `json:"retryAt,omitzero"`
}

// AsyncQueue is one function's async calls, for GET /system/queue:
// Queued not yet taken by its worker, InFlight running now, Retrying
// taken and waiting to be tried again.
type AsyncQueue struct {
	Function string `json:"function"`
	Queued   uint64 `json:"queued"`
	InFlight int    `json:"inFlight"`
	Retrying int    `json:"retrying"`
}

// FunctionNamespace is OpenFaaS's namespace shape, the body of
// /system/namespace/NAME.
type FunctionNamespace struct {
	Name        string            `json:"name"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// NamespaceInUse is the body of a 409 answer to deleting a namespace that
// still holds functions or secrets.
type NamespaceInUse struct {
	Message   string   `json:"message"`
	Functions []string `json:"functions"`
	Secrets   []string `json:"secrets"`
}
