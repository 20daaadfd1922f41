package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/julienschmidt/httprouter"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/function"
)

// Namespaces keeps the function namespaces.
type Namespaces interface {
	Namespaces() ([]function.Namespace, error)
	Namespace(name string) (function.Namespace, error)
	CreateNamespace(ns function.Namespace) error
	UpdateNamespace(ns function.Namespace) error
	DeleteNamespace(name string) error
}

func (a *API) listNamespaces(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	nss, err := a.nss.Namespaces()
	if err != nil {
		writeError(w, err)
		return
	}
	out := make([]string, 0, len(nss))
	for _, ns := range nss {
		out = append(out, ns.Name)
	}
	writeJSON(w, http.StatusOK, out)
}

// namespaceName reads the namespace from the path, as faas-cli's SDK puts
// it there for all but create, and from the body otherwise.
func namespaceName(ps httprouter.Params, body string) string {
	if n := strings.Trim(ps.ByName("name"), "/"); n != "" {
		return n
	}
	return body
}

func (a *API) getNamespace(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	name := namespaceName(ps, "")
	if err := function.ValidateNamespace(name); err != nil {
		writeError(w, err)
		return
	}
	ns, err := a.nss.Namespace(name)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.FunctionNamespace(ns))
}

func (a *API) createNamespace(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	a.putNamespace(w, r, ps, false)
}

func (a *API) updateNamespace(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	a.putNamespace(w, r, ps, true)
}

// putNamespace answers as faasd does: 201 for a new namespace, 202 for an
// update, 409 for one that exists, 404 for one that does not.
func (a *API) putNamespace(w http.ResponseWriter, r *http.Request, ps httprouter.Params, update bool) {
	var req wire.FunctionNamespace
	if !a.decode(w, r, &req) {
		return
	}
	name := namespaceName(ps, req.Name)
	if req.Name != "" && req.Name != name {
		writeError(w, fmt.Errorf("%w: namespace %q in the path but %q in the body", function.ErrInvalid, name, req.Name))
		return
	}
	req.Name = name
	if err := function.ValidateNamespace(name); err != nil {
		writeError(w, err)
		return
	}
	var err error
	if update {
		err = a.nss.UpdateNamespace(function.Namespace(req))
	} else {
		err = a.nss.CreateNamespace(function.Namespace(req))
	}
	if errors.Is(err, function.ErrExists) {
		http.Error(w, "namespace "+name+" already exists", http.StatusConflict)
		return
	}
	if err != nil {
		writeError(w, err)
		return
	}
	if update {
		w.WriteHeader(http.StatusAccepted)
	} else {
		w.WriteHeader(http.StatusCreated)
	}
}

// deleteNamespace refuses a namespace that still holds functions or
// secrets, listing them: removing it would strand them, unreachable by
// any route. It holds the namespace lock so that no deploy lands in the
// namespace between the check and the deletion.
func (a *API) deleteNamespace(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	name := namespaceName(ps, "")
	if name == "" && r.ContentLength != 0 {
		var req wire.FunctionNamespace
		if !a.decode(w, r, &req) {
			return
		}
		name = req.Name
	}
	if err := function.ValidateNamespace(name); err != nil {
		writeError(w, err)
		return
	}
	if name == function.DefaultNamespace {
		writeError(w, fmt.Errorf("%w: namespace %s is the default and cannot be deleted", function.ErrInvalid, name))
		return
	}
	a.nsMu.Lock()
	defer a.nsMu.Unlock()
	if _, err := a.nss.Namespace(name); err != nil {
		writeError(w, err)
		return
	}
	inUse := wire.NamespaceInUse{Functions: []string{}, Secrets: []string{}}
	for _, s := range a.fns.Functions() {
		if s.Namespace() == name {
			inUse.Functions = append(inUse.Functions, s.BaseName())
		}
	}
	keys, err := a.secrets.Names()
	if err != nil {
		writeError(w, err)
		return
	}
	for _, k := range keys {
		if n, ns := function.SplitRef(k); strings.Contains(k, ".") && ns == name {
			inUse.Secrets = append(inUse.Secrets, n)
		}
	}
	if len(inUse.Functions)+len(inUse.Secrets) > 0 {
		slices.Sort(inUse.Functions)
		var parts []string
		if len(inUse.Functions) > 0 {
			parts = append(parts, "functions "+strings.Join(inUse.Functions, ", "))
		}
		if len(inUse.Secrets) > 0 {
			parts = append(parts, "secrets "+strings.Join(inUse.Secrets, ", "))
		}
		inUse.Message = fmt.Sprintf("namespace %s is not empty: remove its %s first", name, strings.Join(parts, " and "))
		writeJSON(w, http.StatusConflict, inUse)
		return
	}
	if err := a.nss.DeleteNamespace(name); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// knownNamespace turns a requested namespace (empty: the default) into a
// namespace that exists, answering 400 for a malformed name and 404 for
// one that does not exist.
func (a *API) knownNamespace(w http.ResponseWriter, ns string) (string, bool) {
	if ns == "" || ns == function.DefaultNamespace {
		return function.DefaultNamespace, true
	}
	if err := function.ValidateNamespace(ns); err != nil {
		writeError(w, err)
		return "", false
	}
	if _, err := a.nss.Namespace(ns); err != nil {
		if errors.Is(err, function.ErrNotFound) {
			http.Error(w, fmt.Sprintf("namespace %q not found: create it with faas-cli namespace create %s", ns, ns), http.StatusNotFound)
			return "", false
		}
		writeError(w, err)
		return "", false
	}
	return ns, true
}

// systemNotFound answers a /system/ route that does not exist with its
// name, where the router would answer its bare default page.
func systemNotFound(w http.ResponseWriter, r *http.Request) {
	http.Error(w, fmt.Sprintf("no such API route: %s %s", r.Method, r.URL.Path), http.StatusNotFound)
}

// onlyDefault stands in when no namespace store is wired: the default
// namespace alone, which cannot change.
type onlyDefault struct{}

func (onlyDefault) Namespaces() ([]function.Namespace, error) {
	return []function.Namespace{{Name: function.DefaultNamespace, Labels: map[string]string{"openfaas": "1"}}}, nil
}

func (o onlyDefault) Namespace(name string) (function.Namespace, error) {
	if name == function.DefaultNamespace {
		nss, _ := o.Namespaces()
		return nss[0], nil
	}
	return function.Namespace{}, fmt.Errorf("namespace %s: %w", name, function.ErrNotFound)
}

func (onlyDefault) CreateNamespace(function.Namespace) error {
	return fmt.Errorf("%w: this daemon keeps no namespaces besides %s", function.ErrInvalid, function.DefaultNamespace)
}

func (o onlyDefault) UpdateNamespace(ns function.Namespace) error { return o.CreateNamespace(ns) }

func (o onlyDefault) DeleteNamespace(string) error { return o.CreateNamespace(function.Namespace{}) }
