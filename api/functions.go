package api

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/function"
)

func (a *API) listFunctions(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	ns, ok := a.knownNamespace(w, r.URL.Query().Get("namespace"))
	if !ok {
		return
	}
	specs := a.fns.Functions()
	out := make([]wire.FunctionStatus, 0, len(specs))
	for _, s := range specs {
		if s.IsService() || s.Namespace() != ns {
			continue // services are under /system/services
		}
		st, err := a.fns.Status(s.Name)
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, toStatus(s, st, false))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) describeFunction(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	name, ok := a.resolve(w, ps.ByName("name"), r.URL.Query().Get("namespace"))
	if !ok {
		return
	}
	spec, err := a.fns.Spec(name)
	if err != nil {
		writeError(w, err)
		return
	}
	st, err := a.fns.Status(name)
	if err != nil {
		writeError(w, err)
		return
	}
	fs := toStatus(spec, st, true)
	// faas-cli asks with usage=1; the gateway's scaler with usage=false.
	if u, _ := strconv.ParseBool(r.URL.Query().Get("usage")); u || r.URL.Query().Get("usage") == "" {
		if us, err := a.fns.Usage(name); err == nil {
			fs.Usage = &wire.FunctionUsage{CPU: us.CPU, TotalMemoryBytes: us.MemoryBytes}
			for i, r := range fs.Instances {
				ru := us.Replicas[r.ID]
				fs.Instances[i].CPU, fs.Instances[i].MemoryBytes = ru.CPU, ru.MemoryBytes
			}
		}
	}
	writeJSON(w, http.StatusOK, fs)
}

func (a *API) deployFunction(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	a.deploy(w, r, false)
}

func (a *API) updateFunction(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	a.deploy(w, r, true)
}

// deploy handles POST (create or update, as faasd does) and PUT (update
// only: 404 makes faas-cli fall back to POST). With ?wait=DURATION, ember's
// CLI waits for a ready replica and gets the reason when there is none.
//
// Everything the request carries is checked before anything changes: a
// request that is refused has deployed nothing.
func (a *API) deploy(w http.ResponseWriter, r *http.Request, update bool) {
	wait, ok := parseWait(w, r)
	if !ok {
		return
	}
	var req wire.FunctionDeployment
	if !a.decode(w, r, &req) {
		return
	}
	// The name is checked bare: "a.b" is a name with a dot, not a
	// function b in namespace a.
	if err := function.ValidateName(req.Service); err != nil {
		writeError(w, err)
		return
	}
	// Deploys share the namespace lock, so that a namespace is not
	// deleted between the check that it exists and the deploy into it.
	a.nsMu.RLock()
	locked := true
	unlock := func() {
		if locked {
			locked = false
			a.nsMu.RUnlock()
		}
	}
	defer unlock()
	ns, ok := a.knownNamespace(w, namespaceOf(req.Namespace, r))
	if !ok {
		return
	}
	spec := req.Spec()
	spec.Name = function.Qualify(req.Service, ns)
	if err := spec.Validate(); err != nil {
		writeError(w, err)
		return
	}
	if update {
		if _, err := a.fns.Spec(spec.Name); err != nil {
			writeError(w, err)
			return
		}
	}
	if strings.Contains(r.Header.Get("Accept"), wire.ProgressType) {
		a.deployFollowed(w, r, spec, wait)
		return
	}
	if err := a.fns.Deploy(r.Context(), spec); err != nil {
		writeError(w, err)
		return
	}
	unlock()
	if !a.waitReady(w, r, spec.Name, wait) {
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// deployFollowed deploys as deploy does, telling the client how it goes:
// the image pull's progress, then the wait for a ready replica.
func (a *API) deployFollowed(w http.ResponseWriter, r *http.Request, spec function.Spec, wait time.Duration) {
	s := &deployStream{w: w}
	ctx := function.WithPullProgress(r.Context(), func(p function.PullProgress) {
		s.send(wire.DeployEvent{Stage: wire.StagePull, Pull: &p})
	})
	if err := a.fns.Deploy(ctx, spec); err != nil {
		s.fail(errorCode(err), err)
		return
	}
	s.send(wire.DeployEvent{Stage: wire.StageDeployed})
	if wait == 0 {
		return
	}
	if err := a.readyWithin(r.Context(), spec.Name, wait); err != nil {
		s.fail(http.StatusGatewayTimeout, err)
		return
	}
	s.send(wire.DeployEvent{Stage: wire.StageReady})
}

func (a *API) deleteFunction(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	var req wire.DeleteFunctionRequest
	if !a.decode(w, r, &req) {
		return
	}
	name, ok := a.resolve(w, req.FunctionName, namespaceOf(req.Namespace, r))
	if !ok {
		return
	}
	if s, err := a.fns.Spec(name); err == nil && s.IsService() {
		writeError(w, fmt.Errorf("function %s: %w (it is a service: ember service down)", name, function.ErrNotFound))
		return
	}
	if err := a.fns.Remove(r.Context(), name); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// parseWait reads ?wait=DURATION, answering 400 when it is not a positive
// duration. Handlers call it before they change anything.
func parseWait(w http.ResponseWriter, r *http.Request) (time.Duration, bool) {
	ws := r.URL.Query().Get("wait")
	if ws == "" {
		return 0, true
	}
	d, err := time.ParseDuration(ws)
	if err != nil || d <= 0 {
		http.Error(w, fmt.Sprintf("wait %q is not a positive duration such as 60s", ws), http.StatusBadRequest)
		return 0, false
	}
	return d, true
}

// waitReady waits up to d (from parseWait; 0: not at all) for a ready
// replica of the function's current spec, answering the reason when there
// is none.
func (a *API) waitReady(w http.ResponseWriter, r *http.Request, name string, d time.Duration) bool {
	if d == 0 {
		return true
	}
	if err := a.readyWithin(r.Context(), name, d); err != nil {
		http.Error(w, err.Error(), http.StatusGatewayTimeout)
		return false
	}
	return true
}

// readyWithin waits up to d for a ready replica of the function's current
// spec.
func (a *API) readyWithin(ctx context.Context, name string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return a.fns.WaitReady(ctx, name)
}

func toStatus(s function.Spec, st function.Status, detail bool) wire.FunctionStatus {
	labels, annotations := maps.Clone(s.Labels), s.Annotations
	if labels == nil {
		labels = map[string]string{}
	}
	// As OpenFaaS providers do (the certifier checks it); derived, so
	// never stored, and dropped again if a client sends it back.
	labels[function.LabelFunctionName] = s.BaseName()
	if annotations == nil {
		annotations = map[string]string{}
	}
	fs := wire.FunctionStatus{
		Name:                   s.BaseName(),
		Image:                  s.Image,
		Namespace:              s.Namespace(),
		EnvProcess:             s.EnvProcess,
		EnvVars:                s.Env,
		Constraints:            s.Constraints,
		Secrets:                s.Secrets,
		Labels:                 &labels,
		Annotations:            &annotations,
		ReadOnlyRootFilesystem: s.ReadOnlyRootFilesystem,
		InvocationCount:        float64(st.Invoked),
		InvocationRate:         st.Rate,
		Replicas:               uint64(st.Desired),
		AvailableReplicas:      uint64(st.Ready),
		CreatedAt:              s.CreatedAt,
		Phase:                  st.Phase,
	}
	for _, r := range st.Replicas {
		if fs.ReplicaStates == nil {
			fs.ReplicaStates = map[function.State]int{}
		}
		fs.ReplicaStates[r.State]++
	}
	if s.Limits != nil {
		fs.Limits = &wire.FunctionResources{Memory: s.Limits.Memory, CPU: s.Limits.CPU}
	}
	if s.Requests != nil {
		fs.Requests = &wire.FunctionResources{Memory: s.Requests.Memory, CPU: s.Requests.CPU}
	}
	fs.MinReplicas, fs.MaxReplicas = s.MinReplicas(), max(s.MaxReplicas(), s.MinReplicas())
	fs.Autoscaling = s.Autoscaled()
	if detail {
		fs.Instances = st.Replicas
		fs.LastError = st.LastError
	}
	return fs
}
