package api

import (
	"fmt"
	"net/http"

	"github.com/julienschmidt/httprouter"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/function"
)

func (a *API) scaleFunction(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	// Replicas absent is 0 (park) for OpenFaaS clients, unless ember's
	// min or max is given: then only the bounds change.
	var req struct {
		wire.ScaleServiceRequest
		Replicas *uint64 `json:"replicas"`
	}
	if !a.decode(w, r, &req) {
		return
	}
	ref := ps.ByName("name")
	if ref == "" {
		ref = req.ServiceName
	}
	name, ok := a.resolve(w, ref, namespaceOf(req.Namespace, r))
	if !ok {
		return
	}
	bound := func(v *uint64) *int {
		if v == nil {
			return nil
		}
		n := int(min(*v, function.ReplicaLimit+1))
		return &n
	}
	if req.Min != nil || req.Max != nil {
		if err := a.fns.SetBounds(r.Context(), name, bound(req.Min), bound(req.Max)); err != nil {
			writeError(w, err)
			return
		}
		if req.Replicas == nil {
			w.WriteHeader(http.StatusAccepted)
			return
		}
	}
	var n uint64
	if req.Replicas != nil {
		n = *req.Replicas
	}
	if n > function.ReplicaLimit {
		http.Error(w, fmt.Sprintf("replicas must be at most %d", function.ReplicaLimit), http.StatusBadRequest)
		return
	}
	if err := a.fns.Scale(r.Context(), name, int(n)); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// restartFunction replaces a function's replicas with fresh ones in a
// rolling update, for apps that read their secrets or configuration only
// at start. ember's own route: OpenFaaS has none. With ?wait=DURATION it
// answers once a restarted replica is ready.
func (a *API) restartFunction(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	wait, ok := parseWait(w, r)
	if !ok {
		return
	}
	name, ok := a.resolve(w, ps.ByName("name"), r.URL.Query().Get("namespace"))
	if !ok {
		return
	}
	if err := a.fns.Restart(r.Context(), name); err != nil {
		writeError(w, err)
		return
	}
	if !a.waitReady(w, r, name, wait) {
		return
	}
	w.WriteHeader(http.StatusAccepted)
}
