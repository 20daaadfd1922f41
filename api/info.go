package api

import (
	"net/http"
	"runtime"

	"github.com/julienschmidt/httprouter"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/function"
)

func (a *API) info(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	v := &wire.VersionInfo{Release: a.cfg.Version, SHA: a.cfg.Commit, CommitMessage: "ember " + a.cfg.Version}
	writeJSON(w, http.StatusOK, wire.GatewayInfo{
		Provider: &wire.ProviderInfo{Name: "ember", Orchestration: "containerd", Version: v},
		Version:  v,
		Arch:     runtime.GOARCH,
	})
}

func (a *API) namespaces(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	writeJSON(w, http.StatusOK, []string{function.DefaultNamespace})
}

// namespace answers for the one namespace ember has; creating others is
// not supported (OpenFaaS CE answers the same way).
func (a *API) namespace(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	if ps.ByName("name") != function.DefaultNamespace {
		http.Error(w, "namespace "+ps.ByName("name")+" not found", http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": function.DefaultNamespace, "labels": map[string]string{"openfaas": "1"}})
}
