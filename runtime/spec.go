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
	"strconv"
	"strings"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/containers"
	"github.com/containerd/containerd/contrib/seccomp"
	"github.com/containerd/containerd/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/emberfaas/ember/function"
)

// ProbePath is where the probe binary appears inside every container.
const ProbePath = "/.ember-probe"

// LockPath is the workload contract's readiness file.
const LockPath = "/tmp/.lock"

// ShimGroupAnnotation is the OCI annotation by which containerd's runc v2
// shim serves every task that carries the same value from one shim process
// (as it serves a Kubernetes pod's containers). An idle shim costs about
// 10 MiB and a few wake-ups a second whatever it serves, so sharing one
// among a function's replicas is most of what a replica costs outside its
// own processes. The price: a shim that dies takes all of the function's
// replicas with it, which the controller restarts as it restarts any that
// exited.
const ShimGroupAnnotation = "io.containerd.runc.v2.group"

// ShimGroup is the shim group of a function's replicas. containerd derives
// the shim's socket from it and the containerd namespace, so two daemons
// on one containerd never share a shim.
func ShimGroup(fn function.Spec) string { return "ember." + fn.Name }

// droppedCaps are removed from containerd's default set (Docker's). An HTTP
// service on port 8080 needs none of them, and each widens what a
// compromised function can do to its neighbours on the bridge or the host.
var droppedCaps = []string{"CAP_NET_RAW", "CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_SYS_CHROOT", "CAP_SETFCAP"}

// replicaSpec is everything a replica's OCI spec is made of, gathered as
// data first, so that composing it (opts) is a pure function tests run with
// oci.GenerateSpec and no daemon, as containerd tests its own SpecOpts.
type replicaSpec struct {
	fn    function.Spec
	id    string
	image ocispec.ImageConfig // user, env, entrypoint, cmd, working dir
	netNS string              // path of the replica's network namespace
	// Host files bind-mounted read-only into the container; probe may be
	// empty (no probe binary).
	hosts, resolvConf, probe string
	// secrets projects the function's secrets and mounts them as
	// SecretsDir; nil when it lists none.
	secrets oci.SpecOpts
	// volumes are a service's mounts, resolved to host paths.
	volumes []specs.Mount
}

// specOpts builds a replica's OCI spec. The image's config is read while
// containerd generates the spec, under its context.
func (r *Runtime) specOpts(spec function.Spec, id string, img containerd.Image, att Attachment, hostsFile string) ([]oci.SpecOpts, error) {
	// A bad limit fails here, before anything is created for it.
	if _, err := resourceOpts(spec.Limits); err != nil {
		return nil, err
	}
	in := replicaSpec{fn: spec, id: id, netNS: att.NetNS, hosts: hostsFile, resolvConf: r.resolvConfPath(), probe: r.cfg.ProbeBinary}
	var fresh []string
	if spec.IsService() {
		v, f, err := r.serviceMounts(spec.Service)
		if err != nil {
			return nil, err
		}
		in.volumes, fresh = v, f
	}
	if len(spec.Secrets) > 0 {
		in.secrets = r.withSecrets(spec.Name, spec.Secrets, filepath.Dir(hostsFile))
	}
	return []oci.SpecOpts{func(ctx context.Context, client oci.Client, c *containers.Container, s *oci.Spec) error {
		ic, err := img.Spec(ctx)
		if err != nil {
			return fmt.Errorf("config of image %s: %w", img.Name(), err)
		}
		in.image = ic.Config
		opts, err := in.opts()
		if err != nil {
			return err
		}
		return oci.ApplyOpts(ctx, client, c, s, append(opts, ownVolumes(fresh))...)
	}}, nil
}

// opts composes the spec on top of containerd's defaults (default
// capabilities, masked and read-only /proc paths). Order matters: the
// function's env goes over the image's, and the secrets are owned by the
// user the image config set.
func (in replicaSpec) opts() ([]oci.SpecOpts, error) {
	opts := []oci.SpecOpts{
		withImageConfig(in.image),
		// Each replica has its own hostname, as each pod does, so logs and
		// answers tell replicas apart.
		oci.WithHostname(in.id),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: in.netNS}),
		oci.WithNoNewPrivileges,
		oci.WithDroppedCapabilities(droppedCaps),
		oci.WithAnnotations(map[string]string{ShimGroupAnnotation: ShimGroup(in.fn)}),
	}
	if in.fn.IsService() {
		opts = append(opts, serviceOpts(in.fn.Service, in.image.Entrypoint, in.image.Cmd)...)
	}
	opts = append(opts,
		// After the capabilities: the profile allows the syscalls of the
		// capabilities the spec holds (chroot with CAP_SYS_CHROOT…).
		seccomp.WithDefaultProfile(),
	)
	if env := envList(in.fn); len(env) > 0 {
		opts = append(opts, oci.WithEnv(env))
	}
	mounts := []specs.Mount{
		{Destination: "/etc/hosts", Type: "bind", Source: in.hosts, Options: []string{"rbind", "ro", "nosuid", "nodev", "noexec"}},
		{Destination: "/etc/resolv.conf", Type: "bind", Source: in.resolvConf, Options: []string{"rbind", "ro", "nosuid", "nodev", "noexec"}},
	}
	if in.probe != "" {
		mounts = append(mounts, specs.Mount{Destination: ProbePath, Type: "bind", Source: in.probe, Options: []string{"rbind", "ro", "nosuid", "nodev"}})
	}
	if in.fn.ReadOnlyRootFilesystem {
		// The lock file must stay writable, as faas-netes does with an
		// emptyDir on /tmp.
		opts = append(opts, oci.WithRootFSReadonly())
		mounts = append(mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777", "size=64m"}})
	}
	opts = append(opts, oci.WithMounts(mounts))
	if in.fn.IsService() {
		opts = append(opts, withMounts(in.volumes))
	}
	res, err := resourceOpts(in.fn.Limits)
	if err != nil {
		return nil, err
	}
	opts = append(opts, res...)
	if in.secrets != nil {
		opts = append(opts, in.secrets)
	}
	return opts, nil
}

// withImageConfig does on Linux what oci.WithImageConfig does — the image's
// env under whatever is set later, entrypoint and cmd, working dir, user,
// and the user's groups from the image's /etc/group — but from the config as
// data, as containerd's CRI plugin builds specs. A named user is resolved
// in the container's snapshot, or in the spec's root path when the
// container has none (as in tests).
func withImageConfig(cfg ocispec.ImageConfig) oci.SpecOpts {
	return func(ctx context.Context, client oci.Client, c *containers.Container, s *oci.Spec) error {
		env := oci.WithDefaultPathEnv
		if len(cfg.Env) > 0 {
			env = oci.WithEnv(cfg.Env)
		}
		cwd := cfg.WorkingDir
		if cwd == "" {
			cwd = "/"
		}
		opts := []oci.SpecOpts{
			env,
			oci.WithProcessArgs(append(slices.Clone(cfg.Entrypoint), cfg.Cmd...)...),
			oci.WithProcessCwd(cwd),
		}
		if cfg.User == "" {
			// The image's /etc/group may still give root more groups.
			opts = append(opts, oci.WithAdditionalGIDs("root"))
		} else {
			opts = append(opts, oci.WithUser(cfg.User), func(ctx context.Context, client oci.Client, c *containers.Container, s *oci.Spec) error {
				return oci.WithAdditionalGIDs(strconv.FormatUint(uint64(s.Process.User.UID), 10))(ctx, client, c, s)
			})
		}
		return oci.ApplyOpts(ctx, client, c, s, opts...)
	}
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
