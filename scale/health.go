package scale

import (
	"context"
	"errors"
	"time"

	"github.com/emberfaas/ember/function"
)

// Health: a stat of each ready replica's lock file every HealthInterval
// (through /proc/PID/root, no process), and an exec of the probe in one
// replica at a time, bounded by ProbeSpacing and ProbeEvery.

// checkHealth looks at every ready or unhealthy replica's lock file. A
// missing lock takes a replica out of rotation at once; after HealthMisses
// consecutive misses it is replaced, successor first.
func (f *fn) checkHealth() {
	if f.service {
		// No lock file: a service's process exiting is what the
		// controller watches, and its healthcheck gates readiness.
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	changed := false
	for _, r := range f.replicas {
		if r.state != function.StateReady && r.state != function.StateUnhealthy {
			continue
		}
		ok, err := f.c.prober.LockVisible(r.pid)
		if err != nil {
			// The process is gone; the exit watcher reports it.
			continue
		}
		switch {
		case ok && r.state == function.StateUnhealthy && !r.ready.failing:
			r.state, r.misses, r.message = function.StateReady, 0, ""
			r.closed.Store(false)
			f.c.log.Info("replica healthy again", "fn", f.name, "replica", r.id)
			// The probe loop sleeps when no replica is ready.
			f.c.wakeProber()
			changed = true
		case ok:
			r.misses = 0
		default:
			changed = f.miss(r, lockPath+" missing") || changed
		}
	}
	if changed {
		f.publish()
	}
}

// miss records a failed health check: the replica leaves rotation at once
// and is replaced after HealthMisses in a row. It reports whether the set
// of ready replicas changed. Called with f.mu held.
func (f *fn) miss(r *replica, why string) bool {
	r.misses++
	f.c.metrics.healthFailures.WithLabelValues(f.metricName()).Inc()
	changed := false
	if r.state == function.StateReady {
		r.state = function.StateUnhealthy
		r.message = why
		f.c.log.Warn("replica unhealthy", "fn", f.name, "replica", r.id, "why", why)
		changed = true
	}
	if r.misses >= f.c.cfg.HealthMisses && !r.replace {
		r.replace = true
		f.c.log.Warn("replacing unhealthy replica", "fn", f.name, "replica", r.id, "misses", r.misses)
		f.poke()
	}
	return changed
}

// probed takes the result of an exec probe. A probe that could not run
// because the runtime is unreachable (containerd restarting) is no miss:
// the replica's process does not depend on containerd and keeps serving,
// so the result is unknown and the replica is probed again later.
func (f *fn) probed(id string, ok bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.replicas[id]
	if r == nil || r.state != function.StateReady {
		return
	}
	if ok {
		r.lastProbe = time.Now()
		return
	}
	if errors.Is(err, function.ErrRuntimeUnavailable) {
		// Due again at once: probe it first when the runtime is back.
		r.lastProbe = time.Time{}
		return
	}
	why := "probe found no " + lockPath
	if err != nil {
		why = "probe failed: " + err.Error()
	}
	if f.miss(r, why) {
		f.publish()
	}
}

// probeLoop execs the lock probe in one ready replica every ProbeSpacing,
// choosing the one checked longest ago, so the exec cost is bounded and
// shared fairly.
func (c *Controller) probeLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.ProbeSpacing)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f, id, anyReady := c.nextProbe()
		if !anyReady {
			// Nothing runs: sleep until a replica becomes ready, so an
			// idle host costs no CPU.
			t.Stop()
			select {
			case <-ctx.Done():
				return
			case <-c.probeWake:
			}
			t.Reset(c.cfg.ProbeSpacing)
			continue
		}
		if f == nil {
			continue
		}
		ok, err := c.prober.ProbeLock(ctx, id)
		f.send(ctx, func() { f.probed(id, ok, err) })
	}
}

// nextProbe picks the ready replica whose last exec probe is oldest and
// older than ProbeEvery, and marks it probed. anyReady reports whether any
// replica is ready at all.
func (c *Controller) nextProbe() (_ *fn, _ string, anyReady bool) {
	var (
		bestF *fn
		best  *replica
	)
	cutoff := time.Now().Add(-c.cfg.ProbeEvery)
	for _, f := range *c.fns.Load() {
		if f.service {
			continue
		}
		f.mu.Lock()
		for _, r := range f.replicas {
			if r.state != function.StateReady {
				continue
			}
			anyReady = true
			if r.lastProbe.Before(cutoff) && (best == nil || r.lastProbe.Before(best.lastProbe)) {
				bestF, best = f, r
			}
		}
		f.mu.Unlock()
	}
	if best == nil {
		return nil, "", anyReady
	}
	bestF.mu.Lock()
	best.lastProbe = time.Now()
	bestF.mu.Unlock()
	return bestF, best.id, true
}

func (c *Controller) startLoop(f *fn) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f.run(c.ctx)
	}()
}
