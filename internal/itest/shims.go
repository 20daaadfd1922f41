package itest

import (
	"bufio"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
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
	pids, err := allPIDs()
	if err != nil {
		return nil, err
	}
	var shims []Shim
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue // gone meanwhile, or a kernel thread
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if flag(args, "-address") != c.Socket || flag(args, "-id") == "" {
			continue
		}
		if st, _ := procState(pid); st == 'Z' {
			continue // dead, waiting for PID 1 to reap it
		}
		shims = append(shims, Shim{PID: pid, Namespace: flag(args, "-namespace"), ID: flag(args, "-id")})
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

func allPIDs() ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var pids []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// ProcStat returns the fields of /proc/PID/stat after the command, so
// that ProcStat(pid)[0] is field 3 (the state). The command, field 2, may
// itself contain spaces and ")", so it is cut at the last ")".
func ProcStat(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return nil, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 2 {
		return nil, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return fields, nil
}

// procStat returns the state letter and parent of pid.
func procStat(pid int) (state byte, ppid int, err error) {
	fields, err := ProcStat(pid)
	if err != nil {
		return 0, 0, err
	}
	ppid, err = strconv.Atoi(fields[1])
	return fields[0][0], ppid, err
}

func procState(pid int) (byte, error) {
	st, _, err := procStat(pid)
	return st, err
}

func childMap() (map[int][]int, error) {
	pids, err := allPIDs()
	if err != nil {
		return nil, err
	}
	children := make(map[int][]int)
	for _, pid := range pids {
		if _, ppid, err := procStat(pid); err == nil {
			children[ppid] = append(children[ppid], pid)
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
	f, err := os.Open(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return nil
	}
	defer f.Close()
	var dirs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "ID:CONTROLLERS:PATH"; v2 has empty controllers.
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 || parts[2] == "/" {
			continue
		}
		ctrl := strings.TrimPrefix(parts[1], "name=")
		var candidates []string
		if ctrl == "" {
			candidates = []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"}
		} else {
			candidates = []string{filepath.Join("/sys/fs/cgroup", ctrl)}
		}
		for _, base := range candidates {
			d := filepath.Join(base, parts[2])
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
			if st, err := procState(pid); err == nil && st != 'Z' {
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
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// The fifth field is the mount point, with spaces escaped as \040.
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		p := unescapeMount(fields[4])
		if p == dir || strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read mounts: %w", err)
	}
	var errs []error
	for _, p := range slices.Backward(slices.Sorted(slices.Values(points))) {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
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
