package itest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd"
)

// Host paths the integration tests use.
const (
	ContainerdBinary = "/usr/bin/containerd"
	CNIPluginDir     = "/usr/lib/cni"
	CNIBridgePlugin  = CNIPluginDir + "/bridge"
)

const (
	// maxSocketPath leaves room under the kernel's 108-byte sun_path for
	// the ".ttrpc" socket that containerd puts beside the gRPC one.
	maxSocketPath = 100
	startTimeout  = 20 * time.Second
	stopTimeout   = 10 * time.Second
	logTailBytes  = 4 << 10
)

// Containerd is a private containerd daemon: its own root, state and
// sockets under one directory, the CRI plugin off, overlayfs and runc v2.
//
// Two host paths are shared with every other containerd, because containerd
// 1.6 takes them from the client or hardcodes them, not from its config:
//   - /run/containerd/s holds the shims' sockets; their names hash Socket,
//     so daemons do not collide there.
//   - /run/containerd/runc/NAMESPACE/ID is runc's state unless the
//     container is created with runc options that set Root. Two daemons
//     running the same namespace and container ID would collide, so pass
//     RuncRoot: containerd.WithRuntime(plugin.RuntimeRuncV2,
//     &options.Options{Root: c.RuncRoot}), options being
//     github.com/containerd/containerd/api/types/runc/options. And give
//     each test its own namespace: runc's default cgroup, /NAMESPACE/ID, is
//     shared too.
//
// A Containerd is not safe for concurrent use; tests call Restart and Stop
// from the test goroutine or a cleanup.
type Containerd struct {
	// Socket is the gRPC address for containerd.New.
	Socket string
	// Root and State are containerd's persistent and runtime directories.
	Root, State string
	// RuncRoot is a runc state directory private to this daemon.
	RuncRoot string
	// Log is the path of the daemon's log file, kept under the directory.
	Log string

	dir     string
	config  string
	sockDir string        // a short directory under /tmp made for Socket, or ""
	out     io.Writer     // the caller's log writer, or nil
	cmd     *exec.Cmd     // the running daemon, nil once stopped
	exited  chan struct{} // closed when cmd has been waited for
	waitErr error         // set before exited is closed
	closed  bool          // Stop has run
}

// StartContainerd starts containerd with everything under dir and waits
// until it answers. Its log goes to dir/containerd.log and, if log is not
// nil, also to log. Stop it with Stop (t.Cleanup(func() { c.Stop() })).
func StartContainerd(ctx context.Context, dir string, log io.Writer) (*Containerd, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("containerd dir: %w", err)
	}
	c := &Containerd{
		Root:     filepath.Join(dir, "root"),
		State:    filepath.Join(dir, "state"),
		RuncRoot: filepath.Join(dir, "runc"),
		Log:      filepath.Join(dir, "containerd.log"),
		dir:      dir,
		config:   filepath.Join(dir, "config.toml"),
		out:      log,
	}
	for _, d := range []string{c.Root, c.State, c.RuncRoot} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("containerd dir: %w", err)
		}
	}
	c.Socket = filepath.Join(dir, "containerd.sock")
	if len(c.Socket) >= maxSocketPath {
		// t.TempDir paths carry the test's name and easily pass the limit.
		if c.sockDir, err = os.MkdirTemp("/tmp", "ctrd-"); err != nil {
			return nil, fmt.Errorf("containerd socket dir: %w", err)
		}
		c.Socket = filepath.Join(c.sockDir, "c.sock")
	}
	if err := os.WriteFile(c.config, []byte(c.configTOML()), 0o644); err != nil {
		c.removeSockDir()
		return nil, fmt.Errorf("containerd config: %w", err)
	}
	if err := c.start(ctx); err != nil {
		c.removeSockDir()
		return nil, err
	}
	return c, nil
}

// configTOML is containerd 1.6's version 2 config. Every host path that the
// config can move (/var/lib/containerd, /run/containerd/containerd.sock and
// the state beside it, /opt/containerd) is moved under the test's directory.
func (c *Containerd) configTOML() string {
	return fmt.Sprintf(`version = 2
root = %q
state = %q
# cri would want CNI and a sandbox image; aufs would run modprobe on the host.
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = %q
`, c.Root, c.State, c.Socket, c.Socket+".ttrpc", filepath.Join(c.dir, "opt"))
}

func (c *Containerd) start(ctx context.Context) error {
	logf, err := os.OpenFile(c.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("containerd log: %w", err)
	}
	defer logf.Close() // the child has its own copy

	cmd := exec.Command(ContainerdBinary, "--config", c.config)
	cmd.Env = ProcessEnv() // see there; the shims and runc inherit it
	cmd.Stdout, cmd.Stderr = logf, logf
	if c.out != nil {
		w := io.MultiWriter(logf, c.out)
		cmd.Stdout, cmd.Stderr = w, w
		// Shims could inherit the pipe behind w; do not let them hold up
		// Wait once containerd itself has gone.
		cmd.WaitDelay = time.Second
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Own process group: a ^C at the terminal reaches the test, which
		// then stops containerd in order, instead of reaching both.
		Setpgid: true,
		// If the test binary dies (a timeout panic), so does containerd.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	exited := make(chan struct{})
	c.cmd, c.exited, c.waitErr = cmd, exited, nil
	go func() {
		err := cmd.Wait()
		c.waitErr = err
		close(exited)
	}()

	if err := c.waitReady(ctx); err != nil {
		_ = c.stopDaemon() // the log tail below says more than its error
		return fmt.Errorf("start containerd: %w%s", err, c.logTail())
	}
	return nil
}

// waitReady polls the Version call until it answers, the daemon exits or
// startTimeout passes.
func (c *Containerd) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	var last error
	for {
		last = c.ping(ctx)
		if last == nil {
			return nil
		}
		select {
		case <-c.exited:
			return fmt.Errorf("containerd exited: %v", c.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w (last: %v)", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *Containerd) ping(ctx context.Context) error {
	cl, err := containerd.New(c.Socket, containerd.WithTimeout(time.Second))
	if err != nil {
		return err
	}
	defer cl.Close()
	_, err = cl.Version(ctx)
	return err
}

// Client connects to the daemon and checks that it answers. Pass
// containerd.WithDefaultNamespace to avoid namespaces.WithNamespace on every
// call.
func (c *Containerd) Client(ctx context.Context, opts ...containerd.ClientOpt) (*containerd.Client, error) {
	cl, err := containerd.New(c.Socket, opts...)
	if err != nil {
		return nil, fmt.Errorf("containerd client: %w", err)
	}
	if _, err := cl.Version(ctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("containerd client: %w", err)
	}
	return cl, nil
}

// Restart stops the daemon and starts it again on the same directories,
// leaving tasks running under their shims: what a containerd upgrade or
// crash does to ember. A daemon that had already died is just started.
func (c *Containerd) Restart(ctx context.Context) error {
	if c.closed {
		return errors.New("restart containerd: stopped for good")
	}
	_ = c.stopDaemon() // an earlier death is what a restart is for
	return c.start(ctx)
}

// Kill9 kills the daemon with SIGKILL, as a crash or the OOM killer
// would, and waits for it to be gone; its shims and tasks keep running.
// Restart starts it again.
func (c *Containerd) Kill9() error {
	if c.cmd == nil {
		return errors.New("kill containerd: not running")
	}
	defer func() { c.cmd = nil }()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill containerd: %w", err)
	}
	<-c.exited
	return nil
}

// Stop stops the daemon (SIGTERM, then SIGKILL after 10s) and then tears
// down whatever its shims still run: tasks a failed test left behind would
// otherwise outlive the test with their mounts and cgroups. It says on the
// log writer what it had to reap. Stop is safe to call more than once.
func (c *Containerd) Stop() error {
	if c.closed {
		return nil
	}
	c.closed = true
	errs := []error{c.stopDaemon()}
	errs = append(errs, c.reapShims())
	c.removeNamespaceCgroups()
	errs = append(errs, unmountUnder(c.dir))
	if c.sockDir != "" {
		errs = append(errs, unmountUnder(c.sockDir))
	}
	c.removeSockDir()
	return errors.Join(errs...)
}

// stopDaemon ends the containerd process only. It reports a daemon that
// had died before it was asked to, which a test would otherwise not notice.
func (c *Containerd) stopDaemon() error {
	if c.cmd == nil {
		return nil
	}
	defer func() { c.cmd = nil }()
	select {
	case <-c.exited:
		return fmt.Errorf("containerd had exited: %v%s", c.waitErr, c.logTail())
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		return nil
	case <-time.After(stopTimeout):
	}
	_ = c.cmd.Process.Kill()
	<-c.exited
	return nil
}

func (c *Containerd) removeSockDir() {
	if c.sockDir != "" {
		os.RemoveAll(c.sockDir)
	}
}

// logTail returns the end of the daemon's log, formatted to follow an error.
func (c *Containerd) logTail() string {
	b, err := os.ReadFile(c.Log)
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > logTailBytes {
		b = b[len(b)-logTailBytes:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return "\ncontainerd log (tail):\n" + strings.TrimRight(string(b), "\n")
}

func (c *Containerd) logf(format string, args ...any) {
	if c.out != nil {
		fmt.Fprintf(c.out, "itest: "+format+"\n", args...)
	}
}

// Namespace returns prefix with a random suffix, a containerd namespace of
// the test's own. Tests in different packages run side by side, each with
// its own daemon, but runc's default cgroup (/NAMESPACE/ID) is host-wide.
func Namespace(prefix string) string {
	return prefix + "-" + strings.ToLower(rand.Text()[:8])
}
