package runtime

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/containerd/containerd/containers"
	"github.com/containerd/containerd/contrib/seccomp"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/oci"
	"github.com/google/go-cmp/cmp"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/emberfaas/ember/function"
)

// fakeRootfs is an image's root with the /etc/passwd and /etc/group that
// user resolution reads.
func fakeRootfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte(
		"root:x:0:0:root:/root:/bin/sh\n"+
			"app:x:1000:1001:app:/home/app:/bin/sh\n"+
			"nobody:x:65534:65534:nobody:/:/sbin/nologin\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc", "group"), []byte(
		"root:x:0:\n"+
			"audio:x:29:app\n"+
			"app:x:1001:\n"+
			"nogroup:x:65534:\n"), 0o644)
	return root
}

// generate composes in's spec the way containerd does when it creates the
// container, with no daemon: the image's root is a directory, not a
// snapshot.
func generate(t *testing.T, root string, in replicaSpec) (*oci.Spec, error) {
	t.Helper()
	opts, err := in.opts()
	if err != nil {
		return nil, err
	}
	ctx := namespaces.WithNamespace(t.Context(), "test")
	return oci.GenerateSpec(ctx, nil, &containers.Container{ID: in.id}, append([]oci.SpecOpts{oci.WithRootFSPath(root)}, opts...)...)
}

// specView is the part of a spec that a replica's inputs change.
type specView struct {
	User        specs.User
	Args, Env   []string
	Cwd         string
	Readonly    bool
	Mounts      []specs.Mount // those not in containerd's defaults
	Memory      *specs.LinuxMemory
	CPU         *specs.LinuxCPU
	Annotations map[string]string
}

func viewOf(t *testing.T, s *oci.Spec) specView {
	t.Helper()
	defaults, err := oci.GenerateSpec(namespaces.WithNamespace(t.Context(), "test"), nil, &containers.Container{ID: "x"})
	if err != nil {
		t.Fatal(err)
	}
	v := specView{User: s.Process.User, Args: s.Process.Args, Env: s.Process.Env, Cwd: s.Process.Cwd,
		Readonly: s.Root.Readonly, Annotations: s.Annotations}
	for _, m := range s.Mounts {
		if !slices.ContainsFunc(defaults.Mounts, func(d specs.Mount) bool { return d.Destination == m.Destination }) {
			v.Mounts = append(v.Mounts, m)
		}
	}
	if r := s.Linux.Resources; r != nil {
		v.Memory, v.CPU = r.Memory, r.CPU
	}
	return v
}

func ptr[T any](v T) *T { return &v }

// keptCaps are containerd's default capabilities (Docker's) less
// droppedCaps, as the README promises.
var keptCaps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_KILL"}

func TestReplicaSpec(t *testing.T) {
	root := fakeRootfs(t)
	base := replicaSpec{
		fn: function.Spec{Name: "echo", Image: "echo:v1"}, id: "echo-1a2b3c4d",
		image: ocispec.ImageConfig{Env: []string{"PATH=/app/bin:/usr/bin", "MODE=image", "KEEP=1"},
			Entrypoint: []string{"/app/echo"}, Cmd: []string{"--port", "8080"}, WorkingDir: "/app"},
		netNS: "/var/run/netns/echo-1a2b3c4d",
		hosts: "/state/files/echo-1a2b3c4d/hosts", resolvConf: "/state/resolv.conf", probe: "/usr/bin/ember",
	}
	bindRO := []string{"rbind", "ro", "nosuid", "nodev", "noexec"}
	baseMounts := []specs.Mount{
		{Destination: "/etc/hosts", Type: "bind", Source: base.hosts, Options: bindRO},
		{Destination: "/etc/resolv.conf", Type: "bind", Source: base.resolvConf, Options: bindRO},
		{Destination: ProbePath, Type: "bind", Source: base.probe, Options: []string{"rbind", "ro", "nosuid", "nodev"}},
	}
	baseView := specView{
		User: specs.User{UID: 0, GID: 0, AdditionalGids: []uint32{0}},
		Args: []string{"/app/echo", "--port", "8080"}, Env: base.image.Env, Cwd: "/app",
		Mounts: baseMounts,
		// The only annotation: all of a function's replicas share a shim.
		Annotations: map[string]string{ShimGroupAnnotation: "ember.echo"},
	}
	with := func(f func(*replicaSpec)) replicaSpec {
		in := base
		in.fn = base.fn.Clone()
		f(&in)
		return in
	}
	want := func(f func(*specView)) specView {
		v := baseView
		v.Mounts = slices.Clone(baseMounts)
		f(&v)
		return v
	}

	secretsDir := t.TempDir()
	rt := &Runtime{cfg: Config{StateDir: t.TempDir(), Secrets: &fakeSecrets{vals: map[string]string{"db": "pw"}}}, log: slog.New(slog.DiscardHandler)}
	me := fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid())

	for name, tc := range map[string]struct {
		in   replicaSpec
		want specView
	}{
		"image as is": {base, baseView},
		"image without env gets containerd's PATH": {
			with(func(in *replicaSpec) { in.image.Env = nil }),
			want(func(v *specView) {
				v.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
			})},
		"function env over the image's, fprocess last": {
			with(func(in *replicaSpec) {
				in.fn.Env = map[string]string{"MODE": "fn", "B": "2", "A": "1"}
				in.fn.EnvProcess = "cat"
			}),
			want(func(v *specView) {
				v.Env = []string{"PATH=/app/bin:/usr/bin", "MODE=fn", "KEEP=1", "A=1", "B=2", "fprocess=cat"}
			})},
		"no working dir is /": {
			with(func(in *replicaSpec) { in.image.WorkingDir = "" }),
			want(func(v *specView) { v.Cwd = "/" })},
		"cmd alone": {
			with(func(in *replicaSpec) { in.image.Entrypoint = nil }),
			want(func(v *specView) { v.Args = []string{"--port", "8080"} })},
		"numeric uid:gid, no lookup": {
			with(func(in *replicaSpec) { in.image.User = "4000:4001" }),
			want(func(v *specView) { v.User = specs.User{UID: 4000, GID: 4001, AdditionalGids: []uint32{4001}} })},
		"numeric uid: gid and groups from /etc/passwd and /etc/group": {
			with(func(in *replicaSpec) { in.image.User = "1000" }),
			want(func(v *specView) { v.User = specs.User{UID: 1000, GID: 1001, AdditionalGids: []uint32{1001, 29}} })},
		"uid not in /etc/passwd: gid 0": {
			with(func(in *replicaSpec) { in.image.User = "4242" }),
			want(func(v *specView) { v.User = specs.User{UID: 4242, GID: 0, AdditionalGids: []uint32{0}} })},
		"named user": {
			with(func(in *replicaSpec) { in.image.User = "app" }),
			want(func(v *specView) { v.User = specs.User{UID: 1000, GID: 1001, AdditionalGids: []uint32{1001, 29}} })},
		"named user and group": {
			with(func(in *replicaSpec) { in.image.User = "nobody:nogroup" }),
			want(func(v *specView) { v.User = specs.User{UID: 65534, GID: 65534, AdditionalGids: []uint32{65534}} })},
		"no probe binary": {
			with(func(in *replicaSpec) { in.probe = "" }),
			want(func(v *specView) { v.Mounts = v.Mounts[:2] })},
		"read-only root keeps a writable /tmp": {
			with(func(in *replicaSpec) { in.fn.ReadOnlyRootFilesystem = true }),
			want(func(v *specView) {
				v.Readonly = true
				v.Mounts = append(v.Mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs",
					Options: []string{"nosuid", "nodev", "mode=1777", "size=64m"}})
			})},
		"memory and CPU limits, swap equal to memory": {
			with(func(in *replicaSpec) { in.fn.Limits = &function.Resources{Memory: "128Mi", CPU: "500m"} }),
			want(func(v *specView) {
				v.Memory = &specs.LinuxMemory{Limit: ptr[int64](128 << 20), Swap: ptr[int64](128 << 20)}
				v.CPU = &specs.LinuxCPU{Quota: ptr[int64](50000), Period: ptr[uint64](100000)}
			})},
		// OCI annotations steer runtimes (runc reads org.criu.config, crun
		// run.oci.*): a function's annotations are OpenFaaS metadata and
		// must not reach them.
		"function annotations stay out of the OCI spec": {
			with(func(in *replicaSpec) {
				in.fn.Annotations = map[string]string{"topic": "t", "org.criu.config": "/x", "run.oci.keep_original_groups": "1"}
			}),
			baseView},
		"secrets mounted read-only, owned by the image's user": {
			with(func(in *replicaSpec) {
				in.image.User = me
				in.fn.Secrets = []string{"db"}
				in.secrets = rt.withSecrets("echo", in.fn.Secrets, secretsDir)
			}),
			want(func(v *specView) {
				v.User = specs.User{UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), AdditionalGids: []uint32{uint32(os.Getgid())}}
				v.Mounts = append(v.Mounts, specs.Mount{Destination: SecretsDir, Type: "bind", Source: filepath.Join(secretsDir, "secrets"), Options: bindRO})
			})},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := generate(t, root, tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, viewOf(t, s)); diff != "" {
				t.Errorf("spec (-want +got):\n%s", diff)
			}
			checkHardening(t, s, tc.in)
		})
	}
	if got := readSecret(t, filepath.Join(secretsDir, "secrets"), "db"); got != "pw" {
		t.Errorf("projected secret db = %q, want pw", got)
	}
}

// checkHardening asserts what every replica gets whatever its inputs.
func checkHardening(t *testing.T, s *oci.Spec, in replicaSpec) {
	t.Helper()
	if s.Hostname != in.id {
		t.Errorf("hostname %q, want %q", s.Hostname, in.id)
	}
	if !s.Process.NoNewPrivileges {
		t.Error("no_new_privileges not set")
	}
	caps := s.Process.Capabilities
	for set, got := range map[string][]string{"bounding": caps.Bounding, "effective": caps.Effective, "permitted": caps.Permitted} {
		if diff := cmp.Diff(keptCaps, got); diff != "" {
			t.Errorf("%s capabilities (-want +got):\n%s", set, diff)
		}
	}
	if s.Linux.Seccomp == nil {
		t.Fatal("no seccomp profile")
	}
	if diff := cmp.Diff(seccomp.DefaultProfile(s), s.Linux.Seccomp); diff != "" {
		t.Errorf("seccomp is not containerd's default profile (-want +got):\n%s", diff)
	}
	if s.Linux.Seccomp.DefaultAction != specs.ActErrno {
		t.Errorf("seccomp default action %s, want %s", s.Linux.Seccomp.DefaultAction, specs.ActErrno)
	}
	want := specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: in.netNS}
	if !slices.Contains(s.Linux.Namespaces, want) {
		t.Errorf("namespaces %v lack %v", s.Linux.Namespaces, want)
	}
}

func TestReplicaSpecErrors(t *testing.T) {
	root := fakeRootfs(t)
	for name, in := range map[string]replicaSpec{
		"bad memory":             {fn: function.Spec{Limits: &function.Resources{Memory: "12Q"}}},
		"bad CPU":                {fn: function.Spec{Limits: &function.Resources{CPU: "lots"}}},
		"user not in the image":  {image: ocispec.ImageConfig{User: "ghost"}},
		"group not in the image": {image: ocispec.ImageConfig{User: "app:ghosts"}},
	} {
		if _, err := generate(t, root, in); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
