package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/namespaces"

	"github.com/emberfaas/ember/api"
	"github.com/emberfaas/ember/client"
	"github.com/emberfaas/ember/function"
	"github.com/emberfaas/ember/internal/itest"
	"github.com/emberfaas/ember/network"
)

// daemon is one `ember daemon` process, run as systemd would, with its own
// containerd namespace, bridge, subnet, state and run directories, socket
// and port. Its flags are the defaults otherwise (health interval 5s, wake
// timeout 30s, drain timeout 30s).
type daemon struct {
	e       *env
	name    string
	dir     string
	ns      string
	bridge  string
	subnet  string
	socket  string
	listen  string
	logPath string
	api     *client.Client

	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	torn   bool
}

// startDaemon starts a daemon and waits until it answers /healthz. Its
// teardown is registered with env, so it runs even when the caller fails;
// callers that are done with it earlier call teardown themselves.
func (e *env) startDaemon(ctx context.Context, name string) (*daemon, error) {
	e.seq++
	port, err := itest.FreePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(e.dir, "d-"+name+"-")
	if err != nil {
		return nil, err
	}
	id := randHex(3)
	d := &daemon{
		e:    e,
		name: name,
		dir:  dir,
		ns:   "bench-" + name + "-" + id,
		// "bnch" keeps clear of the integration tests' "embe" bridges and
		// their subnets (10.200-239.x), which may run on the same host.
		bridge:  "bnch" + id,
		subnet:  fmt.Sprintf("10.%d.%d.0/24", 240+os.Getpid()%15, e.seq%250),
		socket:  filepath.Join(dir, "ember.sock"),
		listen:  fmt.Sprintf("127.0.0.1:%d", port),
		logPath: filepath.Join(e.logDir, fmt.Sprintf("daemon-%d-%s.log", e.seq, name)),
	}
	d.api = client.New(d.socket)
	e.cleanups = append(e.cleanups, d.teardown)
	if err := d.spawn(); err != nil {
		return nil, err
	}
	if err := d.waitHealthy(ctx, 30*time.Second); err != nil {
		return nil, err
	}
	return d, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (d *daemon) args() []string {
	return []string{"daemon",
		"--socket", d.socket,
		"--listen", d.listen,
		"--state-dir", filepath.Join(d.dir, "state"),
		"--run-dir", filepath.Join(d.dir, "run"),
		"--containerd-socket", d.e.ctrd.Socket,
		"--runc-root", d.e.ctrd.RuncRoot,
		"--namespace", d.ns,
		"--bridge", d.bridge,
		"--subnet", d.subnet,
		"--auth=false",
	}
}

// spawn starts the daemon process without waiting for it to serve.
func (d *daemon) spawn() error {
	logf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own copy
	cmd := exec.Command(d.e.bin, d.args()...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// A ^C reaches the bench, which then removes functions before it
		// stops the daemon, instead of reaching both at once.
		Setpgid: true,
		// If the bench itself is killed, so is the daemon.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start daemon %s: %w", d.name, err)
	}
	exited := make(chan struct{})
	d.cmd, d.exited = cmd, exited
	go func() {
		_ = cmd.Wait() // a SIGKILL is how the recovery scenario ends it
		close(exited)
	}()
	return nil
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

func (d *daemon) running() bool {
	if d.cmd == nil {
		return false
	}
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// waitHealthy polls /healthz until it answers 200.
func (d *daemon) waitHealthy(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := &http.Client{Timeout: time.Second}
	for {
		if err := get(ctx, hc, d.url("/healthz")); err == nil {
			return nil
		}
		select {
		case <-d.exited:
			return fmt.Errorf("daemon %s exited during start%s", d.name, d.logTail())
		case <-ctx.Done():
			return fmt.Errorf("daemon %s not healthy after %s%s", d.name, timeout, d.logTail())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// kill9 kills the daemon the hard way; its tasks keep running.
func (d *daemon) kill9() {
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.exited
}

// stop sends SIGTERM and waits (SIGKILL after 40s).
func (d *daemon) stop() {
	if !d.running() {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(40 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
}

// teardown removes the daemon's functions, stops it, and removes whatever
// it left in containerd and on the host (bridge, masquerade rules, network
// namespaces, files), as the integration tests' harness does. It runs
// once; later calls do nothing.
func (d *daemon) teardown() error {
	if d.torn {
		return nil
	}
	d.torn = true
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var errs []error
	if d.running() {
		if fns, err := d.api.List(ctx); err == nil {
			names := make([]string, len(fns))
			for i, f := range fns {
				names[i] = f.Name
			}
			errs = append(errs, parallel(ctx, 8, names, func(ctx context.Context, name string) error {
				if err := d.api.Remove(ctx, name); err != nil {
					return fmt.Errorf("daemon %s: remove %s: %w", d.name, name, err)
				}
				return nil
			}))
		}
		d.stop()
	}
	if cl, err := d.e.ctrd.Client(ctx); err == nil {
		nctx := namespaces.WithNamespace(ctx, d.ns)
		cs, _ := cl.Containers(nctx)
		for _, c := range cs {
			if task, err := c.Task(nctx, nil); err == nil {
				_, _ = task.Delete(nctx, containerd.WithProcessKill)
			}
			if err := c.Delete(nctx, containerd.WithSnapshotCleanup); err != nil {
				errs = append(errs, fmt.Errorf("daemon %s: delete container %s: %w", d.name, c.ID(), err))
			}
		}
		cl.Close()
	}
	quiet := slog.New(slog.DiscardHandler)
	n, err := network.New(d.netConfig(), quiet)
	if err == nil {
		err = n.Teardown(ctx)
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("daemon %s: network: %w", d.name, err))
	}
	errs = append(errs, os.RemoveAll(d.dir))
	return errors.Join(errs...)
}

// netConfig is the network the daemon made, for Teardown.
func (d *daemon) netConfig() network.Config {
	return network.Config{
		Name:     "ember-" + d.bridge,
		Bridge:   d.bridge,
		Subnet:   d.subnet,
		BinDirs:  []string{"/opt/cni/bin", itest.CNIPluginDir},
		StateDir: filepath.Join(d.dir, "state", "cni"),
		NetNSDir: filepath.Join(d.dir, "run", "netns-"+d.bridge),
	}
}

// logTail returns the end of the daemon's log, formatted to follow an
// error.
func (d *daemon) logTail() string {
	b, err := os.ReadFile(d.logPath)
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 4<<10 {
		b = b[len(b)-4<<10:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return "\ndaemon log (tail):\n" + strings.TrimRight(string(b), "\n")
}

func (d *daemon) url(path string) string { return "http://" + d.listen + path }

// fnURL is a function's URL through the gateway.
func (d *daemon) fnURL(name, path string) string { return d.url("/function/" + name + path) }

// deploy deploys image as name and waits until a replica is ready, as
// `ember deploy` does.
func (d *daemon) deploy(ctx context.Context, name, image string, labels map[string]string) error {
	dep := api.FunctionDeployment{Service: name, Image: image}
	if labels != nil {
		dep.Labels = &labels
	}
	if err := d.api.Deploy(ctx, dep, 2*time.Minute); err != nil {
		return fmt.Errorf("deploy %s: %w", name, err)
	}
	return nil
}

// waitFor polls describe every poll until cond holds.
func (d *daemon) waitFor(ctx context.Context, name string, timeout, poll time.Duration, what string, cond func(api.FunctionStatus) bool) (api.FunctionStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last api.FunctionStatus
	var lastErr error
	for {
		f, err := d.api.Describe(ctx, name)
		if err == nil {
			if cond(f) {
				return f, nil
			}
			last, lastErr = f, nil
		} else if ctx.Err() == nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("%s not %s within %s: %s%v", name, what, timeout, summary(last), lastErr)
		case <-time.After(poll):
		}
	}
}

// summary describes a function's replicas for an error message.
func summary(f api.FunctionStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "desired %d, replicas [", f.Replicas)
	for i, r := range f.Instances {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s:%s", r.ID, r.State)
		if r.Message != "" {
			fmt.Fprintf(&b, "(%s)", r.Message)
		}
	}
	b.WriteString("] ")
	return b.String()
}

func countState(f api.FunctionStatus, st function.State) int {
	n := 0
	for _, r := range f.Instances {
		if r.State == st {
			n++
		}
	}
	return n
}

// onlyState is a waitFor condition: exactly n replicas, all in state st
// and with no message (for "zero": parking has finished).
func onlyState(n int, st function.State) func(api.FunctionStatus) bool {
	return func(f api.FunctionStatus) bool {
		if len(f.Instances) != n {
			return false
		}
		for _, r := range f.Instances {
			if r.State != st || (st == function.StateZero && r.Message != "") {
				return false
			}
		}
		return true
	}
}

// parallel runs do for each item, at most n at a time, and joins the
// errors.
func parallel[T any](ctx context.Context, n int, items []T, do func(context.Context, T) error) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex // guards errs
		errs []error
	)
	sem := make(chan struct{}, n)
	for _, it := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return errors.Join(append(errs, ctx.Err())...)
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := do(ctx, it); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
