//go:build integration

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/snapshots"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/emberfaas/ember/client"
	"github.com/emberfaas/ember/internal/itest"
)

// env is what every end-to-end test shares: the ember binary, one private
// containerd, and a registry on 127.0.0.1 holding the test images. Each
// test runs its own daemons with their own namespace, bridge, subnet and
// directories.
type env struct {
	bin        string
	containerd *itest.Containerd
	registry   *itest.Registry
	// Images pushed to the registry.
	echo, echo2, shell string
	echoImg            v1.Image
}

var (
	shared     *env
	sharedErr  error
	sharedOnce sync.Once
	cleanups   []func()
	subnetSeq  int
	subnetMu   sync.Mutex
)

func TestMain(m *testing.M) {
	code := m.Run()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	os.Exit(code)
}

// setup returns the shared environment, building it on first use.
func setup(t *testing.T) *env {
	t.Helper()
	itest.RequireHost(t)
	sharedOnce.Do(func() { shared, sharedErr = buildEnv() })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

func buildEnv() (*env, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "ember-e2e-")
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, func() { os.RemoveAll(dir) })
	root, err := itest.ModuleRoot(ctx)
	if err != nil {
		return nil, err
	}
	e := &env{bin: filepath.Join(dir, "ember")}
	build := exec.Command("go", "build", "-o", e.bin, "./cmd/ember")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build ember: %v\n%s", err, out)
	}
	// The probe binary is bind-mounted into containers: any user must be
	// able to run it.
	os.Chmod(dir, 0o755)
	e.containerd, err = itest.StartContainerd(ctx, filepath.Join(dir, "containerd"), nil)
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, func() { e.containerd.Stop() })
	e.registry, err = itest.StartRegistry()
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, e.registry.Close)

	echo, err := itest.BuildGoImage(ctx, itest.ImageOptions{Pkg: itest.EchoPkg, Version: "v1", User: "65534:65534"})
	if err != nil {
		return nil, err
	}
	echo2, err := itest.BuildGoImage(ctx, itest.ImageOptions{Pkg: itest.EchoPkg, Version: "v2", User: "65534:65534"})
	if err != nil {
		return nil, err
	}
	shell, err := itest.BuildShellImage(ctx)
	if err != nil {
		return nil, err
	}
	e.echo, e.echo2, e.shell = e.registry.Ref("echo:v1"), e.registry.Ref("echo:v2"), e.registry.Ref("shell:v1")
	if err := itest.Push(ctx, echo, e.echo); err != nil {
		return nil, err
	}
	if err := itest.Push(ctx, echo2, e.echo2); err != nil {
		return nil, err
	}
	if err := itest.Push(ctx, shell, e.shell); err != nil {
		return nil, err
	}
	e.echoImg = echo
	return e, nil
}

// daemon is one ember daemon run as a separate process, as systemd would
// (itest.Daemon), with what the tests add: a client, the CLI, captured
// logs, and checks that nothing is left behind.
type daemon struct {
	*itest.Daemon
	t      *testing.T
	e      *env
	dir    string // shorthands for the itest.Daemon's fields
	ns     string
	bridge string
	socket string
	listen string
	logs   *lockedBuffer
	client *client.Client
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newDaemon starts a daemon with its own namespace, bridge, subnet, state
// dir, socket and port, fast health checks and debug logs; extra flags
// come last. Cleanup removes its functions, stops it, and leaves the host
// as it was.
func newDaemon(t *testing.T, e *env, extra ...string) *daemon {
	t.Helper()
	subnetMu.Lock()
	subnetSeq++
	seq := subnetSeq
	subnetMu.Unlock()
	dir, err := os.MkdirTemp("", "ember-d-")
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	var out io.Writer = logs
	id, err := itest.NewDaemon(itest.DaemonOptions{
		Bin: e.bin, Containerd: e.containerd, Dir: dir,
		NamespacePrefix: "e2e-", BridgePrefix: "embe",
		Subnet: fmt.Sprintf("10.%d.%d.0/24", 200+os.Getpid()%40, seq%250),
		Extra:  append([]string{"--health-interval", "500ms", "--drain-timeout", "5s", "--log-level", "debug"}, extra...),
	})
	if err != nil {
		t.Fatal(err)
	}
	if logDir := os.Getenv("EMBER_E2E_LOGS"); logDir != "" {
		// For debugging hangs: the log survives a test binary's timeout.
		if f, err := os.OpenFile(filepath.Join(logDir, id.Namespace+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
			out = io.MultiWriter(logs, f)
		}
	}
	id.Output = out
	d := &daemon{Daemon: id, t: t, e: e, dir: dir, ns: id.Namespace, bridge: id.Bridge,
		socket: id.Socket, listen: id.Listen, logs: logs, client: client.New(id.Socket)}
	t.Cleanup(d.teardown)
	d.start()
	return d
}

// start (re)starts the process and waits until it serves.
func (d *daemon) start() {
	d.t.Helper()
	if err := d.Start(); err != nil {
		d.t.Fatal(err)
	}
	if err := d.WaitHealthy(context.Background(), 30*time.Second); err != nil {
		d.t.Fatalf("%v:\n%s", err, d.logs)
	}
}

func (d *daemon) kill9()        { d.Kill9() }
func (d *daemon) running() bool { return d.Running() }

func (d *daemon) teardown() {
	t := d.t
	if d.running() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if svcs, err := d.client.Services(ctx); err == nil {
			for _, s := range svcs {
				if err := d.client.ServiceDown(ctx, s.Spec.Name, true); err != nil {
					t.Errorf("cleanup: service down %s: %v", s.Spec.Name, err)
				}
			}
		}
		nss, err := d.client.Namespaces(ctx)
		if err != nil {
			nss = []string{""}
		}
		for _, ns := range nss {
			c := client.New(d.socket).WithNamespace(ns)
			fns, err := c.List(ctx)
			if err == nil {
				for _, f := range fns {
					if err := c.Remove(ctx, f.Name); err != nil {
						t.Errorf("cleanup: remove %s.%s: %v", f.Name, ns, err)
					}
				}
			}
		}
		cancel()
	}
	if err := d.Cleanup(context.Background()); err != nil {
		t.Errorf("cleanup: %v", err)
	}
	if t.Failed() {
		t.Logf("daemon log:\n%s", d.logs)
	}
}

// faasCLI returns a runner of the real faas-cli, logged in to d with its
// admin password, in a config directory of its own; it fails the test on
// error and returns the output.
func faasCLI(t *testing.T, d *daemon) func(args ...string) string {
	bin := itest.OpenFaaSTool(t, "faas-cli")
	env := itest.ProcessEnv("OPENFAAS_URL="+d.url(""), "OPENFAAS_CONFIG="+t.TempDir())
	pw, err := os.ReadFile(filepath.Join(d.dir, "state", "basic-auth-password"))
	if err != nil {
		t.Fatal(err)
	}
	run := func(stdin io.Reader, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env, cmd.Stdin = env, stdin
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("faas-cli %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run(strings.NewReader(strings.TrimSpace(string(pw))), "login", "-u", "admin", "--password-stdin")
	return func(args ...string) string { t.Helper(); return run(nil, args...) }
}

// ember runs the CLI against this daemon.
func (d *daemon) ember(stdin io.Reader, args ...string) (stdout, stderr string, err error) {
	cmd := exec.Command(d.e.bin, args...)
	cmd.Env = itest.ProcessEnv("EMBER_SOCKET=" + d.socket)
	var o, e bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// mustEmber runs the CLI and fails the test on error.
func (d *daemon) mustEmber(args ...string) string {
	d.t.Helper()
	out, errOut, err := d.ember(nil, args...)
	if err != nil {
		d.t.Fatalf("ember %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func (d *daemon) url(path string) string { return "http://" + d.listen + path }

// call sends one request through the gateway and decodes the echo reply.
func (d *daemon) call(method, path, body string) (itest.EchoResponse, int, error) {
	req, err := http.NewRequest(method, d.url(path), strings.NewReader(body))
	if err != nil {
		return itest.EchoResponse{}, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return itest.EchoResponse{}, 0, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var er itest.EchoResponse
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(data, &er); err != nil {
			return er, resp.StatusCode, fmt.Errorf("decode %q: %w", data, err)
		}
	} else {
		err = fmt.Errorf("status %d: %s", resp.StatusCode, data)
	}
	return er, resp.StatusCode, err
}

// leftovers lists everything of this daemon's that should be gone after
// its functions are removed: containers, tasks, active snapshots, CNI
// allocations and cache entries, network namespaces, iptables rules naming
// its network or subnet, log and replica files.
func (d *daemon) leftovers() []string {
	d.t.Helper()
	ctx := context.Background()
	cl, err := d.e.containerd.Client(ctx)
	if err != nil {
		d.t.Fatal(err)
	}
	defer cl.Close()
	nctx := namespaces.WithNamespace(ctx, d.ns)
	var left []string
	cs, err := cl.Containers(nctx)
	if err != nil {
		d.t.Fatal(err)
	}
	for _, c := range cs {
		left = append(left, "container "+c.ID())
	}
	tasks, err := cl.TaskService().List(nctx, nil)
	if err == nil {
		for _, tk := range tasks.Tasks {
			left = append(left, "task "+tk.ID)
		}
	}
	cl.SnapshotService("overlayfs").Walk(nctx, func(_ context.Context, info snapshots.Info) error {
		if info.Kind == snapshots.KindActive {
			left = append(left, "snapshot "+info.Name)
		}
		return nil
	})
	allocDir := filepath.Join(d.dir, "state", "cni", "networks", "ember-"+d.bridge)
	ents, _ := os.ReadDir(allocDir)
	for _, e := range ents {
		if n := e.Name(); n != "lock" && !strings.HasPrefix(n, "last_reserved_ip") {
			left = append(left, "ip allocation "+n)
		}
	}
	// libcni's result cache: one file per attachment, NAME-ID-IFNAME.
	cacheEnts, _ := os.ReadDir(filepath.Join(d.dir, "state", "cni", "cache", "results"))
	for _, e := range cacheEnts {
		left = append(left, "cni cache "+e.Name())
	}
	nsEnts, _ := os.ReadDir(filepath.Join(d.dir, "run", "netns-"+d.bridge))
	for _, e := range nsEnts {
		left = append(left, "netns "+e.Name())
	}
	for _, table := range []string{"nat", "filter"} {
		out, _ := exec.Command("iptables", "-t", table, "-S").CombinedOutput()
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "ember-"+d.bridge) || strings.Contains(line, d.Subnet) {
				left = append(left, "iptables "+table+": "+line)
			}
		}
	}
	for _, dir := range []string{filepath.Join(d.dir, "state", "logs"), filepath.Join(d.dir, "run", "output")} {
		filepath.WalkDir(dir, func(p string, de os.DirEntry, err error) error {
			if err == nil && !de.IsDir() {
				left = append(left, "log "+p)
			}
			return nil
		})
	}
	rents, _ := os.ReadDir(filepath.Join(d.dir, "state", "replicas"))
	for _, e := range rents {
		left = append(left, "replica files "+e.Name())
	}
	return left
}

func (d *daemon) assertNoLeftovers() {
	d.t.Helper()
	if left := d.leftovers(); len(left) > 0 {
		d.t.Errorf("left behind:\n  %s", strings.Join(left, "\n  "))
	}
}

func nsCtx(ctx context.Context, ns string) context.Context { return namespaces.WithNamespace(ctx, ns) }

var withKill = containerd.WithProcessKill
