package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/julienschmidt/httprouter"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/function"
)

// Secrets stores secret values.
type Secrets interface {
	Create(name string, value []byte) error
	Update(name string, value []byte) error
	Delete(name string) error
	Names() ([]string, error)
}

// SecretProjector brings the secrets that running replicas see up to date
// after a secret changed.
type SecretProjector interface {
	RefreshSecret(ctx context.Context, name string) error
}

// refresh re-projects a changed secret. The client leaving does not stop
// it half-way: replicas of one function would see different values.
func (a *API) refresh(w http.ResponseWriter, r *http.Request, name string) bool {
	if a.projector == nil {
		return true
	}
	if err := a.projector.RefreshSecret(context.WithoutCancel(r.Context()), name); err != nil {
		writeError(w, fmt.Errorf("secret %s stored, but running replicas may still see the old one: %w", name, err))
		return false
	}
	return true
}

func (a *API) listSecrets(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	if !validNamespace(w, r.URL.Query().Get("namespace")) {
		return
	}
	names, err := a.secrets.Names()
	if err != nil {
		writeError(w, err)
		return
	}
	out := make([]wire.Secret, 0, len(names))
	for _, n := range names {
		out = append(out, wire.Secret{Name: n, Namespace: function.DefaultNamespace})
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) createSecret(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	a.putSecret(w, r, false)
}

func (a *API) updateSecret(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	a.putSecret(w, r, true)
}

func (a *API) putSecret(w http.ResponseWriter, r *http.Request, update bool) {
	var s wire.Secret
	if !a.decode(w, r, &s) {
		return
	}
	if !validNamespace(w, namespaceOf(s.Namespace, r)) {
		return
	}
	if err := function.ValidateName(s.Name); err != nil {
		writeError(w, err)
		return
	}
	// faas-cli --from-file sends both; the raw bytes are the truth.
	value := []byte(s.Value)
	if len(s.RawValue) > 0 {
		value = s.RawValue
	}
	var err error
	if update {
		err = a.secrets.Update(s.Name, value)
	} else {
		err = a.secrets.Create(s.Name, value)
	}
	if errors.Is(err, function.ErrExists) {
		http.Error(w, "secret "+s.Name+" already exists", http.StatusConflict)
		return
	}
	if err != nil {
		writeError(w, err)
		return
	}
	if update {
		if !a.refresh(w, r, s.Name) {
			return
		}
		w.WriteHeader(http.StatusOK)
	} else {
		w.WriteHeader(http.StatusCreated)
	}
}

func (a *API) deleteSecret(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	var s wire.Secret
	if !a.decode(w, r, &s) {
		return
	}
	if !validNamespace(w, namespaceOf(s.Namespace, r)) {
		return
	}
	if err := function.ValidateName(s.Name); err != nil {
		writeError(w, err)
		return
	}
	if err := a.secrets.Delete(s.Name); err != nil {
		if errors.Is(err, function.ErrNotFound) {
			http.Error(w, "unable to find secret: "+s.Name, http.StatusNotFound)
			return
		}
		writeError(w, err)
		return
	}
	if !a.refresh(w, r, s.Name) {
		return
	}
	w.WriteHeader(http.StatusOK)
}
