package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/emberfaas/ember/function"
)

// resolve turns a path or body reference ("NAME" or "NAME.NAMESPACE") plus
// a namespace into a function's key (see function.Qualify), answering 404
// for a namespace that does not exist.
func (a *API) resolve(w http.ResponseWriter, ref, ns string) (string, bool) {
	name, refNS := function.SplitRef(ref)
	if ns == "" {
		ns = refNS
	}
	ns, ok := a.knownNamespace(w, ns)
	if !ok {
		return "", false
	}
	if err := function.ValidateName(name); err != nil {
		writeError(w, err)
		return "", false
	}
	return function.Qualify(name, ns), true
}

// namespaceOf applies OpenFaaS's rule: body, else query, else default.
func namespaceOf(body string, r *http.Request) string {
	if body != "" {
		return body
	}
	return r.URL.Query().Get("namespace")
}

// decode reads a body of exactly one JSON value (and white space): bytes
// after it are refused, not ignored, so a truncated or concatenated
// request is never half-applied.
func (a *API) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body := http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes)
	dec := json.NewDecoder(body)
	err := dec.Decode(v)
	if err == nil {
		var extra json.RawMessage
		switch err = dec.Decode(&extra); {
		case err == io.EOF:
			return true
		case err == nil:
			err = errors.New("more than one JSON value")
		default:
			var mbe *http.MaxBytesError
			if !errors.As(err, &mbe) {
				err = fmt.Errorf("data after the JSON value: %w", err)
			}
		}
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		http.Error(w, fmt.Sprintf("request body larger than %d bytes", mbe.Limit), http.StatusRequestEntityTooLarge)
		return false
	}
	http.Error(w, "malformed JSON body: "+err.Error(), http.StatusBadRequest)
	return false
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
