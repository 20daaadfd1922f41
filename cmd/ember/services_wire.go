package main

import (
	"log/slog"

	"github.com/emberfaas/ember/api"
	"github.com/emberfaas/ember/function"
	"github.com/emberfaas/ember/proxy"
	"github.com/emberfaas/ember/runtime"
	"github.com/emberfaas/ember/scale"
)

var (
	_ scale.Healthchecker = (*runtime.Runtime)(nil)
	_ scale.Hosts         = (*runtime.Runtime)(nil)
	_ scale.Placer        = (*runtime.Runtime)(nil)
	_ proxy.ServiceAddrs  = (*scale.Controller)(nil)
	_ api.ServiceHost     = serviceHost{}
)

// serviceHost is what the API needs for services: the runtime's images
// and volumes, and the daemon's published ports.
type serviceHost struct {
	*runtime.Runtime
	ports *proxy.Ports
}

func (h serviceHost) CheckPorts(name string, p []function.Port) error { return h.ports.Check(name, p) }
func (h serviceHost) PublishPorts(name string, p []function.Port) error {
	return h.ports.Publish(name, p)
}
func (h serviceHost) UnpublishPorts(name string) { h.ports.Unpublish(name) }

// publishStored publishes the ports of the services the store holds, so a
// restarted daemon serves them again before it serves the API. A port
// taken meanwhile is logged, not fatal: the service still runs, and the
// next up publishes it again.
func publishStored(ctrl *scale.Controller, ports *proxy.Ports, log *slog.Logger) {
	for _, s := range ctrl.Functions() {
		if !s.IsService() || s.Service == nil || len(s.Service.Ports) == 0 {
			continue
		}
		if err := ports.Publish(s.Name, s.Service.Ports); err != nil {
			log.Error("publish service ports", "service", s.Name, "err", err)
		}
	}
}
