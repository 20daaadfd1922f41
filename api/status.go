package api

import (
	"context"
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/emberfaas/ember/api/wire"
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
	// GatewayURL, BridgeGateway and Pprof: see wire.SystemStatus.
	GatewayURL    string
	BridgeGateway string
	Pprof         string
	// Cleanup, if set, reports the cleanup retried in the background.
	Cleanup func() wire.CleanupStatus
	// LogDrops, if set, reports function log lines dropped because the
	// state dir refused them.
	LogDrops func() wire.LogDrops
}

// containerdTimeout bounds the version call: a wedged containerd must not
// hang the command that is used to find out what is wrong.
const containerdTimeout = 3 * time.Second

func (a *API) systemStatus(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	sc := a.cfg.Status
	st := wire.SystemStatus{
		Version:  a.cfg.Version,
		Commit:   a.cfg.Commit,
		Started:  sc.Started.UTC(),
		Bridge:   sc.Bridge,
		Subnet:   sc.Subnet,
		StateDir: sc.StateDir,
		Listen:   sc.Listen,
		Socket:   sc.Socket,

		GatewayURL:    sc.GatewayURL,
		BridgeGateway: sc.BridgeGateway,
		Pprof:         sc.Pprof,
		Containerd: wire.ContainerdStatus{
			Socket:    sc.ContainerdSocket,
			Namespace: sc.Namespace,
		},
		Functions: wire.Counts{ByState: map[string]int{}},
		Replicas:  wire.Counts{ByState: map[string]int{}},
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
		switch phase := fs.Phase; {
		case spec.IsService():
			if st.Services == nil {
				st.Services = &wire.Counts{ByState: map[string]int{}}
			}
			state := "none"
			if len(fs.Replicas) > 0 {
				state = string(fs.Replicas[0].State)
			}
			st.Services.Total++
			st.Services.ByState[state]++
		default:
			if phase == "" {
				phase = wire.PhaseActive
			}
			st.Functions.Total++
			st.Functions.ByState[phase]++
		}
		for _, rep := range fs.Replicas {
			st.Replicas.Total++
			st.Replicas.ByState[string(rep.State)]++
		}
	}
	writeJSON(w, http.StatusOK, st)
}
