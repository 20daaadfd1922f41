package scale

import (
	"context"
	"fmt"
	"time"

	"github.com/emberfaas/ember/function"
)

// Recover adopts the replicas that survived a daemon restart and prepares
// a loop per function. Loops start with Run, and so does the sweep of
// anything that belongs to no live replica: it can take seconds, and the
// daemon serves meanwhile.
func (c *Controller) Recover(ctx context.Context) error {
	specs, err := c.st.Functions()
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	if err := c.restoreCounts(); err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	insts, err := c.reps.Replicas(ctx)
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	fns := make(map[string]*fn, len(specs))
	for _, s := range specs {
		fns[s.Name] = newFn(c, s)
	}
	for _, in := range insts {
		f := fns[in.Function]
		if f == nil {
			continue
		}
		if !adoptable(in) {
			if f.service {
				f.leftOver(in)
			}
			continue
		}
		f.adopt(in)
		c.log.Info("adopted replica", "fn", in.Function, "replica", in.ID, "ip", in.IP, "task", in.Status)
	}
	for _, f := range fns {
		f.settleAdopted()
	}
	c.fns.Store(&fns)
	return nil
}

func adoptable(in function.Instance) bool {
	if !in.IP.IsValid() || in.Cgroup == "" {
		return false
	}
	switch in.Status {
	case function.TaskRunning, function.TaskPaused, function.TaskCreated:
		return true
	}
	return false
}

// leftOver takes note of a service's container that lost its task (a
// reboot): the service's next replica takes its address, unless an
// adopted replica has one.
func (f *fn) leftOver(in function.Instance) {
	f.leftovers = append(f.leftovers, in.ID)
	if in.IP.IsValid() && len(f.replicas) == 0 {
		f.svcIP = in.IP
	}
}

// adopt takes over a replica found after a restart: a running one starts
// in "starting" and is back in rotation once its readiness is confirmed; a
// paused one stays paused, a parked one stays parked.
func (f *fn) adopt(in function.Instance) {
	hash := in.Hash
	if f.spec.SameContainer(hash) {
		// Possibly an older ember's hash of the same spec: the replica is
		// current, not outdated.
		hash = f.spec.Hash()
	}
	r := &replica{f: f, id: in.ID, hash: hash, ip: in.IP, addr: f.addrOf(in.IP), idle: make(chan struct{}, 1),
		pid: in.Pid, cgroup: in.Cgroup, state: function.StateStarting, started: in.Created, adopted: true,
		adoptedAt: time.Now()}
	if in.Hash == f.spec.Hash() {
		r.ready = readyFor(f.spec)
	}
	switch in.Status {
	case function.TaskPaused:
		r.state = function.StatePaused
		r.closed.Store(true)
	case function.TaskCreated:
		r.state = function.StateZero
		r.closed.Store(true)
	}
	f.replicas[in.ID] = r
	if f.service {
		f.svcIP = in.IP
	}
}

// settleAdopted sets the phase from the adopted replicas: running ones make
// the function active (paused ones are thawed to join them; created,
// unstarted ones are started by reconcile), else it is paused, else
// parked. The replica count keeps what the autoscaler had reached, as far
// as current replicas show it, within the function's bounds: replicas
// beyond it, such as both halves of an interrupted rolling update, are
// removed by reconcile.
func (f *fn) settleAdopted() {
	var running, current, paused, parked int
	hash := f.spec.Hash()
	for _, r := range f.replicas {
		switch r.state {
		case function.StateStarting:
			running++
			if r.hash == hash {
				current++
			}
		case function.StatePaused:
			paused++
		case function.StateZero:
			parked++
		}
	}
	switch {
	case running > 0 || (paused == 0 && parked == 0):
		f.phase = phaseActive
		for _, r := range f.replicas {
			if r.state == function.StatePaused {
				if err := f.c.freezer.Thaw(r.cgroup); err != nil {
					f.c.log.Error("thaw adopted replica", "fn", f.name, "replica", r.id, "err", err)
				}
				r.state = function.StateStarting
				r.closed.Store(false)
			}
		}
	case paused > 0:
		f.phase = phasePaused
		f.pausedAt = time.Now()
	default:
		f.phase = phaseZero
	}
	f.desired = min(max(f.desired, current, f.spec.MinReplicas()), max(f.spec.MaxReplicas(), f.spec.MinReplicas()))
}
