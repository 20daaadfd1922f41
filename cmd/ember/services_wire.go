package main

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/emberfaas/ember/api"
	"github.com/emberfaas/ember/client"
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

// defaultCompose is the compose file the daemon brings up at start, in
// its state dir, as faasd does with its docker-compose.yaml.
const defaultCompose = "compose.yaml"

// upDefaultCompose brings up the services of STATE/compose.yaml, if there
// is one, through the daemon's own socket: the same checks as `ember
// service up -f`, and the same idempotence, so a restart leaves unchanged
// services running and recreates changed ones. A refused file is logged
// and changes nothing; the daemon serves on.
func upDefaultCompose(ctx context.Context, stateDir, socket string, log *slog.Logger) {
	path := filepath.Join(stateDir, defaultCompose)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return
	}
	res, err := upFile(ctx, client.New(socket), path)
	if err != nil {
		log.Error("default compose file refused", "file", path, "err", err)
		return
	}
	for _, r := range res {
		log.Info("default compose file", "file", path, "service", r.Name, "action", r.Action)
	}
}
