package runtime

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	"github.com/containerd/containerd/containers"
	"github.com/containerd/containerd/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/emberfaas/ember/function"
)

// VolumesDir is where named volumes live: STATE/volumes/NAME.
func VolumesDir(state string) string { return filepath.Join(state, "volumes") }

// RemoveVolume deletes a named volume and its data.
func (r *Runtime) RemoveVolume(name string) error {
	if err := function.ValidateName(name); err != nil {
		return err
	}
	return os.RemoveAll(filepath.Join(VolumesDir(r.cfg.StateDir), name))
}

// serviceMounts resolves a service's mounts to host paths, making named
// volumes that do not exist yet. A bind source must exist and be allowed.
// fresh lists the volumes that hold nothing yet: they are given to the
// service's user once the spec says who that is (ownVolumes).
func (r *Runtime) serviceMounts(sv *function.Service) (out []specs.Mount, fresh []string, err error) {
	if sv == nil {
		return nil, nil, nil
	}
	for _, m := range sv.Mounts {
		src := m.Source
		if m.Volume != "" {
			src = filepath.Join(VolumesDir(r.cfg.StateDir), m.Volume)
			if err := os.MkdirAll(src, 0o755); err != nil {
				return nil, nil, fmt.Errorf("volume %s: %w", m.Volume, err)
			}
			if ents, err := os.ReadDir(src); err == nil && len(ents) == 0 {
				fresh = append(fresh, src)
			}
		} else {
			if why := function.BindAllowed(src, r.cfg.StateDir); why != "" {
				return nil, nil, fmt.Errorf("%w: bind mount %s: host path %s", function.ErrInvalid, src, why)
			}
			if _, err := os.Stat(src); err != nil {
				return nil, nil, fmt.Errorf("%w: bind mount: %w", function.ErrInvalid, err)
			}
		}
		opts := []string{"rbind", "nosuid", "nodev"}
		if m.ReadOnly {
			opts = append(opts, "ro")
		} else {
			opts = append(opts, "rw")
		}
		out = append(out, specs.Mount{Destination: m.Target, Type: "bind", Source: src, Options: opts})
	}
	return out, fresh, nil
}

// ownVolumes gives volumes made for this replica to the user its process
// runs as, so a service whose image runs as a non-root user can write its
// data. (Docker copies the image's files and ownership at the mount point
// into a new volume; ember starts it empty, owned by the service's user.)
// It goes last: the user is known only once the image config and the
// service's own user are applied.
func ownVolumes(paths []string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Process == nil {
			return nil
		}
		for _, p := range paths {
			if err := os.Chown(p, int(s.Process.User.UID), int(s.Process.User.GID)); err != nil {
				return fmt.Errorf("volume %s: %w", filepath.Base(p), err)
			}
		}
		return nil
	}
}

// serviceOpts apply what a service sets over the image config: entrypoint
// and command as compose does (an entrypoint drops the image's command),
// the user, and added capabilities. They go before the seccomp profile,
// which allows the syscalls of the capabilities the spec holds.
func serviceOpts(sv *function.Service, imageEntrypoint, imageCmd []string) []oci.SpecOpts {
	if sv == nil {
		return nil
	}
	var opts []oci.SpecOpts
	entry, cmd := imageEntrypoint, imageCmd
	if sv.Entrypoint != nil {
		entry, cmd = sv.Entrypoint, nil
	}
	if sv.Command != nil {
		cmd = sv.Command
	}
	if sv.Entrypoint != nil || sv.Command != nil {
		opts = append(opts, oci.WithProcessArgs(append(slices.Clone(entry), cmd...)...))
	}
	if sv.User != "" {
		opts = append(opts, oci.WithUser(sv.User))
	}
	if len(sv.CapAdd) > 0 {
		opts = append(opts, oci.WithAddedCapabilities(sv.CapAdd))
	}
	return opts
}

// withMounts appends mounts to whatever the spec has.
func withMounts(m []specs.Mount) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		s.Mounts = append(s.Mounts, m...)
		return nil
	}
}

// SetServiceHosts sets the names functions and services resolve to
// services' addresses, and rewrites the hosts file of every replica in
// place (a bind mount follows the inode, not the name), so running
// replicas see a service that moved.
func (r *Runtime) SetServiceHosts(hosts map[string]netip.Addr) error {
	r.hostsMu.Lock()
	defer r.hostsMu.Unlock()
	if maps.Equal(hosts, r.serviceHosts) {
		return nil
	}
	r.serviceHosts = maps.Clone(hosts)
	paths, _ := filepath.Glob(filepath.Join(filesDir(r.cfg.StateDir), "*", "hosts"))
	var firstErr error
	for _, p := range paths {
		old, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		b := withServiceHosts(ownHosts(old), r.serviceHosts)
		if bytes.Equal(b, old) {
			continue
		}
		if err := os.WriteFile(p, b, 0o644); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("hosts file %s: %w", p, err)
		}
	}
	return firstErr
}

const servicesMarker = "# ember services\n"

// ownHosts is a hosts file without its service entries.
func ownHosts(b []byte) []byte {
	if i := bytes.Index(b, []byte(servicesMarker)); i >= 0 {
		return b[:i]
	}
	return b
}

// withServiceHosts appends service entries, sorted, after a marker.
func withServiceHosts(own []byte, hosts map[string]netip.Addr) []byte {
	if len(hosts) == 0 {
		return own
	}
	b := bytes.NewBuffer(slices.Clone(own))
	b.WriteString(servicesMarker)
	for _, name := range slices.Sorted(maps.Keys(hosts)) {
		fmt.Fprintf(b, "%s\t%s\n", hosts[name], name)
	}
	return b.Bytes()
}

func (r *Runtime) hostsFile(id, name string, ip, gateway netip.Addr) []byte {
	r.hostsMu.Lock()
	defer r.hostsMu.Unlock()
	h := maps.Clone(r.serviceHosts)
	delete(h, name) // its own line names it already
	return withServiceHosts(hostsContent(id, name, ip, gateway), h)
}

// CheckMounts checks a service's mounts as Create will, before anything
// is created: bind sources allowed and present.
func (r *Runtime) CheckMounts(spec function.Spec) error {
	if spec.Service == nil {
		return nil
	}
	for _, m := range spec.Service.Mounts {
		if m.Volume != "" {
			continue
		}
		if why := function.BindAllowed(m.Source, r.cfg.StateDir); why != "" {
			return fmt.Errorf("%w: bind mount %s: host path %s", function.ErrInvalid, m.Source, why)
		}
		if _, err := os.Stat(m.Source); err != nil {
			return fmt.Errorf("%w: bind mount: %w", function.ErrInvalid, err)
		}
	}
	return nil
}
