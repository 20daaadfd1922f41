package itest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/moby/sys/mountinfo"
	"github.com/prometheus/procfs"
)

// Shim is a containerd shim process serving one of this daemon's tasks.
type Shim struct {
	PID       int
	Namespace string
	ID        string
}

// Shims lists the live shims started by this daemon, found in /proc by the
// -address they were given. Shims outlive containerd by design, so this is
// how a test checks that the tasks it removed are really gone.
func (c *Containerd) Shims() ([]Shim, error) {
	procs, err := procfs.AllProcs()
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var shims []Shim
	for _, p := range procs {
		args, err := p.CmdLine()
		if err != nil {
			continue // gone meanwhile
		}
		if flag(args, "-address") != c.Socket || flag(args, "-id") == "" {
			continue
		}
		if st, err := p.Stat(); err == nil && st.State == "Z" {
			continue // dead, waiting for PID 1 to reap it
		}
		shims = append(shims, Shim{PID: p.PID, Namespace: flag(args, "-namespace"), ID: flag(args, "-id")})
	}
	return shims, nil
}

func flag(args []string, name string) string {
	if i := slices.Index(args, name); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// reapShims kills every leftover shim of this daemon with the processes
// under it, then removes the cgroups those processes were in. Killing the
// container processes first matters: a shim is their subreaper, and without
// it they would run on, reparented to PID 1.
func (c *Containerd) reapShims() error {
	shims, err := c.Shims()
	if err != nil || len(shims) == 0 {
		return err
	}
	children, err := childMap()
	if err != nil {
		return err
	}
	var killed []int
	cgroups := make(map[string]bool)
	for _, s := range shims {
		c.logf("reaping leftover shim pid=%d namespace=%s id=%s", s.PID, s.Namespace, s.ID)
		desc := descendants(children, s.PID)
		for _, pid := range desc {
			for _, cg := range procCgroups(pid) {
				cgroups[cg] = true
			}
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_ = syscall.Kill(s.PID, syscall.SIGKILL)
		killed = append(killed, s.PID)
		killed = append(killed, desc...)
	}
	defer c.removeShimSockets(shims)
	var errs []error
	if alive := waitGone(killed, 5*time.Second); len(alive) > 0 {
		errs = append(errs, fmt.Errorf("processes survived SIGKILL: %v", alive))
	}
	// Deepest first, in case a task made cgroups of its own.
	for _, cg := range slices.Backward(slices.Sorted(maps.Keys(cgroups))) {
		if err := rmdirRetry(cg); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeShimSockets removes the sockets of killed shims, which a shim
// removes itself only when it shuts down cleanly. They live in the host's
// /run/containerd/s; each bundle's address file says which one it is.
func (c *Containerd) removeShimSockets(shims []Shim) {
	for _, s := range shims {
		b, err := os.ReadFile(filepath.Join(c.State, "io.containerd.runtime.v2.task", s.Namespace, s.ID, "address"))
		if err != nil {
			continue
		}
		sock := strings.TrimPrefix(strings.TrimSpace(string(b)), "unix://")
		if filepath.Dir(sock) == "/run/containerd/s" {
			_ = os.Remove(sock)
		}
	}
}

// procState returns the state letter of pid, "Z" for a zombie.
func procState(pid int) (string, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return "", err
	}
	st, err := p.Stat()
	return st.State, err
}

func childMap() (map[int][]int, error) {
	procs, err := procfs.AllProcs()
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	children := make(map[int][]int)
	for _, p := range procs {
		if st, err := p.Stat(); err == nil {
			children[st.PPID] = append(children[st.PPID], p.PID)
		}
	}
	return children, nil
}

func descendants(children map[int][]int, pid int) []int {
	var out []int
	for _, c := range children[pid] {
		out = append(out, c)
		out = append(out, descendants(children, c)...)
	}
	return out
}

// procCgroups returns the cgroup directories of pid under /sys/fs/cgroup,
// for both cgroup v1 hierarchies and v2, leaving out each hierarchy's root.
func procCgroups(pid int) []string {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return nil
	}
	cgroups, err := p.Cgroups()
	if err != nil {
		return nil
	}
	var dirs []string
	for _, cg := range cgroups {
		if cg.Path == "/" {
			continue
		}
		// v2 has no controllers; v1 names a hierarchy after its controllers,
		// or after "name=NAME".
		ctrl := strings.TrimPrefix(strings.Join(cg.Controllers, ","), "name=")
		var candidates []string
		if ctrl == "" {
			candidates = []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"}
		} else {
			candidates = []string{filepath.Join("/sys/fs/cgroup", ctrl)}
		}
		for _, base := range candidates {
			d := filepath.Join(base, cg.Path)
			if _, err := os.Stat(filepath.Join(d, "cgroup.procs")); err == nil {
				dirs = append(dirs, d)
				break
			}
		}
	}
	return dirs
}

// waitGone waits until none of pids is alive (a zombie counts as gone) and
// returns those still alive at the deadline.
func waitGone(pids []int, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	for {
		var alive []int
		for _, pid := range pids {
			if st, err := procState(pid); err == nil && st != "Z" {
				alive = append(alive, pid)
			}
		}
		if len(alive) == 0 || time.Now().After(deadline) {
			return alive
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rmdirRetry removes an empty cgroup directory, retrying while the kernel
// still counts exiting tasks in it (EBUSY).
func rmdirRetry(dir string) error {
	var err error
	for range 50 {
		err = syscall.Rmdir(dir)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("remove cgroup %s: %w", dir, err)
}

// unmountUnder detaches every mount at or below dir, deepest first: the
// rootfs of tasks whose shims were killed, and overlay mounts of an
// interrupted unpack. Without it t.TempDir's cleanup fails with EBUSY.
func unmountUnder(dir string) error {
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return fmt.Errorf("read mounts: %w", err)
	}
	points := make([]string, 0, len(mounts))
	for _, m := range mounts {
		points = append(points, m.Mountpoint)
	}
	var errs []error
	for _, p := range slices.Backward(slices.Sorted(slices.Values(points))) {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// removeNamespaceCgroups removes the /NAMESPACE cgroup that runc creates as
// the parent of each task's default cgroup (/NAMESPACE/ID) and leaves behind
// when the task is deleted. Only namespaces that this daemon ran tasks in
// are tried, and rmdir removes only an empty cgroup, so another daemon's
// tasks in a namespace of the same name are safe.
func (c *Containerd) removeNamespaceCgroups() {
	ents, err := os.ReadDir(filepath.Join(c.State, "io.containerd.runtime.v2.task"))
	if err != nil {
		return
	}
	hierarchies, err := filepath.Glob("/sys/fs/cgroup/*/cgroup.procs")
	if err != nil {
		return
	}
	// cgroup v2 mounted at /sys/fs/cgroup itself.
	hierarchies = append(hierarchies, "/sys/fs/cgroup/cgroup.procs")
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		for _, h := range hierarchies {
			d := filepath.Join(filepath.Dir(h), e.Name())
			if _, err := os.Stat(filepath.Join(d, "cgroup.procs")); err == nil {
				_ = syscall.Rmdir(d) // EBUSY: someone else's tasks still use it
			}
		}
	}
}

// ShimSocket is the socket path containerd's runc v2 shim listens on for
// the tasks of namespace ns whose spec carries shim group group: the
// shim's own derivation (runtime/v2/shim.SocketAddress), so that a test
// can check that a group's shim left no socket behind.
func (c *Containerd) ShimSocket(ns, group string) string {
	d := sha256.Sum256([]byte(filepath.Join(c.Socket, ns, group)))
	return filepath.Join("/run/containerd/s", hex.EncodeToString(d[:]))
}
