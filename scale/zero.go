package scale

import (
	"context"
	"time"

	"github.com/emberfaas/ember/function"
)

// Scale to zero happens in two steps. An idle function is paused: its
// replicas are frozen (no CPU, memory kept) and a request thaws them in
// microseconds. Paused long enough, or when memory runs low, it is parked:
// one replica's process is stopped and a created, unstarted task is left
// in its container, so the next request only has to start a process —
// image, snapshot, network and the task's set-up are already there.

// pause freezes an idle function's replicas. Called on the loop.
func (f *fn) pause(ctx context.Context) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.phase != phaseActive || f.removing {
		return
	}
	var ready []*replica
	for _, r := range f.replicas {
		switch r.state {
		case function.StateReady:
			ready = append(ready, r)
		case function.StateStopping:
		default:
			return // starting, unhealthy or crashed: not a quiet moment
		}
	}
	if len(ready) == 0 {
		return
	}
	// Close them first: a request that slipped in since the idle check
	// keeps the function awake.
	for _, r := range ready {
		r.closed.Store(true)
	}
	for _, r := range ready {
		if r.inflight.Load() > 0 {
			for _, r := range ready {
				r.closed.Store(false)
			}
			f.publish() // requests that saw them closed look again
			return
		}
	}
	start := time.Now()
	for i, r := range ready {
		if err := f.c.freezer.Freeze(ctx, r.cgroup); err != nil {
			f.c.log.Error("pause replica", "fn", f.name, "replica", r.id, "err", err)
			for _, r := range ready[:i] {
				f.c.freezer.Thaw(r.cgroup)
			}
			for _, r := range ready {
				r.closed.Store(false)
			}
			f.publish()
			return
		}
	}
	for _, r := range ready {
		r.state = function.StatePaused
	}
	f.phase = phasePaused
	f.pausedAt = time.Now()
	f.publish()
	f.c.metrics.pauses.WithLabelValues(f.metricName()).Inc()
	f.c.log.Info("paused", "fn", f.name, "replicas", len(ready), "took", time.Since(start).Round(time.Microsecond))
}

// goToZero parks the function: one replica keeps a created task, the rest
// are removed. Called on the loop.
func (f *fn) goToZero(ctx context.Context) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.phase == phaseZero || f.removing {
		return
	}
	f.phase = phaseZero
	// The count it had before it went idle is history: a wake starts the
	// parked replica (or min), and the autoscaler goes on from there.
	f.desired = 0
	var keep *replica
	for _, r := range f.replicas {
		if r.state == function.StateStopping {
			continue
		}
		if keep == nil && r.addr != "" && r.hash == f.spec.Hash() &&
			(r.state == function.StateReady || r.state == function.StatePaused) {
			keep = r
			continue
		}
		f.drain(ctx, r)
	}
	if keep != nil {
		keep.closed.Store(true)
		if keep.cancel != nil {
			keep.cancel() // its exit is ours, not a crash
			keep.cancel = nil
		}
		keep.state = function.StateZero
		keep.message = "parking"
	}
	f.publish()
	f.c.log.Info("scaled to zero", "fn", f.name)
	if keep == nil {
		return
	}
	id := keep.id
	go func() {
		// Park waits for in-flight requests no more than a drain does. A
		// stopping daemon ends the wait, not the park: its servers have
		// finished their requests before the controller's context ends.
		_ = keep.drained(ctx, f.c.cfg.DrainTimeout)
		err := f.c.tasks.Park(context.WithoutCancel(ctx), id, f.c.cfg.StopTimeout)
		f.send(ctx, func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			r := f.replicas[id]
			if r == nil {
				return
			}
			if err != nil {
				f.c.log.Error("park replica", "fn", f.name, "replica", id, "err", err)
				f.drain(ctx, r)
				return
			}
			r.message = ""
			r.pid = 0
			if r.state == function.StateStarting {
				// A wake-up came while parking: start it now.
				f.unpark(ctx, r)
			}
		})
	}()
}

// wake brings a paused or parked function back for a waiting request:
// paused replicas are thawed (microseconds), a parked one is started.
// Concurrent requests share one wake-up. Called on the loop.
func (f *fn) wake(ctx context.Context) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.removing {
		return
	}
	switch f.phase {
	case phasePaused:
		start := time.Now()
		for _, r := range f.replicas {
			if r.state != function.StatePaused {
				continue
			}
			if err := f.c.freezer.Thaw(r.cgroup); err != nil {
				f.c.log.Error("resume replica", "fn", f.name, "replica", r.id, "err", err)
				f.drain(ctx, r)
				continue
			}
			r.state = function.StateReady
			r.closed.Store(false)
		}
		f.phase = phaseActive
		f.publish()
		// The autoscaler may have looked while it was paused and gone to
		// sleep until its delete-after: now it must time idleness again.
		f.c.kickAutoscaler()
		f.c.wakeProber()
		f.c.metrics.coldStart(f, "paused", time.Since(start))
		f.c.log.Info("resumed", "fn", f.name, "took", time.Since(start).Round(time.Microsecond))
	case phaseZero:
		f.phase = phaseActive
		f.desired = max(f.desired, 1, f.spec.MinReplicas())
		f.wakeAt = time.Now()
		// As above: an autoscaler that saw it parked sleeps until kicked.
		f.c.kickAutoscaler()
		for _, r := range f.replicas {
			if r.state == function.StateZero {
				r.state = function.StateStarting
				r.started = time.Now()
				if r.message == "" { // parked: start it; else parking is under way
					f.unpark(ctx, r)
				}
				break
			}
		}
		f.poke()
	default:
		if f.desired == 0 {
			f.desired = max(1, f.spec.MinReplicas())
			f.poke()
		}
	}
}

// unpark starts a parked replica's task. Called with f.mu held.
func (f *fn) unpark(ctx context.Context, r *replica) {
	r.message = "starting"
	id := r.id
	go func() {
		pid, err := f.c.tasks.Unpark(ctx, id)
		f.send(ctx, func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			r := f.replicas[id]
			if r == nil || r.state != function.StateStarting {
				return
			}
			if err != nil {
				f.c.log.Error("start parked replica", "fn", f.name, "replica", id, "err", err)
				f.drain(ctx, r)
				f.poke()
				return
			}
			r.pid = pid
			r.message = "waiting for " + lockPath
			f.watch(ctx, r, false)
		})
	}()
}
