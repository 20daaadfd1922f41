package function

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
)

// Kinds of spec. A function is the default; a service is a long-running
// companion (a database) run by the same controller with its own policy:
// one replica, restarted always, never autoscaled, paused or parked.
const (
	KindFunction = "function"
	KindService  = "service"
)

// Service is what a service's spec holds beyond a function's.
type Service struct {
	// Entrypoint and Command replace the image's when set.
	Entrypoint []string `json:"entrypoint,omitempty"`
	Command    []string `json:"command,omitempty"`
	User       string   `json:"user,omitempty"`
	CapAdd     []string `json:"capAdd,omitempty"`
	Mounts     []Mount  `json:"mounts,omitempty"`
	Ports      []Port   `json:"ports,omitempty"`
	// DependsOn names services started before this one.
	DependsOn   []string     `json:"dependsOn,omitempty"`
	Healthcheck *Healthcheck `json:"healthcheck,omitempty"`
}

// Mount is a named volume (kept under the state dir) or a bind mount of a
// host path.
type Mount struct {
	// Volume names a volume; empty for a bind mount.
	Volume   string `json:"volume,omitempty"`
	Source   string `json:"source,omitempty"` // host path of a bind mount
	Target   string `json:"target"`
	ReadOnly bool   `json:"readOnly,omitempty"`
}

// Port publishes a TCP port of the service on the host.
type Port struct {
	HostIP   string `json:"hostIP,omitempty"` // default 127.0.0.1
	HostPort int    `json:"hostPort"`
	Port     int    `json:"port"`
}

// Healthcheck is a command run in the service's container: exit 0 means
// ready. It takes the place of a function's lock file.
type Healthcheck struct {
	Test     []string      `json:"test"`
	Interval time.Duration `json:"interval,omitempty"`
	// Retries is how many checks in a row must fail for a ready service
	// to be reported unhealthy (default 3, as compose's).
	Retries int `json:"retries,omitempty"`
}

// DefaultHealthInterval is how often a service's healthcheck runs when the
// file does not say.
const DefaultHealthInterval = 2 * time.Second

// DefaultHealthRetries is compose's default for healthcheck.retries.
const DefaultHealthRetries = 3

// HealthRetries is how many failed checks in a row make a ready service
// unhealthy.
func (s Spec) HealthRetries() int {
	if s.Service != nil && s.Service.Healthcheck != nil && s.Service.Healthcheck.Retries > 0 {
		return s.Service.Healthcheck.Retries
	}
	return DefaultHealthRetries
}

// IsService reports whether the spec is a service.
func (s Spec) IsService() bool { return s.Kind == KindService }

// deniedBindSources are host paths a bind mount may not reach: the host's
// own configuration, kernel interfaces and runtime sockets. A service that
// needs them is not one ember runs.
var deniedBindSources = []string{"/", "/boot", "/dev", "/etc", "/proc", "/run", "/sys", "/var/run", "/var/lib/containerd"}

// BindAllowed reports why a host path may not be bind-mounted into a
// service, or "" if it may: it must be absolute and clean, and not be
// (or be inside) a denied path nor ember's state dir. A directory above
// those (/var, /srv) is allowed.
func BindAllowed(src, stateDir string) string {
	if !path.IsAbs(src) {
		return "is not an absolute path"
	}
	if path.Clean(src) != src {
		return "is not a clean path"
	}
	denied := deniedBindSources
	if stateDir != "" {
		denied = append(slices.Clone(denied), path.Clean(stateDir))
	}
	for _, d := range denied {
		if src == d || d != "/" && strings.HasPrefix(src, d+"/") {
			return "is inside " + d + ", which services may not mount"
		}
	}
	return ""
}

func (s Spec) validateService() error {
	if s.Kind != "" && s.Kind != KindFunction && s.Kind != KindService {
		return fmt.Errorf("%w: kind %q: want %s or %s", ErrInvalid, s.Kind, KindFunction, KindService)
	}
	if !s.IsService() {
		if s.Service != nil {
			return fmt.Errorf("%w: service settings on a function", ErrInvalid)
		}
		return nil
	}
	if s.Namespace() != DefaultNamespace {
		return fmt.Errorf("%w: service %s: services live in the default namespace", ErrInvalid, s.Name)
	}
	sv := s.Service
	if sv == nil {
		return nil
	}
	targets := map[string]bool{}
	for _, m := range sv.Mounts {
		if !path.IsAbs(m.Target) {
			return fmt.Errorf("%w: volume target %q is not an absolute path", ErrInvalid, m.Target)
		}
		if targets[m.Target] {
			return fmt.Errorf("%w: two volumes mounted on %s", ErrInvalid, m.Target)
		}
		targets[m.Target] = true
		switch {
		case m.Volume != "" && m.Source != "":
			return fmt.Errorf("%w: volume on %s has both a name and a host path", ErrInvalid, m.Target)
		case m.Volume != "":
			if err := ValidateName(m.Volume); err != nil {
				return fmt.Errorf("volume: %w", err)
			}
		default:
			if why := BindAllowed(m.Source, ""); why != "" {
				return fmt.Errorf("%w: bind mount %s: host path %s", ErrInvalid, m.Source, why)
			}
		}
	}
	seen := map[int]bool{}
	for _, p := range sv.Ports {
		if p.HostPort < 1 || p.HostPort > 65535 || p.Port < 1 || p.Port > 65535 {
			return fmt.Errorf("%w: port %d:%d out of range", ErrInvalid, p.HostPort, p.Port)
		}
		if seen[p.HostPort] {
			return fmt.Errorf("%w: host port %d published twice", ErrInvalid, p.HostPort)
		}
		seen[p.HostPort] = true
	}
	for _, d := range sv.DependsOn {
		if err := ValidateName(d); err != nil {
			return fmt.Errorf("depends_on: %w", err)
		}
	}
	for _, c := range sv.CapAdd {
		if !strings.HasPrefix(c, "CAP_") || strings.ToUpper(c) != c {
			return fmt.Errorf("%w: capability %q: want a name such as CAP_NET_ADMIN", ErrInvalid, c)
		}
	}
	if h := sv.Healthcheck; h != nil && len(h.Test) == 0 {
		return fmt.Errorf("%w: healthcheck without a test", ErrInvalid)
	}
	if h := sv.Healthcheck; h != nil && h.Retries < 0 {
		return fmt.Errorf("%w: healthcheck retries %d is negative", ErrInvalid, h.Retries)
	}
	return nil
}

// HealthInterval is how often the service's healthcheck runs.
func (s Spec) HealthInterval() time.Duration {
	if s.Service != nil && s.Service.Healthcheck != nil && s.Service.Healthcheck.Interval > 0 {
		return s.Service.Healthcheck.Interval
	}
	return DefaultHealthInterval
}

func (sv *Service) clone() *Service {
	if sv == nil {
		return nil
	}
	c := *sv
	c.Entrypoint = slices.Clone(sv.Entrypoint)
	c.Command = slices.Clone(sv.Command)
	c.CapAdd = slices.Clone(sv.CapAdd)
	c.Mounts = slices.Clone(sv.Mounts)
	c.Ports = slices.Clone(sv.Ports)
	c.DependsOn = slices.Clone(sv.DependsOn)
	if sv.Healthcheck != nil {
		h := *sv.Healthcheck
		h.Test = slices.Clone(h.Test)
		c.Healthcheck = &h
	}
	return &c
}
