package api

import (
	"net/http"
	"runtime"

	"github.com/julienschmidt/httprouter"

	"github.com/emberfaas/ember/api/wire"
)

func (a *API) info(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	v := &wire.VersionInfo{Release: a.cfg.Version, SHA: a.cfg.Commit, CommitMessage: "ember " + a.cfg.Version}
	writeJSON(w, http.StatusOK, wire.GatewayInfo{
		Provider: &wire.ProviderInfo{Name: "ember", Orchestration: "containerd", Version: v},
		Version:  v,
		Arch:     runtime.GOARCH,
	})
}
