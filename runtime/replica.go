package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/errdefs"

	"github.com/emberfaas/ember/function"
)

// ErrNotFound is returned (wrapped) for a replica that does not exist.
var ErrNotFound = errors.New("replica not found")

// ErrAddrTaken is what the Network wraps when an address asked for is held
// by another id.
var ErrAddrTaken = errors.New("address taken")

// NewID returns a fresh replica ID for a function: the name keeps IDs
// readable in `ctr` and `ip netns`, the suffix keeps them unique.
func NewID(fn string) string {
	var b [4]byte
	rand.Read(b[:])
	return fn + "-" + hex.EncodeToString(b[:])
}

// Create starts a new replica of spec with the given ID: network, container,
// snapshot, task. On any failure everything created so far is removed.
func (r *Runtime) Create(ctx context.Context, spec function.Spec, id string) (function.Instance, error) {
	return r.create(ctx, spec, id, netip.Addr{})
}

// CreateAt is Create with the replica at the address ip, a service's
// predecessor's, so that the names functions resolve it by stay true. If
// another replica holds ip the replica gets a new address: the service
// runs, and the hosts files follow it.
func (r *Runtime) CreateAt(ctx context.Context, spec function.Spec, id string, ip netip.Addr) (function.Instance, error) {
	return r.create(ctx, spec, id, ip)
}

func (r *Runtime) create(ctx context.Context, spec function.Spec, id string, want netip.Addr) (rep function.Instance, err error) {
	ctx = r.ns(ctx)
	t0 := time.Now()
	ref, err := NormalizeImage(spec.Image)
	if err != nil {
		return function.Instance{}, err
	}
	img, err := r.client.GetImage(ctx, ref)
	if err != nil {
		return function.Instance{}, fmt.Errorf("%w: %s: %w", function.ErrImage, spec.Image, err)
	}
	defer func() {
		if err != nil {
			// Use a fresh context: the caller's may be why we failed.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if cerr := r.cleanup(cctx, spec.Name, id); cerr != nil {
				r.log.Error("cleanup after failed create", "fn", spec.Name, "replica", id, "err", cerr)
			}
		}
	}()
	tImage := time.Now()
	att, err := r.attach(ctx, spec.Name, id, want)
	if err != nil {
		return function.Instance{}, fmt.Errorf("network: %w", err)
	}
	tNet := time.Now()
	dir := filepath.Join(filesDir(r.cfg.StateDir), id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return function.Instance{}, err
	}
	hosts := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hosts, r.hostsFile(id, spec.Name, att.IP, r.net.Gateway()), 0o644); err != nil {
		return function.Instance{}, err
	}
	opts, err := r.specOpts(spec, id, img, att, hosts)
	if err != nil {
		return function.Instance{}, err
	}
	labels := map[string]string{
		LabelFunction: spec.Name,
		LabelHash:     spec.Hash(),
		LabelIP:       att.IP.String(),
	}
	c, err := r.client.NewContainer(ctx, id,
		containerd.WithImage(img),
		containerd.WithSnapshotter(snapshotter),
		containerd.WithNewSnapshot(id, img),
		containerd.WithContainerLabels(labels),
		containerd.WithRuntime("io.containerd.runc.v2", r.runcOptions()),
		containerd.WithNewSpec(opts...))
	if err != nil {
		return function.Instance{}, fmt.Errorf("create container: %w", err)
	}
	tContainer := time.Now()
	task, err := r.newTask(ctx, c, spec.Name)
	if err != nil {
		return function.Instance{}, err
	}
	tTask := time.Now()
	if err := task.Start(ctx); err != nil {
		return function.Instance{}, fmt.Errorf("start task: %w", err)
	}
	// Where a start's time goes, for whoever tunes it.
	r.log.Debug("replica created", "fn", spec.Name, "replica", id, "image", tImage.Sub(t0), "network", tNet.Sub(tImage),
		"container", tContainer.Sub(tNet), "task", tTask.Sub(tContainer), "start", time.Since(tTask))
	cg, err := r.cgroupPath(ctx, id)
	if err != nil {
		return function.Instance{}, err
	}
	return function.Instance{ID: id, Function: spec.Name, Hash: labels[LabelHash], IP: att.IP, Pid: task.Pid(),
		Status: function.TaskRunning, Created: time.Now(), Cgroup: cg}, nil
}

// attach plugs a new replica into the network, at want if it is valid and
// free.
func (r *Runtime) attach(ctx context.Context, fn, id string, want netip.Addr) (Attachment, error) {
	if !want.IsValid() {
		return r.net.Attach(ctx, id)
	}
	att, err := r.net.AttachAt(ctx, id, want)
	if !errors.Is(err, ErrAddrTaken) {
		return att, err
	}
	r.log.Warn("address held by another replica: taking a new one", "fn", fn, "replica", id, "ip", want, "err", err)
	return r.net.Attach(ctx, id)
}

// newTask creates (but does not start) a task whose output goes to the
// replica's log file, written by the shim itself: no process of ours
// copies it.
func (r *Runtime) newTask(ctx context.Context, c containerd.Container, fn string) (containerd.Task, error) {
	logPath := r.LogPath(fn, c.ID())
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		return nil, err
	}
	// Not an error: on a full state dir the replica runs and its lines
	// are dropped (and counted) until there is room; the collector makes
	// the directory then.
	_ = os.MkdirAll(filepath.Join(r.logs.logDir, fn), 0o700)
	return createTask(ctx, c, cio.LogFile(logPath))
}

// Restart replaces an exited replica's task with a new one in the same
// container, keeping its network attachment and IP.
func (r *Runtime) Restart(ctx context.Context, id string) (uint32, error) {
	ctx = r.ns(ctx)
	c, task, err := r.replaceTask(ctx, id, 0)
	if err != nil {
		return 0, err
	}
	if err := task.Start(ctx); err != nil {
		return 0, fmt.Errorf("start task of %s: %w", c.ID(), err)
	}
	return task.Pid(), nil
}

// Park stops a replica's process (SIGTERM, SIGKILL after grace) and leaves
// a created, unstarted task in its place: the process's memory is freed,
// while the container, snapshot, network and the task's set-up are kept
// so that Unpark only has to start it.
func (r *Runtime) Park(ctx context.Context, id string, grace time.Duration) error {
	_, _, err := r.replaceTask(r.ns(ctx), id, grace)
	return err
}

// Unpark starts a parked replica's task and returns its pid.
func (r *Runtime) Unpark(ctx context.Context, id string) (uint32, error) {
	ctx = r.ns(ctx)
	task, err := r.loadTask(ctx, id)
	if err != nil {
		return 0, err
	}
	if err := task.Start(ctx); err != nil {
		return 0, fmt.Errorf("start task of %s: %w", id, err)
	}
	return task.Pid(), nil
}

// replaceTask stops and deletes a replica's task, if any, removes the lock
// file its last run left in the container's writable layer, and creates a
// new task, not started.
func (r *Runtime) replaceTask(ctx context.Context, id string, grace time.Duration) (containerd.Container, containerd.Task, error) {
	c, err := r.loadContainer(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if task, err := c.Task(ctx, nil); err == nil {
		if err := r.stopTask(ctx, task, grace); err != nil {
			return nil, nil, err
		}
	} else if !errdefs.IsNotFound(err) {
		return nil, nil, fmt.Errorf("task of %s: %w", id, err)
	}
	if err := r.clearLock(ctx, c); err != nil {
		return nil, nil, err
	}
	labels, err := c.Labels(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("labels of %s: %w", id, err)
	}
	task, err := r.newTask(ctx, c, labels[LabelFunction])
	return c, task, err
}

// clearLock removes a stale lock file from the container's writable layer,
// so a restarted process is not taken for ready before it wrote its own.
func (r *Runtime) clearLock(ctx context.Context, c containerd.Container) error {
	info, err := c.Info(ctx, containerd.WithoutRefreshedMetadata)
	if err != nil {
		return fmt.Errorf("container %s: %w", c.ID(), err)
	}
	mounts, err := r.client.SnapshotService(snapshotter).Mounts(ctx, info.SnapshotKey)
	if err != nil {
		return fmt.Errorf("snapshot of %s: %w", c.ID(), err)
	}
	for _, m := range mounts {
		for _, o := range m.Options {
			if upper, ok := strings.CutPrefix(o, "upperdir="); ok {
				if err := os.Remove(filepath.Join(upper, LockPath)); err != nil && !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("clear lock of %s: %w", c.ID(), err)
				}
			}
		}
	}
	return nil
}

// Wait returns a channel that receives the replica's exit. ctx bounds the
// wait (cancel it to stop waiting, not to stop the task). Only a real exit
// is sent: while containerd is unreachable the wait resumes when it is back
// (see waitExit), so a containerd restart restarts no replica.
func (r *Runtime) Wait(ctx context.Context, id string) (<-chan function.Exit, error) {
	ctx = r.ns(ctx)
	task, err := r.loadTask(ctx, id)
	if err != nil && !unreachable(err) {
		return nil, err
	}
	if err != nil {
		r.lost(err)
	}
	out := make(chan function.Exit, 1)
	go func() {
		if ex, ok := r.waitExit(ctx, id, task); ok {
			out <- ex
		}
		close(out)
	}()
	return out, nil
}

// Stop ends a replica's task: SIGTERM, then SIGKILL after grace. The
// container and network stay, so Restart can reuse them.
func (r *Runtime) Stop(ctx context.Context, id string, grace time.Duration) error {
	ctx = r.ns(ctx)
	task, err := r.loadTask(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return r.stopTask(ctx, task, grace)
}

func (r *Runtime) stopTask(ctx context.Context, task containerd.Task, grace time.Duration) error {
	st, err := task.Status(ctx)
	if err != nil {
		return fmt.Errorf("status of %s: %w", task.ID(), err)
	}
	if st.Status == containerd.Running || st.Status == containerd.Paused {
		// A frozen process cannot act on SIGTERM. The freezer itself is
		// asked: the shim does not know of freezes it did not make.
		if cg, err := r.cgroupPath(ctx, task.ID()); err == nil {
			if frozen, _ := isFrozen(cg); frozen {
				if err := r.Thaw(cg); err != nil {
					return fmt.Errorf("thaw %s to stop it: %w", task.ID(), err)
				}
			}
		}
	}
	if st.Status != containerd.Stopped && st.Status != containerd.Created {
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		exitC, err := task.Wait(wctx)
		if err != nil {
			return fmt.Errorf("wait %s: %w", task.ID(), err)
		}
		if grace > 0 {
			if err := task.Kill(ctx, syscall.SIGTERM); err != nil && !errdefs.IsNotFound(err) {
				return fmt.Errorf("sigterm %s: %w", task.ID(), err)
			}
			select {
			case <-exitC:
			case <-time.After(grace):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := task.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("sigkill %s: %w", task.ID(), err)
		}
		select {
		case <-exitC:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return deleteTask(ctx, task, containerd.WithProcessKill)
}

// Remove stops a replica (SIGTERM, SIGKILL after grace) and frees
// everything it owned: task, container, snapshot, network attachment, files
// and logs. Removing a replica that is already (partly) gone is not an error.
func (r *Runtime) Remove(ctx context.Context, fn, id string, grace time.Duration) error {
	ctx = r.ns(ctx)
	if task, err := r.loadTask(ctx, id); err == nil {
		if err := r.stopTask(ctx, task, grace); err != nil {
			return err
		}
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	return r.cleanup(ctx, fn, id)
}

// cleanup removes whatever exists of a replica, task excepted.
func (r *Runtime) cleanup(ctx context.Context, fn, id string) error {
	var errs []error
	if c, err := r.client.LoadContainer(ctx, id); err == nil {
		if task, err := c.Task(ctx, nil); err == nil {
			if err := deleteTask(ctx, task, containerd.WithProcessKill); err != nil {
				errs = append(errs, err)
			}
		}
		if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete container: %w", err))
		}
	} else if !errdefs.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("load container: %w", err))
	}
	// A snapshot may outlive a container whose creation failed half-way.
	if err := r.client.SnapshotService(snapshotter).Remove(ctx, id); err != nil && !errdefs.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("remove snapshot: %w", err))
	}
	if err := r.net.Detach(ctx, id); err != nil {
		errs = append(errs, fmt.Errorf("network: %w", err))
	}
	if err := r.removeReplicaFiles(id); err != nil {
		errs = append(errs, err)
	}
	if fn != "" {
		dirs := []string{filepath.Join(r.logs.logDir, fn)}
		for _, raw := range r.rawPaths(fn, id) {
			r.logs.forget(raw)
			dirs = append(dirs, filepath.Dir(raw))
		}
		for _, dir := range slices.Compact(dirs) {
			matches, _ := filepath.Glob(filepath.Join(dir, id+".*"))
			for _, m := range matches {
				if err := os.Remove(m); err != nil && !errors.Is(err, os.ErrNotExist) {
					errs = append(errs, err)
				}
			}
			// Drop the function's log directory once its last replica
			// is gone.
			_ = os.Remove(dir)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove replica %s: %w", id, err)
	}
	return nil
}

// Replicas lists every replica container in ember's namespace with its
// task's state, for adoption after a restart.
func (r *Runtime) Replicas(ctx context.Context) ([]function.Instance, error) {
	ctx = r.ns(ctx)
	cs, err := r.client.Containers(ctx, fmt.Sprintf("labels.%q", LabelFunction))
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := make([]function.Instance, 0, len(cs))
	for _, c := range cs {
		info, err := c.Info(ctx, containerd.WithoutRefreshedMetadata)
		if err != nil {
			if errdefs.IsNotFound(err) {
				continue
			}
			return nil, fmt.Errorf("container %s: %w", c.ID(), err)
		}
		rep := function.Instance{ID: c.ID(), Function: info.Labels[LabelFunction], Hash: info.Labels[LabelHash],
			Created: info.CreatedAt, Status: function.TaskNone}
		rep.IP, _ = netip.ParseAddr(info.Labels[LabelIP])
		if cg, err := r.cgroupPath(ctx, c.ID()); err == nil {
			rep.Cgroup = cg
		}
		if task, err := c.Task(ctx, nil); err == nil {
			st, err := task.Status(ctx)
			if err != nil && !errdefs.IsNotFound(err) {
				return nil, fmt.Errorf("task %s: %w", c.ID(), err)
			}
			if err == nil {
				rep.Status = function.TaskStatus(st.Status)
				rep.Pid = task.Pid()
			}
			// containerd keeps reporting a task frozen through the
			// freezer file as running: ask the freezer.
			if rep.Status == function.TaskRunning && rep.Cgroup != "" {
				if frozen, _ := isFrozen(rep.Cgroup); frozen {
					rep.Status = function.TaskPaused
				}
			}
		} else if !errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("task %s: %w", c.ID(), err)
		}
		out = append(out, rep)
	}
	return out, nil
}

func (r *Runtime) loadContainer(ctx context.Context, id string) (containerd.Container, error) {
	c, err := r.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("%s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", id, err)
	}
	return c, nil
}

func (r *Runtime) loadTask(ctx context.Context, id string) (containerd.Task, error) {
	c, err := r.loadContainer(ctx, id)
	if err != nil {
		return nil, err
	}
	task, err := c.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("task %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", id, err)
	}
	return task, nil
}

func (r *Runtime) runcOptions() any {
	if r.cfg.RuncRoot == "" {
		return nil
	}
	return &options.Options{Root: r.cfg.RuncRoot}
}
