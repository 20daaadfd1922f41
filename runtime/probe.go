package runtime

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/snapshots"
	"github.com/opencontainers/runtime-spec/specs-go"
)

// staticELF reports whether path is an ELF executable with no program
// interpreter: one that runs in a FROM scratch container. A cgo build of
// ember is not, and exec'ing it there fails with "no such file".
func staticELF(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false, nil
		}
	}
	return true, nil
}

// LockVisible looks for the lock file through /proc/PID/root, which shows
// the container's own mounts (a tmpfs /tmp included). It costs one stat and
// no process, so it can run often; ProbeLock is the authoritative check.
// A process that is gone is an error, not a missing lock: its exit is the
// exit watcher's to report, which may take until containerd is back.
func (r *Runtime) LockVisible(pid uint32) (bool, error) {
	proc := "/proc/" + strconv.FormatUint(uint64(pid), 10)
	_, err := os.Stat(proc + "/root" + LockPath)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrNotExist):
		if _, err := os.Stat(proc); err != nil {
			return false, fmt.Errorf("process %d: %w", pid, err)
		}
		return false, nil
	default:
		return false, err
	}
}

// ProbeLock checks for the lock file from inside the container: it execs
// the bind-mounted probe binary as the container's own user, so it sees
// exactly what the function sees and needs no shell in the image. When
// containerd cannot be reached the error wraps
// function.ErrRuntimeUnavailable: the probe could not run, which says
// nothing about the replica.
func (r *Runtime) ProbeLock(ctx context.Context, id string) (bool, error) {
	ok, err := r.probeLock(ctx, id)
	if err != nil {
		return false, r.unavailable(err)
	}
	r.regained()
	return ok, nil
}

func (r *Runtime) probeLock(ctx context.Context, id string) (bool, error) {
	ctx = r.ns(ctx)
	c, err := r.loadContainer(ctx, id)
	if err != nil {
		return false, err
	}
	spec, err := c.Spec(ctx)
	if err != nil {
		return false, fmt.Errorf("spec of %s: %w", id, err)
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return false, fmt.Errorf("task %s: %w", id, ErrNotFound)
		}
		return false, fmt.Errorf("task %s: %w", id, err)
	}
	if r.cfg.ProbeBinary == "" || !probeFits(spec) {
		ok, err := r.LockVisible(task.Pid())
		if err != nil {
			return false, fmt.Errorf("lock of %s: %w", id, err)
		}
		return ok, nil
	}
	code, err := execIn(ctx, task, spec, []string{ProbePath, "probe", LockPath})
	if err != nil {
		return false, fmt.Errorf("probe in %s: %w", id, err)
	}
	switch code {
	case 0:
		return true, nil
	case 1:
		return false, nil
	default:
		return false, fmt.Errorf("probe in %s exited with code %d", id, code)
	}
}

// execIn runs args in a task as its own process's user and returns the
// exit code.
func execIn(ctx context.Context, task containerd.Task, spec *specs.Spec, args []string) (uint32, error) {
	p := *spec.Process
	p.Terminal = false
	p.Args = args
	proc, err := task.Exec(ctx, "probe-"+NewID("x")[2:], &p, cio.NullIO)
	if err != nil {
		return 0, fmt.Errorf("exec: %w", err)
	}
	defer proc.Delete(context.WithoutCancel(ctx))
	statusC, err := proc.Wait(ctx)
	if err != nil {
		return 0, fmt.Errorf("wait: %w", err)
	}
	if err := proc.Start(ctx); err != nil {
		return 0, fmt.Errorf("start: %w", err)
	}
	select {
	case st := <-statusC:
		code, _, err := st.Result()
		return code, err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// ProbeExec runs a service's healthcheck command in its container: ready
// when it exits 0. An error says the command could not be run.
func (r *Runtime) ProbeExec(ctx context.Context, id string, args []string) (bool, error) {
	ctx = r.ns(ctx)
	c, err := r.loadContainer(ctx, id)
	if err != nil {
		return false, r.unavailable(err)
	}
	spec, err := c.Spec(ctx)
	if err != nil {
		return false, r.unavailable(fmt.Errorf("spec of %s: %w", id, err))
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return false, fmt.Errorf("task %s: %w", id, ErrNotFound)
		}
		return false, r.unavailable(fmt.Errorf("task %s: %w", id, err))
	}
	code, err := execIn(ctx, task, spec, args)
	if err != nil {
		return false, fmt.Errorf("healthcheck in %s: %w", id, err)
	}
	return code == 0, nil
}

// probeHeadroom is the memory a container must have left under its limit
// for an exec probe: the exec'd processes (runc's init, then the probe, a
// Go binary) join the container's memory cgroup, and together peak near
// 40 MiB of RSS here. In a container close to its limit (a tiny --memory
// such as 5Mi, or a function near its own) the kernel's OOM killer would
// kill the probe or, worse, the function, and containerd would report an
// OOM against the function either way.
const probeHeadroom = 40 << 20

// probeFits reports whether an exec probe can run in the container without
// pushing it towards its memory limit. When it cannot, the stat through
// /proc/PID/root stands in for it: it already sees the container's own
// mounts and files; what the exec adds is the view as the container's own
// user, which is not worth an OOM kill.
func probeFits(spec *specs.Spec) bool {
	if spec.Linux == nil || spec.Linux.Resources == nil || spec.Linux.Resources.Memory == nil ||
		spec.Linux.Resources.Memory.Limit == nil || *spec.Linux.Resources.Memory.Limit <= 0 {
		return true
	}
	_, used, ok := readCgroup(spec.Linux.CgroupsPath)
	if !ok {
		return false // unknown use: do not risk it
	}
	return float64(*spec.Linux.Resources.Memory.Limit)-used >= probeHeadroom
}

// LogTail returns up to n last lines of a replica's output: from the raw
// file the shim writes, or, when the collector has just emptied it, from
// the stamped log.
func (r *Runtime) LogTail(fn, id string, n int) []string {
	for _, raw := range r.rawPaths(fn, id) {
		if lines := tailFile(raw, n); len(lines) > 0 {
			return lines
		}
	}
	lines := tailFile(filepath.Join(r.logs.logDir, fn, id+logSuffix), n)
	for i, l := range lines {
		if _, text, ok := strings.Cut(l, " "); ok {
			lines[i] = text
		}
	}
	return lines
}

func tailFile(path string, n int) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	// The tail of a log is in its last few KiB; don't read a large file.
	if st, err := f.Stat(); err == nil && st.Size() > tailWindow {
		f.Seek(-tailWindow, io.SeekEnd)
	}
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil
	}
	// The collector punches holes, read as zeros, in the collected start
	// of a raw file (see collector.reclaim), but leaves tailWindow bytes
	// out of them, so the window should hold no zeros. Should it reach
	// into a hole anyway, the zeros are no output.
	data = bytes.TrimLeft(data, "\x00")
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return lines
}

// Sweep removes every replica resource whose ID keep rejects: containers,
// tasks, active snapshots, network attachments, replica files and logs.
// keep is asked about each resource after it was found, so that a replica
// that keep accepts from before its first resource exists is never touched.
// Sweep runs while the daemon serves: after adoption on start, and again
// whenever a cleanup failed. It is idempotent; it goes on past failures
// and returns them joined, one per resource it could not free.
func (r *Runtime) Sweep(ctx context.Context, keep func(id string) bool) error {
	ctx = r.ns(ctx)
	var errs []error
	reps, err := r.Replicas(ctx)
	if err != nil {
		return err
	}
	for _, rep := range reps {
		if !keep(rep.ID) {
			r.log.Info("removing orphan replica", "fn", rep.Function, "replica", rep.ID)
			if err := r.Remove(ctx, rep.Function, rep.ID, 0); err != nil {
				errs = append(errs, err)
			}
		}
	}
	var orphans []string
	err = r.client.SnapshotService(snapshotter).Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		// Image unpacking holds active snapshots of its own, "extract-…"
		// with a space before the chain ID: never a replica's.
		if info.Kind == snapshots.KindActive && !isUnpackKey(info.Name) && !keep(info.Name) {
			orphans = append(orphans, info.Name)
		}
		return nil
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("list snapshots: %w", err))
	}
	for _, id := range orphans {
		if err := r.client.SnapshotService(snapshotter).Remove(ctx, id); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove snapshot %s: %w", id, err))
		}
	}
	ids, err := r.net.List()
	if err != nil {
		errs = append(errs, err)
	}
	for _, id := range ids {
		if !keep(id) {
			if err := r.net.Detach(ctx, id); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if ents, err := os.ReadDir(filesDir(r.cfg.StateDir)); err == nil {
		for _, e := range ents {
			if !keep(e.Name()) {
				if err := r.removeReplicaFiles(e.Name()); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	for _, root := range append(r.logs.roots, r.logs.logDir) {
		fns, _ := os.ReadDir(root)
		for _, fn := range fns {
			dir := filepath.Join(root, fn.Name())
			logs, _ := os.ReadDir(dir)
			for _, l := range logs {
				id := replicaOfFile(l.Name())
				if !keep(id) {
					os.Remove(filepath.Join(dir, l.Name()))
				}
			}
			os.Remove(dir) // only succeeds when empty
		}
	}
	return errors.Join(errs...)
}

// isUnpackKey reports whether a snapshot key is one of containerd's
// unpacker ("extract-UNIQUE CHAINID"). Replica IDs hold no space.
func isUnpackKey(key string) bool {
	return strings.HasPrefix(key, snapshots.UnpackKeyPrefix+"-") && strings.Contains(key, " ")
}
