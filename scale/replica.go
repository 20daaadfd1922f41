package scale

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/emberfaas/ember/function"
)

// create starts a replica in the background; it counts as "starting" at
// once so the next reconcile does not start another.
func (f *fn) create(ctx context.Context) {
	spec := f.spec.Clone()
	id := newReplicaID(f.name)
	r := &replica{f: f, id: id, hash: spec.Hash(), state: function.StateStarting, started: time.Now(),
		message: "creating container", ready: readyFor(spec)}
	f.replicas[id] = r
	go func() {
		in, err := f.c.rt.Create(ctx, spec, id)
		f.send(ctx, func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			if err != nil {
				delete(f.replicas, id)
				f.c.log.Error("create replica", "fn", f.name, "replica", id, "err", err)
				f.lastCreateErr(err)
				// The runtime undid what it made, if it could; a sweep
				// frees whatever it could not.
				f.c.janitor.kick()
				return
			}
			r.ip, r.pid, r.addr, r.cgroup = in.IP, in.Pid, f.addrOf(in.IP), in.Cgroup
			r.message = "waiting for " + lockPath
			f.c.log.Info("replica started", "fn", f.name, "replica", id, "ip", in.IP)
			if r.state == function.StateStopping {
				// Drained while being created.
				go f.remove(ctx, r)
				return
			}
			f.watch(ctx, r, true)
		})
	}()
}

const lockPath = "/tmp/.lock"

// lastCreateErr keeps a failed creation's reason where WaitReady and
// describe find it; a function that cannot even create a container must
// not retry in a tight loop, so the next attempt is delayed.
func (f *fn) lastCreateErr(err error) {
	r := &replica{f: f, id: "failed", state: function.StateExited, lastExit: err.Error(),
		message: "create failed: " + err.Error(), hash: f.spec.Hash()}
	if prev, ok := f.replicas["failed"]; ok {
		r.backoff = prev.backoff
	}
	r.backoff = nextBackoff(r.backoff, f.c.cfg.BackoffMin, f.c.cfg.BackoffMax)
	r.restartAt = time.Now().Add(r.backoff)
	f.replicas["failed"] = r
}

// watch starts a replica's watchers: one waits for its exit, one for its
// readiness (unless it is paused). probe makes readiness also confirm the
// lock through task exec; a wake-up skips that (the probe loop confirms
// it soon after) because an exec costs 80 ms on the request's path.
// Called with f.mu held, on the loop.
func (f *fn) watch(ctx context.Context, r *replica, probe bool) {
	wctx, cancel := context.WithCancel(ctx)
	r.cancel, r.wctx = cancel, wctx
	id, pid, addr := r.id, r.pid, r.addr
	exitC, err := f.c.rt.Wait(wctx, id)
	if err != nil {
		f.c.log.Error("wait replica", "fn", f.name, "replica", id, "err", err)
		r.state = function.StateExited
		r.lastExit = err.Error()
		r.restartAt = time.Now()
		return
	}
	go func() {
		ex, ok := <-exitC
		if !ok {
			return
		}
		f.send(ctx, func() { f.exited(ctx, id, ex) })
	}()
	if r.state == function.StateStarting {
		go f.waitReady(wctx, id, pid, addr, probe, r.ready.http, r.started)
	}
}

// waitReady polls a starting replica until the lock file exists, the
// port accepts connections and the readiness path (rh, if any) answers
// 2xx, then (with probe) confirms the lock through task exec. The poll is a
// stat and a dial, so it can be fast.
func (f *fn) waitReady(ctx context.Context, id string, pid uint32, addr string, probe bool, rh *function.ReadyHTTP, since time.Time) {
	delay := time.Millisecond
	var last string
	for {
		msg := ""
		wait := delay
		if ok, err := f.c.rt.LockVisible(pid); err != nil {
			msg = "checking " + lockPath + ": " + err.Error()
		} else if !ok {
			msg = "no lock file " + lockPath + " yet"
		} else if err := f.c.cfg.Dial(ctx, addr); err != nil {
			msg = lockPath + " present, port not accepting connections yet"
		} else if why, retry := f.readyGate(ctx, rh, addr, since); why != "" {
			msg, wait = why, max(delay, retry)
		} else if !probe {
			f.send(ctx, func() { f.becameReady(id, false) })
			return
		} else if ok, err := f.c.rt.ProbeLock(ctx, id); err != nil || !ok {
			msg = fmt.Sprintf("probe found no lock (%v)", err)
		} else {
			f.send(ctx, func() { f.becameReady(id, true) })
			return
		}
		if msg != last {
			last = msg
			f.send(ctx, func() { f.setMessage(id, msg) })
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		delay = min(delay*3/2+time.Millisecond, 100*time.Millisecond)
	}
}

func (f *fn) setMessage(id, msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r := f.replicas[id]; r != nil && r.state == function.StateStarting {
		r.message = msg
	}
}

func (f *fn) becameReady(id string, probed bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.replicas[id]
	if r == nil || r.state != function.StateStarting {
		return
	}
	now := time.Now()
	r.state = function.StateReady
	r.message = ""
	r.misses = 0
	r.healthySince = now
	r.everReady = now
	if probed {
		r.lastProbe = now
	}
	r.closed.Store(false)
	r.readyArmed(now)
	f.c.metrics.ready(f, r, now)
	f.c.wakeProber()
	f.c.log.Info("replica ready", "fn", f.name, "replica", id, "after", now.Sub(r.started).Round(time.Millisecond))
	f.publish()
}

// exited handles a replica's process ending.
func (f *fn) exited(ctx context.Context, id string, ex function.Exit) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.replicas[id]
	if r == nil || r.state == function.StateStopping || r.state == function.StateZero {
		return
	}
	if r.cancel != nil {
		r.cancel()
		r.cancel = nil
	}
	wasReady := r.state == function.StateReady
	r.state = function.StateExited
	r.closed.Store(true)
	r.lastExit = ex.String()
	tail := f.c.rt.LogTail(f.name, id, 10)
	r.message = "process exited: " + r.lastExit
	if len(tail) > 0 {
		r.message += "; last output:\n" + strings.Join(tail, "\n")
	}
	if !r.healthySince.IsZero() && time.Since(r.healthySince) >= f.c.cfg.BackoffReset {
		r.backoff = 0
	}
	r.backoff = nextBackoff(r.backoff, f.c.cfg.BackoffMin, f.c.cfg.BackoffMax)
	r.restartAt = time.Now().Add(r.backoff)
	r.healthySince = time.Time{}
	f.c.metrics.exits.WithLabelValues(f.metricName()).Inc()
	f.c.log.Warn("replica exited", "fn", f.name, "replica", id, "exit", r.lastExit, "restart_in", r.backoff)
	if wasReady {
		f.publish()
	}
}

func (f *fn) restart(ctx context.Context, r *replica) {
	if r.id == "failed" {
		// A failed creation: forget it and let reconcile create anew.
		delete(f.replicas, r.id)
		f.poke()
		return
	}
	r.state = function.StateStarting
	r.message = "restarting"
	r.restarts++
	f.c.metrics.restarts.WithLabelValues(f.metricName()).Inc()
	id := r.id
	go func() {
		pid, err := f.c.rt.Restart(ctx, id)
		f.send(ctx, func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			r := f.replicas[id]
			if r == nil || r.state != function.StateStarting {
				return
			}
			if err != nil {
				f.c.log.Error("restart replica", "fn", f.name, "replica", id, "err", err)
				r.state = function.StateExited
				r.lastExit = err.Error()
				r.backoff = nextBackoff(r.backoff, f.c.cfg.BackoffMin, f.c.cfg.BackoffMax)
				r.restartAt = time.Now().Add(r.backoff)
				f.poke()
				return
			}
			f.c.log.Info("replica restarted", "fn", f.name, "replica", id, "restarts", r.restarts)
			r.pid = pid
			r.started = time.Now()
			f.watch(ctx, r, true)
		})
	}()
}
