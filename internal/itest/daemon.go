package itest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/namespaces"

	"github.com/emberfaas/ember/network"
)

// DaemonOptions describe an `ember daemon` process for a test or a
// benchmark.
type DaemonOptions struct {
	// Bin is the ember binary; Containerd the daemon it uses.
	Bin        string
	Containerd *Containerd
	// Dir holds its state and run directories and its socket; it is
	// removed by Cleanup.
	Dir string
	// NamespacePrefix and BridgePrefix get a random suffix: namespaces
	// and bridges never collide between runs. A bridge name is at most 15
	// characters, so BridgePrefix is at most 9.
	NamespacePrefix, BridgePrefix string
	// Subnet is the function network, e.g. 10.200.1.0/24.
	Subnet string
	// Extra flags follow the ones Daemon sets (a later flag wins).
	Extra []string
	// Output receives the daemon's stdout and stderr.
	Output io.Writer
	// SysProcAttr, if set, is used for the process.
	SysProcAttr *syscall.SysProcAttr
}

// Daemon is one `ember daemon` process, run as systemd would: its own
// containerd namespace, bridge, subnet, state and run directories, socket
// and port, and authentication off.
type Daemon struct {
	DaemonOptions
	Namespace, Bridge string
	Socket, Listen    string

	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
}

// NewDaemon names a daemon and picks its port; Start runs it.
func NewDaemon(o DaemonOptions) (*Daemon, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	var b [3]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	return &Daemon{
		DaemonOptions: o,
		Namespace:     o.NamespacePrefix + id,
		Bridge:        o.BridgePrefix + id,
		Socket:        filepath.Join(o.Dir, "ember.sock"),
		Listen:        fmt.Sprintf("127.0.0.1:%d", port),
	}, nil
}

// Args are the daemon's command-line arguments.
func (d *Daemon) Args() []string {
	return append([]string{"daemon",
		"--socket", d.Socket,
		"--listen", d.Listen,
		"--state-dir", filepath.Join(d.Dir, "state"),
		"--run-dir", filepath.Join(d.Dir, "run"),
		"--containerd-socket", d.Containerd.Socket,
		"--runc-root", d.Containerd.RuncRoot,
		"--namespace", d.Namespace,
		"--bridge", d.Bridge,
		"--subnet", d.Subnet,
		"--auth=false",
	}, d.Extra...)
}

// Flag is the value of a daemon flag on the command line the process was
// last started with (before Start: the one it would get), the last one
// given winning as it does for the daemon; ok is false when the flag is
// not on it.
func (d *Daemon) Flag(name string) (value string, ok bool) {
	args := d.Args()
	if d.cmd != nil {
		args = d.cmd.Args[1:]
	}
	return FlagValue(args, name)
}

// FlagValue finds --name VALUE or --name=VALUE in args, the last one
// winning.
func FlagValue(args []string, name string) (value string, ok bool) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--"+name && i+1 < len(args):
			value, ok = args[i+1], true
			i++
		case strings.HasPrefix(a, "--"+name+"="):
			value, ok = strings.TrimPrefix(a, "--"+name+"="), true
		}
	}
	return value, ok
}

// ProcessEnv is the environment of every process the harness starts:
// ember daemons and the CLI, containerd (and through it the shims and
// runc), faas-cli. It is PATH, which they search for runc, the shim,
// iptables and the CNI plugins, then extra, and nothing else of the
// caller's: EMBER_* would set daemon and CLI flags behind the test's
// back, *_PROXY would send pulls elsewhere, OPENFAAS_* would point
// faas-cli at another gateway, GODEBUG, GOMAXPROCS and GOGC would change
// the daemon under the numbers the benchmarks print.
func ProcessEnv(extra ...string) []string {
	return append([]string{"PATH=" + os.Getenv("PATH")}, extra...)
}

// Start starts the process without waiting for it to serve, in
// ProcessEnv. It may be called again after the process ended (a restart).
func (d *Daemon) Start() error {
	cmd := exec.Command(d.Bin, d.Args()...)
	cmd.Env = ProcessEnv()
	cmd.Stdout, cmd.Stderr = d.Output, d.Output
	cmd.SysProcAttr = d.SysProcAttr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start ember daemon: %w", err)
	}
	exited := make(chan struct{})
	d.cmd, d.exited = cmd, exited
	go func() {
		_ = cmd.Wait() // SIGKILL is one way tests end it
		close(exited)
	}()
	return nil
}

// WaitHealthy polls /healthz until it answers 200.
func (d *Daemon) WaitHealthy(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := &http.Client{Timeout: time.Second}
	for {
		if resp, err := hc.Get(d.URL("/healthz")); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-d.exited:
			return errors.New("ember daemon exited during start")
		case <-ctx.Done():
			return fmt.Errorf("ember daemon not healthy after %s", timeout)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// URL is an address on the daemon's TCP listener.
func (d *Daemon) URL(path string) string { return "http://" + d.Listen + path }

// Pid is the running process's.
func (d *Daemon) Pid() int { return d.cmd.Process.Pid }

// Running reports whether the process runs.
func (d *Daemon) Running() bool {
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

// Kill9 kills the daemon the hard way; its tasks keep running.
func (d *Daemon) Kill9() {
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.exited
}

// Stop sends SIGTERM and waits, SIGKILL after 40s.
func (d *Daemon) Stop() {
	if !d.Running() {
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

// NetConfig is the network the daemon made.
func (d *Daemon) NetConfig() network.Config {
	return network.Config{
		Name:     "ember-" + d.Bridge,
		Bridge:   d.Bridge,
		Subnet:   d.Subnet,
		BinDirs:  []string{"/opt/cni/bin", CNIPluginDir},
		StateDir: filepath.Join(d.Dir, "state", "cni"),
		NetNSDir: filepath.Join(d.Dir, "run", "netns-"+d.Bridge),
	}
}

// Cleanup stops the daemon and removes whatever it left, whatever the test
// did: containers and tasks in its namespace, its bridge, masquerade
// rules and network namespaces, its directory, and the empty cgroup runc
// leaves for the namespace. Remove the functions first to test that ember
// cleans up itself.
func (d *Daemon) Cleanup(ctx context.Context) error {
	d.Stop()
	var errs []error
	if cl, err := d.Containerd.Client(ctx); err == nil {
		nctx := namespaces.WithNamespace(ctx, d.Namespace)
		cs, _ := cl.Containers(nctx)
		for _, c := range cs {
			if task, err := c.Task(nctx, nil); err == nil {
				_, _ = task.Delete(nctx, containerd.WithProcessKill)
			}
			if err := c.Delete(nctx, containerd.WithSnapshotCleanup); err != nil {
				errs = append(errs, fmt.Errorf("delete container %s: %w", c.ID(), err))
			}
		}
		cl.Close()
	}
	n, err := network.New(d.NetConfig(), slog.New(slog.DiscardHandler))
	if err == nil {
		err = n.Teardown(ctx)
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("network: %w", err))
	}
	errs = append(errs, os.RemoveAll(d.Dir))
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + d.Namespace)
	dirs2, _ := filepath.Glob("/sys/fs/cgroup/" + d.Namespace)
	for _, dir := range append(dirs, dirs2...) {
		os.Remove(dir) // only empty ones go
	}
	return errors.Join(errs...)
}
