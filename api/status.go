package api

import (
	"context"
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"
)

// StatusConfig describes the daemon for GET /system/status, ember's own
// addition to the API that `ember status` shows.
type StatusConfig struct {
	// Started is when the daemon started.
	Started time.Time
	// Containerd returns containerd's version. It is asked on every
	// request, so that status shows whether containerd answers now.
	Containerd func(ctx context.Context) (string, error)
	// ContainerdSocket, Namespace, Bridge, Subnet, StateDir, Listen and
	// Socket are the daemon's settings, shown as they are.
	ContainerdSocket string
	Namespace        string
	Bridge           string
	Subnet           string
	StateDir         string
	Listen           string
	Socket           string
	// Cleanup, if set, reports the cleanup retried in the background.
	Cleanup func() CleanupStatus
	// LogDrops, if set, reports function log lines dropped because the
	// state dir refused them.
	LogDrops func() LogDrops
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

// containerdTimeout bounds the version call: a wedged containerd must not
// hang the command that is used to find out what is wrong.
const containerdTimeout = 3 * time.Second

// SystemStatus is the body of GET /system/status.
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
	// Functions counts functions by phase ("active", "paused", "zero").
	Functions Counts `json:"functions"`
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

func (a *API) systemStatus(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	sc := a.cfg.Status
	st := SystemStatus{
		Version:  a.cfg.Version,
		Commit:   a.cfg.Commit,
		Started:  sc.Started.UTC(),
		Bridge:   sc.Bridge,
		Subnet:   sc.Subnet,
		StateDir: sc.StateDir,
		Listen:   sc.Listen,
		Socket:   sc.Socket,
		Containerd: ContainerdStatus{
			Socket:    sc.ContainerdSocket,
			Namespace: sc.Namespace,
		},
		Functions: Counts{ByState: map[string]int{}},
		Replicas:  Counts{ByState: map[string]int{}},
	}
	if !sc.Started.IsZero() {
		st.UptimeSeconds = int64(time.Since(sc.Started) / time.Second)
	}
	if sc.Containerd != nil {
		ctx, cancel := context.WithTimeout(r.Context(), containerdTimeout)
		v, err := sc.Containerd(ctx)
		cancel()
		if err != nil {
			st.Containerd.Error = err.Error()
		} else {
			st.Containerd.Version = v
		}
	}
	if sc.Cleanup != nil {
		c := sc.Cleanup()
		st.Cleanup = &c
	}
	if sc.LogDrops != nil {
		if d := sc.LogDrops(); d.Dropping || d.Lines > 0 {
			st.LogsDropped = &d
		}
	}
	for _, spec := range a.fns.Functions() {
		fs, err := a.fns.Status(spec.Name)
		if err != nil {
			continue // removed meanwhile
		}
		phase := fs.Phase
		if phase == "" {
			phase = PhaseActive
		}
		st.Functions.Total++
		st.Functions.ByState[phase]++
		for _, rep := range fs.Replicas {
			st.Replicas.Total++
			st.Replicas.ByState[string(rep.State)]++
		}
	}
	writeJSON(w, http.StatusOK, st)
}

// PhaseActive is the phase of a function that is neither paused nor at
// zero (see function.Status.Phase).
const PhaseActive = "active"
