package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/julienschmidt/httprouter"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/function"
)

// ServiceHost is what services need of the host beyond the controller:
// images, volumes and bind mounts checked before anything is created,
// and published ports.
type ServiceHost interface {
	EnsureImage(ctx context.Context, ref string) (string, error)
	CheckMounts(spec function.Spec) error
	RemoveVolume(name string) error
	CheckPorts(name string, ports []function.Port) error
	PublishPorts(name string, ports []function.Port) error
	UnpublishPorts(name string)
}

func (a *API) services() []function.Spec {
	var out []function.Spec
	for _, s := range a.fns.Functions() {
		if s.IsService() {
			out = append(out, s)
		}
	}
	return out
}

func portsOf(s function.Spec) []function.Port {
	if s.Service == nil {
		return nil
	}
	return s.Service.Ports
}

// upServices deploys a compose file's services. Everything is checked
// first — specs, images, mounts, ports — so a refused request creates
// nothing; then services are deployed in order, unchanged ones left
// running as they are.
func (a *API) upServices(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	if a.svc == nil {
		http.Error(w, "services are not enabled", http.StatusNotImplemented)
		return
	}
	var req wire.ServicesUp
	if !a.decode(w, r, &req) {
		return
	}
	if len(req.Services) == 0 {
		http.Error(w, "no services", http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	specs := make([]function.Spec, len(req.Services))
	for i, s := range req.Services {
		s = s.Normalize()
		if !s.IsService() {
			writeError(w, fmt.Errorf("%w: %s: kind %q is not a service", function.ErrInvalid, s.Name, s.Kind))
			return
		}
		if err := s.Validate(); err != nil {
			writeError(w, fmt.Errorf("service %s: %w", s.Name, err))
			return
		}
		if old, err := a.fns.Spec(s.Name); err == nil && !old.IsService() {
			writeError(w, fmt.Errorf("%w: service %s: a function has that name", function.ErrInvalid, s.Name))
			return
		}
		if err := a.svc.CheckMounts(s); err != nil {
			writeError(w, fmt.Errorf("service %s: %w", s.Name, err))
			return
		}
		if err := a.svc.CheckPorts(s.Name, portsOf(s)); err != nil {
			writeError(w, fmt.Errorf("service %s: %w", s.Name, err))
			return
		}
		specs[i] = s
	}
	for i, s := range specs {
		for _, o := range specs[i+1:] {
			for _, p := range portsOf(o) {
				if slices.ContainsFunc(portsOf(s), func(q function.Port) bool { return q.HostPort == p.HostPort }) {
					writeError(w, fmt.Errorf("%w: port %d published by both %s and %s", function.ErrInvalid, p.HostPort, s.Name, o.Name))
					return
				}
			}
		}
	}
	for _, s := range specs {
		if _, err := a.svc.EnsureImage(ctx, s.Image); err != nil {
			writeError(w, fmt.Errorf("service %s: %w", s.Name, err))
			return
		}
	}
	var out []wire.ServiceResult
	for _, s := range specs {
		action := wire.ServiceCreated
		if old, err := a.fns.Spec(s.Name); err == nil {
			action = wire.ServiceRecreated
			if old.Hash() == s.Hash() {
				action = wire.ServiceUnchanged
			}
		}
		if action != wire.ServiceUnchanged {
			if err := a.fns.Deploy(ctx, s); err != nil {
				writeError(w, fmt.Errorf("service %s: %w", s.Name, err))
				return
			}
		}
		if err := a.svc.PublishPorts(s.Name, portsOf(s)); err != nil {
			writeError(w, fmt.Errorf("service %s: %w", s.Name, err))
			return
		}
		a.log.Info("service up", "service", s.Name, "action", action)
		out = append(out, wire.ServiceResult{Name: s.Name, Action: action})
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) listServices(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	out := []wire.ServiceStatus{}
	for _, s := range a.services() {
		st, err := a.fns.Status(s.Name)
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, wire.ServiceStatus{Spec: s, Status: st})
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) service(w http.ResponseWriter, name string) (function.Spec, bool) {
	s, err := a.fns.Spec(name)
	if err == nil && !s.IsService() {
		err = fmt.Errorf("service %s: %w", name, function.ErrNotFound)
	}
	if err != nil {
		writeError(w, err)
		return function.Spec{}, false
	}
	return s, true
}

// downService removes a service; its named volumes stay unless
// ?volumes=true, and then only those no other service mounts.
func (a *API) downService(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	if a.svc == nil {
		http.Error(w, "services are not enabled", http.StatusNotImplemented)
		return
	}
	s, ok := a.service(w, ps.ByName("name"))
	if !ok {
		return
	}
	volumes, _ := strconv.ParseBool(r.URL.Query().Get("volumes"))
	a.svc.UnpublishPorts(s.Name)
	if err := a.fns.Remove(r.Context(), s.Name); err != nil {
		writeError(w, err)
		return
	}
	if volumes {
		used := map[string]bool{}
		for _, o := range a.services() {
			for _, m := range o.Service.Mounts {
				used[m.Volume] = true
			}
		}
		for _, m := range s.Service.Mounts {
			if m.Volume == "" || used[m.Volume] {
				continue
			}
			if err := a.svc.RemoveVolume(m.Volume); err != nil {
				writeError(w, fmt.Errorf("volume %s: %w", m.Volume, err))
				return
			}
			a.log.Info("volume removed", "volume", m.Volume)
		}
	}
	w.WriteHeader(http.StatusAccepted)
}

func (a *API) restartService(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	s, ok := a.service(w, ps.ByName("name"))
	if !ok {
		return
	}
	if err := a.fns.Restart(r.Context(), s.Name); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}
