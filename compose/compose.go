package compose

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/emberfaas/ember/function"
)

// File is a compose file to read: its name (for messages and relative
// paths), its content, the directory env_file and bind paths are relative
// to, and the environment ${VAR}s are taken from.
type File struct {
	Name    string
	Content []byte
	Dir     string
	Env     map[string]string
}

// serviceKeys are the service keys ember honours; the loader's own
// derived keys (networks: default) are checked apart.
var serviceKeys = []string{"image", "environment", "env_file", "command", "entrypoint", "user", "volumes", "ports",
	"depends_on", "restart", "healthcheck", "cap_add", "deploy", "networks"}

// Load reads a compose file into service specs, in an order that starts
// every service after those it depends on. Anything the file sets that
// ember cannot do is an error naming the service and the key.
func Load(ctx context.Context, f File) ([]function.Spec, error) {
	details := types.ConfigDetails{WorkingDir: f.Dir, Environment: f.Env,
		ConfigFiles: []types.ConfigFile{{Filename: f.Name, Content: f.Content}}}
	p, err := loader.LoadWithContext(ctx, details, func(o *loader.Options) {
		o.SetProjectName("ember", true)
		o.ResolvePaths = true
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", function.ErrInvalid, f.Name, err)
	}
	if err := checkProject(p); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}
	var specs []function.Spec
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		s, err := toSpec(p, p.Services[name])
		if err != nil {
			return nil, fmt.Errorf("%s: service %s: %w", f.Name, name, err)
		}
		specs = append(specs, s)
	}
	ordered, err := order(specs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}
	return ordered, nil
}

func unsupported(where, key string) error {
	if where == "" {
		return fmt.Errorf("%w: key %q is not supported by ember", function.ErrInvalid, key)
	}
	return fmt.Errorf("%w: %s: key %q is not supported by ember", function.ErrInvalid, where, key)
}

func checkProject(p *types.Project) error {
	for name, n := range p.Networks {
		if name != "default" || n.Driver != "" || n.External || len(n.DriverOpts) > 0 || len(n.Labels) > 0 {
			return unsupported("networks", name)
		}
	}
	for name, v := range p.Volumes {
		switch {
		case v.Driver != "":
			return unsupported("volumes."+name, "driver")
		case len(v.DriverOpts) > 0:
			return unsupported("volumes."+name, "driver_opts")
		case bool(v.External):
			return unsupported("volumes."+name, "external")
		}
	}
	switch {
	case len(p.Secrets) > 0:
		return unsupported("top level", "secrets")
	case len(p.Configs) > 0:
		return unsupported("top level", "configs")
	case len(p.Models) > 0:
		return unsupported("top level", "models")
	case len(p.DisabledServices) > 0:
		return unsupported("top level", "profiles")
	}
	return nil
}

// keysOf lists the keys a value marshals to, which are those it sets.
func keysOf(v any) (map[string]json.RawMessage, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	return m, json.Unmarshal(b, &m)
}

func checkKeys(where string, v any, allowed ...string) error {
	m, err := keysOf(v)
	if err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if string(m[k]) == "null" || string(m[k]) == "{}" {
			continue
		}
		if !slices.Contains(allowed, k) {
			return unsupported(where, k)
		}
	}
	return nil
}

func toSpec(p *types.Project, s types.ServiceConfig) (function.Spec, error) {
	if err := checkKeys("", s, serviceKeys...); err != nil {
		return function.Spec{}, err
	}
	if strings.TrimSpace(s.Image) == "" {
		return function.Spec{}, fmt.Errorf("%w: key \"image\" is required (ember does not build images)", function.ErrInvalid)
	}
	for n := range s.Networks {
		if n != "default" {
			return function.Spec{}, unsupported("networks", n)
		}
	}
	switch s.Restart {
	case "", types.RestartPolicyAlways, types.RestartPolicyUnlessStopped:
	default:
		return function.Spec{}, fmt.Errorf("%w: key \"restart\": %q: ember restarts services always", function.ErrInvalid, s.Restart)
	}
	spec := function.Spec{Kind: function.KindService, Name: s.Name, Image: s.Image, Service: &function.Service{
		Entrypoint: s.Entrypoint, Command: s.Command, User: s.User}}
	for k, v := range s.Environment {
		if v == nil {
			continue // "- NAME" with NAME unset: compose leaves it out too
		}
		if spec.Env == nil {
			spec.Env = map[string]string{}
		}
		spec.Env[k] = *v
	}
	for _, c := range s.CapAdd {
		c = strings.ToUpper(c)
		if !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		spec.Service.CapAdd = append(spec.Service.CapAdd, c)
	}
	for _, d := range slices.Sorted(maps.Keys(s.DependsOn)) {
		if err := checkKeys("depends_on."+d, s.DependsOn[d], "condition", "required"); err != nil {
			return function.Spec{}, err
		}
		spec.Service.DependsOn = append(spec.Service.DependsOn, d)
	}
	for i, v := range s.Volumes {
		m, err := mount(p, i, v)
		if err != nil {
			return function.Spec{}, err
		}
		spec.Service.Mounts = append(spec.Service.Mounts, m)
	}
	for i, pc := range s.Ports {
		port, err := publish(i, pc)
		if err != nil {
			return function.Spec{}, err
		}
		spec.Service.Ports = append(spec.Service.Ports, port)
	}
	if h := s.HealthCheck; h != nil && !h.Disable {
		hc, err := healthcheck(h)
		if err != nil {
			return function.Spec{}, err
		}
		spec.Service.Healthcheck = hc
	}
	if d := s.Deploy; d != nil {
		lim, err := limits(d)
		if err != nil {
			return function.Spec{}, err
		}
		spec.Limits = lim
	}
	spec = spec.Normalize()
	if err := spec.Validate(); err != nil {
		return function.Spec{}, err
	}
	return spec, nil
}

func mount(p *types.Project, i int, v types.ServiceVolumeConfig) (function.Mount, error) {
	where := fmt.Sprintf("volumes[%d]", i)
	switch v.Type {
	case types.VolumeTypeVolume:
		if err := checkKeys(where, v, "type", "source", "target", "read_only", "volume"); err != nil {
			return function.Mount{}, err
		}
		if v.Volume != nil && (v.Volume.NoCopy || v.Volume.Subpath != "") {
			return function.Mount{}, unsupported(where, "volume")
		}
		if v.Source == "" {
			return function.Mount{}, fmt.Errorf("%w: %s: an anonymous volume on %s: name it, so its data can be found again", function.ErrInvalid, where, v.Target)
		}
		if _, ok := p.Volumes[v.Source]; !ok {
			return function.Mount{}, fmt.Errorf("%w: %s: volume %q is not declared under the top-level volumes key", function.ErrInvalid, where, v.Source)
		}
		return function.Mount{Volume: v.Source, Target: v.Target, ReadOnly: v.ReadOnly}, nil
	case types.VolumeTypeBind:
		if err := checkKeys(where, v, "type", "source", "target", "read_only", "bind"); err != nil {
			return function.Mount{}, err
		}
		if v.Bind != nil && (v.Bind.Propagation != "" || v.Bind.SELinux != "" || v.Bind.Recursive != "") {
			return function.Mount{}, unsupported(where, "bind")
		}
		if why := function.BindAllowed(v.Source, ""); why != "" {
			return function.Mount{}, fmt.Errorf("%w: %s: host path %s %s", function.ErrInvalid, where, v.Source, why)
		}
		return function.Mount{Source: v.Source, Target: v.Target, ReadOnly: v.ReadOnly}, nil
	default:
		return function.Mount{}, fmt.Errorf("%w: %s: volume type %q is not supported by ember (want volume or bind)", function.ErrInvalid, where, v.Type)
	}
}

func publish(i int, pc types.ServicePortConfig) (function.Port, error) {
	where := fmt.Sprintf("ports[%d]", i)
	if err := checkKeys(where, pc, "mode", "host_ip", "target", "published", "protocol"); err != nil {
		return function.Port{}, err
	}
	if pc.Protocol != "" && pc.Protocol != "tcp" {
		return function.Port{}, fmt.Errorf("%w: %s: protocol %s: ember publishes TCP only", function.ErrInvalid, where, pc.Protocol)
	}
	if pc.Published == "" {
		return function.Port{}, fmt.Errorf("%w: %s: port %d has no host port: say which, as in \"5432:5432\"", function.ErrInvalid, where, pc.Target)
	}
	hp, err := strconv.Atoi(pc.Published)
	if err != nil {
		return function.Port{}, fmt.Errorf("%w: %s: host port %q: ember publishes one port per entry, not ranges", function.ErrInvalid, where, pc.Published)
	}
	ip := pc.HostIP
	if ip == "" {
		ip = "127.0.0.1"
	}
	if _, err := netip.ParseAddr(ip); err != nil {
		return function.Port{}, fmt.Errorf("%w: %s: host_ip %q: %w", function.ErrInvalid, where, pc.HostIP, err)
	}
	return function.Port{HostIP: ip, HostPort: hp, Port: int(pc.Target)}, nil
}

func healthcheck(h *types.HealthCheckConfig) (*function.Healthcheck, error) {
	if err := checkKeys("healthcheck", h, "test", "interval", "timeout", "retries", "start_period"); err != nil {
		return nil, err
	}
	var test []string
	switch {
	case len(h.Test) == 0:
		return nil, nil
	case h.Test[0] == "NONE":
		return nil, nil
	case h.Test[0] == "CMD" && len(h.Test) > 1:
		test = h.Test[1:]
	case h.Test[0] == "CMD-SHELL" && len(h.Test) == 2:
		test = []string{"/bin/sh", "-c", h.Test[1]}
	default:
		return nil, fmt.Errorf("%w: healthcheck: test %q: want [\"CMD\", ...] or [\"CMD-SHELL\", \"...\"]", function.ErrInvalid, h.Test)
	}
	hc := &function.Healthcheck{Test: test}
	if h.Interval != nil {
		hc.Interval = time.Duration(*h.Interval)
	}
	if h.Retries != nil {
		hc.Retries = int(*h.Retries)
	}
	return hc, nil
}

func limits(d *types.DeployConfig) (*function.Resources, error) {
	if err := checkKeys("deploy", d, "resources"); err != nil {
		return nil, err
	}
	if err := checkKeys("deploy.resources", d.Resources, "limits"); err != nil {
		return nil, err
	}
	l := d.Resources.Limits
	if l == nil {
		return nil, nil
	}
	if err := checkKeys("deploy.resources.limits", l, "cpus", "memory"); err != nil {
		return nil, err
	}
	var r function.Resources
	if l.MemoryBytes > 0 {
		r.Memory = strconv.FormatInt(int64(l.MemoryBytes), 10)
	}
	if l.NanoCPUs > 0 {
		r.CPU = strconv.Itoa(int(float64(l.NanoCPUs)*1000+0.5)) + "m"
	}
	return &r, nil
}

// order sorts services so that each comes after those it depends on, and
// refuses a dependency on a service the file does not define, or a cycle.
func order(specs []function.Spec) ([]function.Spec, error) {
	byName := map[string]function.Spec{}
	for _, s := range specs {
		byName[s.Name] = s
	}
	var (
		out   []function.Spec
		state = map[string]int{} // 1 visiting, 2 done
		visit func(name string, from string) error
	)
	visit = func(name, from string) error {
		s, ok := byName[name]
		if !ok {
			return fmt.Errorf("%w: service %s: depends_on: no service %s in the file", function.ErrInvalid, from, name)
		}
		switch state[name] {
		case 1:
			return fmt.Errorf("%w: depends_on: a cycle through %s", function.ErrInvalid, name)
		case 2:
			return nil
		}
		state[name] = 1
		for _, d := range s.Service.DependsOn {
			if err := visit(d, name); err != nil {
				return err
			}
		}
		state[name] = 2
		out = append(out, s)
		return nil
	}
	for _, s := range specs {
		if err := visit(s.Name, s.Name); err != nil {
			return nil, err
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no services")
	}
	return out, nil
}
