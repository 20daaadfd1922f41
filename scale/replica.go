package scale

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/emberfaas/ember/function"
)

// createsPerFn bounds one function's creates in flight while creation
// works; after a failure it is one at a time. With the host-wide bound
// (Config.MaxCreates) it keeps a scale-up from flooding containerd and
// CNI, whose iptables changes serialise on one lock anyway.
const createsPerFn = 2

// errDrained ends a creation whose replica was drained while it waited
// for a slot: nothing was created, nothing failed.
var errDrained = errors.New("drained before creation")

// create starts a replica in the background; it counts as "starting" at
// once so the next reconcile does not start another. Called with f.mu
// held, on the loop.
func (f *fn) create(ctx context.Context) {
	spec := f.spec.Clone()
	id := newReplicaID(f.name)
	r := &replica{f: f, id: id, hash: spec.Hash(), idle: make(chan struct{}, 1), state: function.StateStarting, started: time.Now(),
		message: "waiting for a creation slot", ready: readyFor(spec), proves: f.createBackoff > 0}
	f.replicas[id] = r
	f.creating++
	seq := f.createSeq
	var at netip.Addr
	var leftovers []string
	if f.service {
		at, leftovers, f.leftovers = f.svcIP, f.leftovers, nil
	}
	go func() {
		in, err := f.createIn(ctx, spec, r, at, leftovers)
		why := ""
		if err != nil && !errors.Is(err, errDrained) {
			// Explained here, off the loop: the count of addresses in use
			// takes every function's lock.
			why = f.c.explainCreate(err)
		}
		f.send(ctx, func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.creating--
			if err != nil {
				delete(f.replicas, id)
				if why != "" {
					f.createFailed(ctx, spec.Hash(), seq, id, why)
					// The runtime undid what it made, if it could; a
					// sweep frees whatever it could not.
					f.c.janitor.kick()
				}
				return
			}
			if spec.Hash() == f.spec.Hash() {
				f.createErr, f.createFails = "", 0
			}
			r.ip, r.pid, r.addr, r.cgroup = in.IP, in.Pid, f.addrOf(in.IP), in.Cgroup
			r.message = "waiting for " + lockPath
			if f.service {
				r.message = "waiting for the healthcheck"
				if f.svcIP.IsValid() && in.IP != f.svcIP {
					f.c.log.Warn("service moved to a new address", "fn", f.name, "replica", id, "was", f.svcIP, "ip", in.IP)
				}
				f.svcIP = in.IP
				f.c.kickHosts()
			}
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

// createIn creates r's container and task once a host-wide creation slot
// is free, unless r was drained while it waited. A service's replica goes
// at its address at, once the leftovers that may hold it are removed.
func (f *fn) createIn(ctx context.Context, spec function.Spec, r *replica, at netip.Addr, leftovers []string) (function.Instance, error) {
	select {
	case f.c.creates <- struct{}{}:
	case <-ctx.Done():
		return function.Instance{}, errDrained
	}
	defer func() { <-f.c.creates }()
	f.mu.Lock()
	drained := r.state == function.StateStopping
	if !drained {
		r.message = "creating container"
	}
	f.mu.Unlock()
	if drained {
		return function.Instance{}, errDrained
	}
	for _, id := range leftovers {
		if err := f.c.reps.Remove(ctx, f.name, id, 0); err != nil {
			// Not this replica's failure: the janitor frees it later, and
			// the replica takes a new address meanwhile.
			f.c.log.Warn("remove leftover of a service", "fn", f.name, "replica", id, "err", err)
			f.c.janitor.kick()
		}
	}
	var in function.Instance
	var err error
	if at.IsValid() && f.c.place != nil {
		in, err = f.c.place.CreateAt(ctx, spec, r.id, at)
	} else {
		in, err = f.c.reps.Create(ctx, spec, r.id)
	}
	if err != nil && ctx.Err() != nil {
		return function.Instance{}, errDrained // the daemon is stopping
	}
	return in, err
}

// createFailed records a failed creation for the function as a whole: the
// reason, where WaitReady and describe find it, and the backoff that
// delays every missing replica. Creations that were already under way
// when an earlier one failed add no further delay: N replicas failing
// together are one failure. Called with f.mu held, on the loop.
func (f *fn) createFailed(ctx context.Context, hash string, seq int, id, why string) {
	if hash != f.spec.Hash() {
		f.c.log.Warn("create replica of a replaced spec failed", "fn", f.name, "replica", id, "err", why)
		return
	}
	f.c.metrics.createFailures.WithLabelValues(f.metricName()).Inc()
	f.createErr = why
	if seq != f.createSeq {
		f.c.log.Warn("create replica failed", "fn", f.name, "replica", id, "err", why, "retry_in", time.Until(f.createAt).Round(time.Millisecond))
		return
	}
	now := time.Now()
	for _, r := range f.replicas {
		if r.proves && r.hash == hash && r.state == function.StateReady && now.Sub(r.healthySince) >= f.c.cfg.BackoffReset {
			f.createBackoff = 0 // the earlier failures are history
		}
		r.proves = false
	}
	f.createBackoff = nextBackoff(f.createBackoff, f.c.cfg.BackoffMin, f.c.cfg.BackoffMax)
	f.createAt = now.Add(f.createBackoff)
	f.createSeq++
	f.createFails++
	f.c.log.Error("create replica failed", "fn", f.name, "replica", id, "err", why, "retry_in", f.createBackoff)
	f.poke()
}

// resetCreate forgets creation failures, for a new spec. Called with f.mu
// held.
func (f *fn) resetCreate() {
	f.createErr, f.createFails, f.createBackoff, f.createAt = "", 0, 0, time.Time{}
	f.createSeq++
}

// createLimit is how many creates the function may have in flight.
func (f *fn) createLimit() int {
	if f.createErr != "" {
		return 1
	}
	return createsPerFn
}

const lockPath = "/tmp/.lock"

// watch starts a replica's watchers: one waits for its exit, one for its
// readiness (unless it is paused). probe makes readiness also confirm the
// lock through task exec; a wake-up skips that (the probe loop confirms
// it soon after) because an exec costs 80 ms on the request's path.
// Called with f.mu held, on the loop.
func (f *fn) watch(ctx context.Context, r *replica, probe bool) {
	wctx, cancel := context.WithCancel(ctx)
	r.cancel, r.wctx = cancel, wctx
	id, pid, addr := r.id, r.pid, r.addr
	exitC, err := f.c.tasks.Wait(wctx, id)
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
		if f.service {
			go f.waitHealthy(wctx, id, f.spec.Clone())
			return
		}
		go f.waitReady(wctx, id, pid, addr, probe, r.ready.http, r.started)
	}
}

// waitReady polls a starting replica until the lock file exists, the
// port accepts connections and the readiness path (rh, if any) answers
// 2xx. The poll is a stat and a dial, so it can be fast. With probe, the
// lock is then confirmed through task exec — after the replica joined
// rotation, not before: the exec (runc, then the probe binary's start)
// takes tens of milliseconds that a deploy or a scale-up would otherwise
// wait for, to confirm what the stat through /proc/PID/root already saw.
// A probe that disagrees takes the replica out as a periodic one does.
func (f *fn) waitReady(ctx context.Context, id string, pid uint32, addr string, probe bool, rh *function.ReadyHTTP, since time.Time) {
	delay := time.Millisecond
	var last string
	for {
		msg := ""
		wait := delay
		if ok, err := f.c.prober.LockVisible(pid); err != nil {
			msg = "checking " + lockPath + ": " + err.Error()
		} else if !ok {
			msg = "no lock file " + lockPath + " yet"
		} else if err := f.c.cfg.Dial(ctx, addr); err != nil {
			msg = lockPath + " present, port not accepting connections yet"
		} else if why, retry := f.readyGate(ctx, rh, addr, since); why != "" {
			msg, wait = why, max(delay, retry)
		} else {
			f.send(ctx, func() { f.becameReady(id, false) })
			if probe {
				ok, err := f.c.prober.ProbeLock(ctx, id)
				f.send(ctx, func() { f.probed(id, ok, err) })
			}
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
	r.adopted = false
	r.message = ""
	r.misses = 0
	r.healthySince = now
	r.everReady = now
	if probed {
		r.lastProbe = now
	}
	r.closed.Store(false)
	r.readyArmed(now)
	f.c.wakeProber()
	if f.service {
		f.c.kickHosts()
	}
	if !r.adoptedAt.IsZero() && r.started.Before(r.adoptedAt) {
		// Running since before this daemon: now less its creation is the
		// daemon's downtime, not a start-up, and would skew the startup
		// histogram.
		f.c.log.Info("adopted replica ready", "fn", f.name, "replica", id, "checked_in", now.Sub(r.adoptedAt).Round(time.Millisecond))
	} else {
		r.adoptedAt = time.Time{}
		r.readyAfter = now.Sub(r.started)
		f.c.metrics.ready(f, r, now)
		f.c.log.Info("replica ready", "fn", f.name, "replica", id, "after", r.readyAfter.Round(time.Millisecond))
	}
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
	// The log holds every run of the process: keep only what this run
	// wrote, or a crash loop shows the same panic once per restart.
	all := f.c.logs.LogTail(f.name, id, 10)
	tail := newOutput(r.lastTail, all)
	r.lastTail = all
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
	r.state = function.StateStarting
	r.message = "restarting"
	r.restarts++
	f.c.metrics.restarts.WithLabelValues(f.metricName()).Inc()
	id := r.id
	go func() {
		pid, err := f.c.tasks.Restart(ctx, id)
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

// newOutput returns the lines of tail that the last run wrote, given the
// tail read when the run before it ended: the longest end of prev that
// tail starts with is the earlier runs' output.
func newOutput(prev, tail []string) []string {
	for k := min(len(prev), len(tail)); k > 0; k-- {
		if slices.Equal(prev[len(prev)-k:], tail[:k]) {
			return tail[k:]
		}
	}
	return tail
}
