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
	"strings"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/containers"
	"github.com/containerd/containerd/contrib/seccomp"
	"github.com/containerd/containerd/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/emberfaas/ember/function"
)

// ProbePath is where the probe binary appears inside every container.
const ProbePath = "/.ember-probe"

// LockPath is the workload contract's readiness file.
const LockPath = "/tmp/.lock"

// droppedCaps are removed from containerd's default set (Docker's). An HTTP
// service on port 8080 needs none of them, and each widens what a
// compromised function can do to its neighbours on the bridge or the host.
var droppedCaps = []string{"CAP_NET_RAW", "CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_SYS_CHROOT", "CAP_SETFCAP"}

// specOpts builds a replica's OCI spec on top of containerd's defaults
// (default capabilities, masked and read-only /proc paths).
func (r *Runtime) specOpts(spec function.Spec, id string, img containerd.Image, att Attachment, hostsFile string) ([]oci.SpecOpts, error) {
	opts := []oci.SpecOpts{
		oci.WithImageConfig(img),
		// Each replica has its own hostname, as each pod does, so logs and
		// answers tell replicas apart.
		oci.WithHostname(id),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: att.NetNS}),
		oci.WithNoNewPrivileges,
		oci.WithDroppedCapabilities(droppedCaps),
		// After the capabilities: the profile allows the syscalls of the
		// capabilities the spec holds (chroot with CAP_SYS_CHROOT…).
		seccomp.WithDefaultProfile(),
	}
	if env := envList(spec); len(env) > 0 {
		opts = append(opts, oci.WithEnv(env))
	}
	mounts := []specs.Mount{
		{Destination: "/etc/hosts", Type: "bind", Source: hostsFile, Options: []string{"rbind", "ro", "nosuid", "nodev", "noexec"}},
		{Destination: "/etc/resolv.conf", Type: "bind", Source: r.resolvConfPath(), Options: []string{"rbind", "ro", "nosuid", "nodev", "noexec"}},
	}
	if r.cfg.ProbeBinary != "" {
		mounts = append(mounts, specs.Mount{Destination: ProbePath, Type: "bind", Source: r.cfg.ProbeBinary, Options: []string{"rbind", "ro", "nosuid", "nodev"}})
	}
	if spec.ReadOnlyRootFilesystem {
		// The lock file must stay writable, as faas-netes does with an
		// emptyDir on /tmp.
		opts = append(opts, oci.WithRootFSReadonly())
		mounts = append(mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777", "size=64m"}})
	}
	opts = append(opts, oci.WithMounts(mounts))
	res, err := resourceOpts(spec.Limits)
	if err != nil {
		return nil, err
	}
	opts = append(opts, res...)
	if len(spec.Secrets) > 0 {
		opts = append(opts, r.withSecrets(spec.Name, spec.Secrets, filepath.Dir(hostsFile)))
	}
	return opts, nil
}

// SecretsDir is where functions find their secrets, as on OpenFaaS.
const SecretsDir = "/var/openfaas/secrets"

// withSecrets mounts the replica's projected secrets (see secrets.go)
// read-only as SecretsDir. It runs after the image config set the user:
// the files are owned by the function's user and readable by it alone, so
// a non-root function can read what root keeps at mode 0600.
func (r *Runtime) withSecrets(fn string, names []string, dir string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		meta := secretsMeta{Function: fn, Names: slices.Clone(names), UID: s.Process.User.UID, GID: s.Process.User.GID}
		sdir, err := r.projectReplicaSecrets(dir, meta)
		if err != nil {
			return err
		}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: SecretsDir, Type: "bind", Source: sdir,
			Options: []string{"rbind", "ro", "nosuid", "nodev", "noexec"}})
		return nil
	}
}

// envList returns the function's environment in a stable order, with
// OpenFaaS's envProcess as fprocess.
func envList(spec function.Spec) []string {
	env := make([]string, 0, len(spec.Env)+1)
	for _, k := range slices.Sorted(maps.Keys(spec.Env)) {
		env = append(env, k+"="+spec.Env[k])
	}
	if spec.EnvProcess != "" {
		env = append(env, "fprocess="+spec.EnvProcess)
	}
	return env
}

func resourceOpts(lim *function.Resources) ([]oci.SpecOpts, error) {
	if lim == nil {
		return nil, nil
	}
	var opts []oci.SpecOpts
	if lim.Memory != "" {
		b, err := function.ParseMemory(lim.Memory)
		if err != nil {
			return nil, err
		}
		// Swap equal to the limit: a function over its memory is killed,
		// not slowed down by swapping.
		opts = append(opts, oci.WithMemoryLimit(uint64(b)), oci.WithMemorySwap(b))
	}
	if lim.CPU != "" {
		milli, err := function.ParseCPU(lim.CPU)
		if err != nil {
			return nil, err
		}
		const period = 100000
		opts = append(opts, oci.WithCPUCFS(milli*period/1000, period))
	}
	return opts, nil
}

func hostsContent(id, name string, ip, gateway netip.Addr) []byte {
	var b bytes.Buffer
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	if ip.IsValid() {
		fmt.Fprintf(&b, "%s\t%s %s\n", ip, id, name)
	}
	if gateway.IsValid() {
		fmt.Fprintf(&b, "%s\tgateway\n", gateway)
	}
	return b.Bytes()
}

func (r *Runtime) resolvConfPath() string { return filepath.Join(r.cfg.StateDir, "resolv.conf") }

// writeResolvConf gives functions a resolver they can reach. The host's own
// file often names a loopback stub (systemd-resolved's 127.0.0.53) that does
// not exist inside a container's network namespace, so loopback servers are
// dropped and public ones used if nothing is left.
func (r *Runtime) writeResolvConf() error {
	servers := r.cfg.Nameservers
	var search []string
	if len(servers) == 0 {
		data, _ := os.ReadFile("/etc/resolv.conf")
		for line := range strings.Lines(string(data)) {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			switch f[0] {
			case "nameserver":
				if a, err := netip.ParseAddr(f[1]); err == nil && !a.IsLoopback() {
					servers = append(servers, f[1])
				}
			case "search":
				search = f[1:]
			}
		}
		if len(servers) == 0 {
			servers = []string{"1.1.1.1", "8.8.8.8"}
		}
	}
	var b bytes.Buffer
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	if err := writeFileAtomic(r.resolvConfPath(), b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("runtime: resolv.conf: %w", err)
	}
	return nil
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
