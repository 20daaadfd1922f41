//go:build integration

package itest_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/images"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/oci"
	"github.com/containerd/containerd/plugin"
	"github.com/containerd/containerd/remotes/docker"
	"github.com/containerd/containerd/snapshots"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/emberfaas/ember/internal/itest"
)

// TestHarness drives the whole harness the way the integration tests will:
// a private containerd, images built from source, pushed to the in-process
// registry, pulled and imported by containerd, run as tasks and torn down
// without leftovers.
func TestHarness(t *testing.T) {
	itest.RequireHost(t)
	phase := phaseTimer(t)

	ctrd, err := itest.StartContainerd(t.Context(), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logTail(t, ctrd.Log)
		}
		if err := ctrd.Stop(); err != nil {
			t.Errorf("stop containerd: %v", err)
		}
		if shims, err := ctrd.Shims(); err != nil || len(shims) > 0 {
			t.Errorf("shims after Stop: %v, %v", shims, err)
		}
	})
	phase("start containerd")

	reg, err := itest.StartRegistry()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)

	ns := itest.Namespace("itest")
	ctx := namespaces.WithNamespace(t.Context(), ns)
	echoImg, err := itest.BuildGoImage(ctx, itest.ImageOptions{
		Pkg:     itest.EchoPkg,
		Version: "v1",
		User:    itest.NobodyUser,
	})
	if err != nil {
		t.Fatal(err)
	}
	shellImg, err := itest.BuildShellImage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	phase("build images")

	echoRef, shellRef := reg.Ref("echo:v1"), reg.Ref("shell:v1")
	for ref, img := range map[string]v1.Image{echoRef: echoImg, shellRef: shellImg} {
		if err := itest.Push(ctx, img, ref); err != nil {
			t.Fatal(err)
		}
	}
	phase("push images")

	cl, err := ctrd.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })

	resolver := docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(docker.MatchLocalhost)),
	})
	pulled := make(map[string]containerd.Image)
	for _, ref := range []string{echoRef, shellRef} {
		img, err := cl.Pull(ctx, ref, containerd.WithResolver(resolver), containerd.WithPullUnpack)
		if err != nil {
			t.Fatalf("pull %s: %v", ref, err)
		}
		pulled[ref] = img
	}
	checkConfig(t, ctx, pulled[echoRef], itest.NobodyUser, []string{itest.FunctionPath})
	checkConfig(t, ctx, pulled[shellRef], "", []string{"/bin/sh", "/app/start.sh"})
	if got, want := pulled[echoRef].Target().Digest.String(), digest(t, echoImg); got != want {
		t.Errorf("pulled echo digest = %s, want %s", got, want)
	}
	phase("pull and unpack")

	// Both archive formats of `ember import`: docker save rebuilds the
	// manifest (same config), the OCI layout keeps it (same digest).
	dockerRef, ociRef := "example.com/itest/echo:docker", "example.com/itest/echo:oci"
	dockerTar, ociTar := filepath.Join(t.TempDir(), "docker.tar"), filepath.Join(t.TempDir(), "oci.tar")
	if err := itest.SaveDockerArchive(echoImg, dockerRef, dockerTar); err != nil {
		t.Fatal(err)
	}
	if err := itest.SaveOCIArchive(echoImg, ociRef, ociTar); err != nil {
		t.Fatal(err)
	}
	configName, err := echoImg.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, ref string }{{dockerTar, dockerRef}, {ociTar, ociRef}} {
		img := importArchive(t, ctx, cl, tc.path, tc.ref)
		checkConfig(t, ctx, img, itest.NobodyUser, []string{itest.FunctionPath})
		cfg, err := img.Config(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Digest.String() != configName.String() {
			t.Errorf("%s: config digest = %s, want %s", tc.ref, cfg.Digest, configName)
		}
		if tc.ref == ociRef && img.Target().Digest.String() != digest(t, echoImg) {
			t.Errorf("%s: digest = %s, want %s", tc.ref, img.Target().Digest, digest(t, echoImg))
		}
	}
	phase("import archives")

	echo := startTask(t, ctx, ctrd, cl, "echo", pulled[echoRef])
	var got itest.EchoResponse
	getJSON(t, ctx, fmt.Sprintf("http://127.0.0.1:%d/hello/world?x=1", echo.port), "posted", &got)
	want := itest.EchoResponse{Method: "POST", Path: "/hello/world", Query: "x=1", Body: "posted", Version: "v1", UID: 65534}
	if got.Method != want.Method || got.Path != want.Path || got.Query != want.Query ||
		got.Body != want.Body || got.Version != want.Version || got.UID != want.UID {
		t.Errorf("echo answered %+v, want %+v", got, want)
	}
	phase("run echo")

	// Tasks outlive their containerd; the same client reconnects.
	if err := ctrd.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := echo.task.Status(ctx); err != nil || st.Status != containerd.Running {
		t.Fatalf("echo after containerd restart: %v, %v", st, err)
	}
	getJSON(t, ctx, fmt.Sprintf("http://127.0.0.1:%d/again", echo.port), "", &got)
	phase("restart containerd")

	// echo drains and exits 0 on SIGTERM.
	if code := echo.stop(t, ctx, syscall.SIGTERM); code != 0 {
		t.Errorf("echo exit code after SIGTERM = %d, want 0", code)
	}
	for _, line := range []string{"echo starting version=v1", "echo lock written", "echo stopped"} {
		if b, _ := os.ReadFile(echo.log); !bytes.Contains(b, []byte(line)) {
			t.Errorf("echo log lacks %q:\n%s", line, b)
		}
	}
	phase("stop echo")

	shell := startTask(t, ctx, ctrd, cl, "shell", pulled[shellRef])
	base := fmt.Sprintf("http://127.0.0.1:%d", shell.port)
	if body := get(t, ctx, base+"/", ""); body != "hello from sh\n" {
		t.Errorf("shell index = %q", body)
	}
	body := get(t, ctx, base+"/cgi-bin/echo?a=b", "hi there")
	for _, line := range []string{"method=POST", "query=a=b", "body=hi there"} {
		if !strings.Contains(body, line+"\n") {
			t.Errorf("shell cgi answered %q, want a line %q", body, line)
		}
	}
	// httpd is PID 1 of its namespace without a SIGTERM handler, so only
	// SIGKILL ends it (the runtime's grace period covers this).
	if code := shell.stop(t, ctx, syscall.SIGKILL); code != 128+int(syscall.SIGKILL) {
		t.Errorf("shell exit code after SIGKILL = %d, want %d", code, 128+int(syscall.SIGKILL))
	}
	phase("run shell")

	if shims, err := ctrd.Shims(); err != nil || len(shims) > 0 {
		t.Errorf("shims after deleting every task: %v, %v", shims, err)
	}
	imgs, err := cl.ImageService().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, img := range imgs {
		var opts []images.DeleteOpt
		if i == len(imgs)-1 {
			opts = append(opts, images.SynchronousDelete()) // collect garbage once, at the end
		}
		if err := cl.ImageService().Delete(ctx, img.Name, opts...); err != nil {
			t.Fatal(err)
		}
	}
	var left []string
	if err := cl.SnapshotService(containerd.DefaultSnapshotter).Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		left = append(left, info.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("snapshots left after deleting everything: %v", left)
	}
	// Refused while the namespace still holds anything.
	if err := cl.NamespaceService().Delete(ctx, ns); err != nil {
		t.Errorf("delete namespace: %v", err)
	}
	phase("clean up")
}

// task is one running container of the self-test.
type task struct {
	container containerd.Container
	task      containerd.Task
	port      int
	log       string
}

// startTask runs img on the host network with PORT set to a free port and
// waits until the task is ready by the workload contract: the lock file in
// its root filesystem, and the port answering. A task that a failing test
// leaves behind is reaped by Containerd.Stop.
func startTask(t *testing.T, ctx context.Context, ctrd *itest.Containerd, cl *containerd.Client, id string, img containerd.Image) *task {
	t.Helper()
	port, err := itest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	c, err := cl.NewContainer(ctx, id,
		containerd.WithRuntime(plugin.RuntimeRuncV2, &options.Options{Root: ctrd.RuncRoot}),
		containerd.WithImage(img),
		containerd.WithNewSnapshot(id+"-rootfs", img),
		containerd.WithNewSpec(oci.WithImageConfig(img),
			oci.WithHostNamespace(specs.NetworkNamespace),
			oci.WithEnv([]string{fmt.Sprintf("PORT=%d", port)})))
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), id+".log")
	tk, err := c.NewTask(ctx, cio.LogFile(logPath))
	if err != nil {
		t.Fatal(err)
	}
	if err := tk.Start(ctx); err != nil {
		t.Fatal(err)
	}

	lock := fmt.Sprintf("/proc/%d/root%s", tk.Pid(), itest.LockPath)
	health := fmt.Sprintf("http://127.0.0.1:%d/", port)
	waitFor(t, ctx, id+" ready", func() error {
		if _, err := os.Stat(lock); err != nil {
			return err
		}
		resp, err := http.Get(health)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	return &task{container: c, task: tk, port: port, log: logPath}
}

// stop signals the task, waits for its exit and deletes it with its
// container and snapshot.
func (tk *task) stop(t *testing.T, ctx context.Context, sig syscall.Signal) int {
	t.Helper()
	exitCh, err := tk.task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tk.task.Kill(ctx, sig); err != nil {
		t.Fatal(err)
	}
	var st containerd.ExitStatus
	select {
	case st = <-exitCh:
	case <-time.After(10 * time.Second):
		t.Fatalf("task did not exit within 10s of %v", sig)
	}
	if _, err := tk.task.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tk.container.Delete(ctx, containerd.WithSnapshotCleanup); err != nil {
		t.Fatal(err)
	}
	return int(st.ExitCode())
}

func importArchive(t *testing.T, ctx context.Context, cl *containerd.Client, path, ref string) containerd.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	imgs, err := cl.Import(ctx, f)
	if err != nil {
		t.Fatalf("import %s: %v", path, err)
	}
	var names []string
	for _, img := range imgs {
		names = append(names, img.Name)
	}
	i := slices.Index(names, ref)
	if i < 0 {
		t.Fatalf("import %s named %v, want %s", path, names, ref)
	}
	img := containerd.NewImage(cl, imgs[i])
	if err := img.Unpack(ctx, containerd.DefaultSnapshotter); err != nil {
		t.Fatalf("unpack %s: %v", ref, err)
	}
	return img
}

func checkConfig(t *testing.T, ctx context.Context, img containerd.Image, user string, entrypoint []string) {
	t.Helper()
	spec, err := img.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Config.User != user || !slices.Equal(spec.Config.Entrypoint, entrypoint) {
		t.Errorf("%s: user %q entrypoint %q, want %q %q", img.Name(), spec.Config.User, spec.Config.Entrypoint, user, entrypoint)
	}
	if _, ok := spec.Config.ExposedPorts["8080/tcp"]; !ok {
		t.Errorf("%s: exposed ports %v lack 8080/tcp", img.Name(), spec.Config.ExposedPorts)
	}
}

// TestStopReapsLeftovers leaves a task running, as a failing test would,
// and checks that Stop kills it and removes its mount and cgroup. The long
// directory also makes StartContainerd move its socket under /tmp.
func TestStopReapsLeftovers(t *testing.T) {
	itest.RequireHost(t)
	dir := filepath.Join(t.TempDir(), strings.Repeat("long-directory-name-", 5))
	var log bytes.Buffer
	ctrd, err := itest.StartContainerd(t.Context(), dir, &log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logTail(t, ctrd.Log)
		}
		ctrd.Stop()
	})
	if strings.HasPrefix(ctrd.Socket, dir) {
		t.Errorf("socket %s left under the long directory", ctrd.Socket)
	}

	img, err := itest.BuildShellImage(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "shell.tar")
	if err := itest.SaveOCIArchive(img, "example.com/itest/shell:v1", archive); err != nil {
		t.Fatal(err)
	}
	cl, err := ctrd.Client(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ns := itest.Namespace("itest-reap")
	ctx := namespaces.WithNamespace(t.Context(), ns)
	tk := startTask(t, ctx, ctrd, cl, "leftover", importArchive(t, ctx, cl, archive, "example.com/itest/shell:v1"))
	pid := int(tk.task.Pid())
	cgroup := "/sys/fs/cgroup/pids/" + ns + "/leftover"
	if _, err := os.Stat(cgroup); err != nil {
		t.Logf("no cgroup to check: %v", err)
		cgroup = ""
	}
	addr, err := os.ReadFile(filepath.Join(ctrd.State, "io.containerd.runtime.v2.task", ns, "leftover", "address"))
	if err != nil {
		t.Fatal(err)
	}
	shimSocket := strings.TrimPrefix(strings.TrimSpace(string(addr)), "unix://")
	cl.Close()

	if err := ctrd.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := ctrd.Stop(); err != nil {
		t.Errorf("second stop: %v", err)
	}
	if !strings.Contains(log.String(), "itest: reaping leftover shim") {
		t.Errorf("Stop did not say it reaped the shim; log:\n%s", log.String())
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !bytes.Contains(b, []byte(") Z ")) {
		t.Errorf("task process %d survived Stop: %s", pid, b)
	}
	if shims, err := ctrd.Shims(); err != nil || len(shims) > 0 {
		t.Errorf("shims after Stop: %v, %v", shims, err)
	}
	if mounts, err := os.ReadFile("/proc/self/mountinfo"); err != nil || bytes.Contains(mounts, []byte(dir)) {
		t.Errorf("mounts under %s after Stop (%v):\n%s", dir, err, mounts)
	}
	for _, d := range []string{cgroup, filepath.Dir(cgroup)} {
		if _, err := os.Stat(d); cgroup != "" && err == nil {
			t.Errorf("cgroup %s left after Stop", d)
		}
	}
	if _, err := os.Stat(shimSocket); err == nil {
		t.Errorf("shim socket %s left after Stop", shimSocket)
	}
	if _, err := os.Stat(filepath.Dir(ctrd.Socket)); err == nil {
		t.Errorf("socket directory %s left after Stop", filepath.Dir(ctrd.Socket))
	}
}

// TestStartContainerdFailure checks that a daemon that cannot start is
// reported with the end of its log, where the reason is.
func TestStartContainerdFailure(t *testing.T) {
	itest.RequireHost(t)
	dir := t.TempDir()
	// A non-empty directory where the socket goes: containerd cannot listen.
	if err := os.MkdirAll(filepath.Join(dir, "containerd.sock", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctrd, err := itest.StartContainerd(t.Context(), dir, nil)
	if err == nil {
		ctrd.Stop()
		t.Fatal("containerd started without a socket")
	}
	if !strings.Contains(err.Error(), "containerd log (tail)") || !strings.Contains(err.Error(), "containerd.sock") {
		t.Errorf("error lacks the log tail naming the socket: %v", err)
	}
}

// TestBuildImage checks the layer that every function depends on: a
// world-writable /tmp for the lock, a root-owned executable, the user in
// /etc/passwd, and the same digest when built twice.
func TestBuildImage(t *testing.T) {
	opts := itest.ImageOptions{Pkg: itest.EchoPkg, Version: "v7", User: "1234:5678",
		ExtraFiles: map[string]itest.File{"/etc/motd": {Data: []byte("hi")}}}
	img, err := itest.BuildGoImage(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	again, err := itest.BuildGoImage(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := digest(t, img), digest(t, again); a != b {
		t.Errorf("two builds differ: %s, %s", a, b)
	}

	files := layerFiles(t, img)
	for _, c := range []struct {
		name string
		typ  byte
		mode int64
	}{
		{"tmp/", tar.TypeDir, 0o1777},
		{"fn", tar.TypeReg, 0o755},
		{"etc/passwd", tar.TypeReg, 0o644},
		{"etc/motd", tar.TypeReg, 0o644},
	} {
		h, ok := files[c.name]
		if !ok {
			t.Errorf("layer lacks %s", c.name)
			continue
		}
		if h.Typeflag != c.typ || h.Mode != c.mode || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: type %c mode %o owner %d:%d, want type %c mode %o owner 0:0", c.name, h.Typeflag, h.Mode, h.Uid, h.Gid, c.typ, c.mode)
		}
	}
	if p := string(files["etc/passwd"].data); !strings.Contains(p, ":1234:5678:") {
		t.Errorf("/etc/passwd lacks the user:\n%s", p)
	}

	shell, err := itest.BuildShellImage(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	files = layerFiles(t, shell)
	if h := files["bin/httpd"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "busybox" {
		t.Errorf("bin/httpd = %+v, want a symlink to busybox", h)
	}
	if h := files["www/cgi-bin/echo"]; h == nil || h.Mode != 0o755 {
		t.Errorf("www/cgi-bin/echo = %+v, want mode 755", h)
	}
}

// TestRegistryDown checks that SetDown refuses connections and that the
// content survives the outage.
func TestRegistryDown(t *testing.T) {
	reg, err := itest.StartRegistry()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	img, err := itest.BuildShellImage(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Ref("shell:v1")
	if err := itest.Push(t.Context(), img, ref); err != nil {
		t.Fatal(err)
	}
	if err := reg.SetDown(true); err != nil {
		t.Fatal(err)
	}
	if reg.Up(t.Context()) {
		t.Error("registry answers while down")
	}
	if err := itest.Push(t.Context(), img, reg.Ref("other:v1")); err == nil {
		t.Error("push to a registry that is down succeeded")
	}
	if err := reg.SetDown(false); err != nil {
		t.Fatal(err)
	}
	if !reg.Up(t.Context()) {
		t.Error("registry does not answer after coming back")
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(r, remote.WithContext(t.Context()))
	if err != nil {
		t.Fatalf("image lost in the outage: %v", err)
	}
	if desc.Digest.String() != digest(t, img) {
		t.Errorf("digest after outage = %s, want %s", desc.Digest, digest(t, img))
	}
}

type tarEntry struct {
	*tar.Header
	data []byte
}

func layerFiles(t *testing.T, img v1.Image) map[string]*tarEntry {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v; want 1", len(layers), err)
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	zr, err := gzip.NewReader(rc)
	if err != nil {
		t.Fatal(err)
	}
	files := make(map[string]*tarEntry)
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = &tarEntry{Header: h, data: b}
	}
}

func digest(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// get sends a GET, or a POST when body is not empty, and returns the body of
// a 200 answer.
func get(t *testing.T, ctx context.Context, url, body string) string {
	t.Helper()
	method := http.MethodGet
	if body != "" {
		method = http.MethodPost
	}
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %s: %s", method, url, resp.Status, b)
	}
	return string(b)
}

func getJSON(t *testing.T, ctx context.Context, url, body string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(get(t, ctx, url, body)), v); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it returns nil, for at most 10 seconds.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		err := cond()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// phaseTimer logs how long each phase of a test took, for the harness's
// own cost to stay visible.
func phaseTimer(t *testing.T) func(string) {
	start := time.Now()
	last := start
	return func(name string) {
		now := time.Now()
		t.Logf("%-20s %6dms (total %dms)", name, now.Sub(last).Milliseconds(), now.Sub(start).Milliseconds())
		last = now
	}
}

func logTail(t *testing.T, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	if len(b) > 8<<10 {
		b = b[len(b)-8<<10:]
	}
	t.Logf("containerd log tail:\n%s", b)
}
