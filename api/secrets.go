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
	ns, ok := a.knownNamespace(w, r.URL.Query().Get("namespace"))
	if !ok {
		return
	}
	keys, err := a.secrets.Names()
	if err != nil {
		writeError(w, err)
		return
	}
	out := make([]wire.Secret, 0, len(keys))
	for _, k := range keys {
		if n, kns := function.SplitRef(function.MetricName(k)); kns == ns {
			out = append(out, wire.Secret{Name: n, Namespace: ns})
		}
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
	key, ok := a.secretKey(w, r, s)
	if !ok {
		return
	}
	// faas-cli --from-file sends both; the raw bytes are the truth.
	value := []byte(s.Value)
	if len(s.RawValue) > 0 {
		value = s.RawValue
	}
	var err error
	if update {
		err = a.secrets.Update(key, value)
	} else {
		err = a.secrets.Create(key, value)
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
		if !a.refresh(w, r, key) {
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
	key, ok := a.secretKey(w, r, s)
	if !ok {
		return
	}
	if err := a.secrets.Delete(key); err != nil {
		if errors.Is(err, function.ErrNotFound) {
			http.Error(w, "unable to find secret: "+s.Name, http.StatusNotFound)
			return
		}
		writeError(w, err)
		return
	}
	if !a.refresh(w, r, key) {
		return
	}
	w.WriteHeader(http.StatusOK)
}

// secretKey checks a secret request's name and namespace (body, else
// query, else default) and returns the secret's key (see
// function.Qualify).
func (a *API) secretKey(w http.ResponseWriter, r *http.Request, s wire.Secret) (string, bool) {
	ns, ok := a.knownNamespace(w, namespaceOf(s.Namespace, r))
	if !ok {
		return "", false
	}
	if err := function.ValidateName(s.Name); err != nil {
		writeError(w, err)
		return "", false
	}
	return function.Qualify(s.Name, ns), true
}
