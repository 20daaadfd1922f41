package api

import (
	"context"
	"io"
	"net/http"

	"github.com/julienschmidt/httprouter"

	"github.com/emberfaas/ember/api/wire"
)

// Images loads image archives.
type Images interface {
	Import(ctx context.Context, archive io.Reader) ([]string, error)
}

func (a *API) importImages(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	names, err := a.images.Import(r.Context(), r.Body)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.ImportResult{Images: names})
}
