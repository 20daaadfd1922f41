package scale

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emberfaas/ember/function"
)

// phase is a function's place on the way to zero and back.
type phase int

const (
	phaseActive phase = iota // replicas run and serve
	phasePaused              // replicas frozen: no CPU, memory kept
	phaseZero                // one parked replica: no process, a created task
)

func (p phase) String() string {
	return [...]string{"active", "paused", "zero"}[p]
}

// fn is one function's replica set. Its loop is the only writer of the
// replica states; API readers take mu briefly, the proxy reads eps.
type fn struct {
	name string
	c    *Controller

	// Read by the proxy without locks.
	eps         atomic.Pointer[[]*replica] // ready replicas, in rotation
	rr          atomic.Uint64
	readyC      atomic.Pointer[chan struct{}] // closed (and replaced) after every change of eps
	invocations atomic.Uint64
	inflight    atomic.Int64
	gone        atomic.Bool  // set by markRemoving: Acquire answers ErrNotFound
	waiting     atomic.Int64 // requests held for a wake-up
	touched     atomic.Bool  // deployed or scaled: the autoscaler restarts its clock
	timeout     atomic.Int64 // the spec's UpstreamTimeout, for the proxy

	kick   chan struct{}
	wakeC  chan struct{}
	events chan func()
	done   chan struct{} // closed when a removed function's last replica is gone

	// auto is owned by the controller's autoscaler goroutine.
	auto autoState

	mu       sync.Mutex // guards below
	spec     function.Spec
	replicas map[string]*replica
	removing bool
	desired  int
	phase    phase
	pausedAt time.Time
	wakeAt   time.Time // when the current wake-up was asked for

	// Creation is backed off per function, not per replica: after a
	// failure every missing replica waits, and one create at a time tries
	// again, so a function that cannot start costs a few attempts a
	// minute however many replicas it wants.
	creating      int           // Create calls in flight
	createErr     string        // why the last creation failed; "" once one succeeds
	createFails   int           // failures that backed off since the last success
	createBackoff time.Duration // the delay the last failure set
	createAt      time.Time     // no creation before this
	createSeq     int           // bumped by each failure that backs off
}

// replica is one replica as the controller tracks it. Fields under fn.mu
// are written by the function's loop only.
type replica struct {
	f    *fn
	id   string
	hash string
	ip   netip.Addr
	addr string // ip:port, built once

	inflight atomic.Int64
	// closed is set before a replica leaves service (drain, pause): a
	// request that counted itself in and then sees it backs off.
	closed atomic.Bool
	// suspect is set by Refused until the loop has taken it out of
	// rotation, so a burst of refusals sends the loop one event.
	suspect atomic.Bool

	// under fn.mu
	pid          uint32
	cgroup       string
	state        function.State
	started      time.Time
	healthySince time.Time
	everReady    time.Time
	lastProbe    time.Time // last lock check through task exec
	restarts     int
	lastExit     string
	message      string
	misses       int
	replace      bool // unhealthy too long: a successor is started
	backoff      time.Duration
	restartAt    time.Time
	cancel       context.CancelFunc // stops its watchers
	wctx         context.Context    // the watchers' context, ended by cancel
	ready        readyState         // HTTP readiness, see ready.go
	// adopted is set on a replica found running after a restart until its
	// readiness is confirmed again: it was probably serving, so an
	// outdated one keeps its place until current ones are ready.
	adopted bool
	// proves is set on a replica created while creation was backed off:
	// ready for BackoffReset, it shows the failures are over.
	proves bool
}

func newFn(c *Controller, spec function.Spec) *fn {
	f := &fn{
		name:     spec.Name,
		c:        c,
		spec:     spec,
		desired:  spec.DesiredReplicas(),
		replicas: map[string]*replica{},
		kick:     make(chan struct{}, 1),
		wakeC:    make(chan struct{}, 1),
		events:   make(chan func(), 64),
		done:     make(chan struct{}),
	}
	f.eps.Store(&[]*replica{})
	f.timeout.Store(int64(spec.UpstreamTimeout()))
	ch := make(chan struct{})
	f.readyC.Store(&ch)
	return f
}

func (f *fn) poke() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// requestWake asks the loop to bring a paused or parked function back.
func (f *fn) requestWake() {
	select {
	case f.wakeC <- struct{}{}:
	default:
	}
}

// send hands an event to the loop; watchers use it so that all state
// changes happen on the loop's goroutine.
func (f *fn) send(ctx context.Context, ev func()) {
	select {
	case f.events <- ev:
	case <-ctx.Done():
	}
}

// setSpec applies a deployed spec, keeping the replica count within the
// new bounds. A deploy is activity: a paused or parked function wakes.
func (f *fn) setSpec(s function.Spec) {
	f.mu.Lock()
	if s.Hash() != f.spec.Hash() {
		// A new spec may well create where the old one could not.
		f.resetCreate()
	}
	f.spec = s
	f.timeout.Store(int64(s.UpstreamTimeout()))
	f.desired = min(max(f.desired, s.MinReplicas()), max(s.MaxReplicas(), s.MinReplicas()))
	f.mu.Unlock()
	f.requestWake()
	f.poke()
}

// setReplicas applies a scale request; zero parks the function, as
// OpenFaaS's idler does, and the next request wakes it.
func (f *fn) setReplicas(ctx context.Context, n int) {
	f.mu.Lock()
	f.spec.Replicas = n
	if n > 0 {
		f.desired = n
	}
	f.mu.Unlock()
	if n == 0 {
		// desired drops to zero in the same loop event that parks: a
		// reconcile in between would remove the replica instead.
		f.send(ctx, func() {
			f.mu.Lock()
			f.desired = 0
			f.mu.Unlock()
			f.goToZero(ctx)
		})
		return
	}
	f.requestWake()
	f.poke()
}

func (f *fn) specCopy() function.Spec {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.spec.Clone()
}

func (f *fn) markRemoving() {
	f.mu.Lock()
	f.removing = true
	f.gone.Store(true)
	// Wake Acquires waiting for a replica: there will be none.
	ch := make(chan struct{})
	close(*f.readyC.Swap(&ch))
	f.mu.Unlock()
	f.poke()
}

func (f *fn) isRemoving() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.removing
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
	r := &replica{f: f, id: in.ID, hash: hash, ip: in.IP, addr: f.addrOf(in.IP),
		pid: in.Pid, cgroup: in.Cgroup, state: function.StateStarting, started: in.Created, adopted: true}
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

func (f *fn) addrOf(ip netip.Addr) string {
	return net.JoinHostPort(ip.String(), strconv.Itoa(f.c.cfg.Port))
}

func (f *fn) run(ctx context.Context) {
	var (
		health = time.NewTimer(f.c.cfg.HealthInterval)
		retry  = time.NewTimer(time.Hour)
		ready  = time.NewTimer(time.Hour)
	)
	defer health.Stop()
	defer retry.Stop()
	defer ready.Stop()
	healthArmed := true
	// Adopted replicas need watchers.
	f.mu.Lock()
	for _, r := range f.replicas {
		if r.cancel == nil && (r.state == function.StateStarting || r.state == function.StatePaused) {
			// It was confirmed when it first started: serve again after a
			// stat and a dial; the probe loop execs into it soon after.
			f.watch(ctx, r, false)
		}
	}
	f.mu.Unlock()
	for {
		next := f.reconcile(ctx)
		if f.finished() {
			f.c.dropped(f)
			close(f.done)
			return
		}
		var retryC <-chan time.Time
		if !next.IsZero() {
			retry.Reset(time.Until(next))
			retryC = retry.C
		}
		// A function with nothing running has nothing to check: its loop
		// sleeps until an event, so idle functions cost no CPU.
		var healthC <-chan time.Time
		if f.needsHealth() {
			if !healthArmed {
				health.Reset(f.c.cfg.HealthInterval)
				healthArmed = true
			}
			healthC = health.C
		}
		var readyC <-chan time.Time
		if at := f.nextReadyCheck(); !at.IsZero() {
			ready.Reset(time.Until(at))
			readyC = ready.C
		}
		select {
		case <-ctx.Done():
			f.mu.Lock()
			for _, r := range f.replicas {
				if r.cancel != nil {
					r.cancel()
				}
			}
			f.mu.Unlock()
			return
		case <-f.kick:
		case <-f.wakeC:
			f.wake(ctx)
		case ev := <-f.events:
			ev()
		case <-healthC:
			healthArmed = false
			f.checkHealth()
		case <-readyC:
			f.checkReady(ctx)
		case <-retryC:
		}
	}
}

func (f *fn) finished() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.removing && len(f.replicas) == 0
}

func (f *fn) needsHealth() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.replicas {
		if r.state == function.StateReady || r.state == function.StateUnhealthy {
			return true
		}
	}
	return false
}

// reconcile moves the replica set one step towards the desired state and
// returns when it next needs to run for a timed action (a restart after
// backoff).
func (f *fn) reconcile(ctx context.Context) (next time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.phase != phaseActive && !f.removing {
		return time.Time{}
	}
	hash := f.spec.Hash()
	desired := f.desired
	if f.removing {
		desired = 0
	}
	for _, r := range f.replicas {
		if r.state == function.StateZero && r.message == "" && r.hash == hash && !f.removing {
			// A created, unstarted task in an active function: left by a
			// daemon killed between creating a task and starting it. It
			// counts toward desired, so start it; an outdated one is
			// removed below.
			r.state = function.StateStarting
			r.started = time.Now()
			f.unpark(ctx, r)
		}
	}
	var cur, old []*replica
	curReady := 0
	for _, r := range f.replicas {
		if r.state == function.StateStopping {
			continue
		}
		if r.hash == hash && !r.replace {
			cur = append(cur, r)
			if r.state == function.StateReady {
				curReady++
			}
		} else {
			old = append(old, r)
		}
	}
	// Start what is missing, all together on the function's creation
	// backoff and within its share of creation slots.
	now := time.Now()
	if missing := desired - len(cur); missing > 0 {
		if now.Before(f.createAt) {
			next = f.createAt
		} else {
			for range min(missing, f.createLimit()-f.creating) {
				f.create(ctx)
			}
		}
	}
	// Remove current replicas beyond desired: not-ready ones first, then
	// the newest.
	if extra := len(cur) - desired; extra > 0 {
		slices.SortFunc(cur, byRemoval)
		for _, r := range cur[:extra] {
			f.drain(ctx, r)
		}
	}
	// Outdated or replaced replicas keep serving until enough current ones
	// are ready to carry the load: no request fails during an update.
	// An adopted one counts as serving until its readiness is confirmed
	// again (a stat and a dial) or denied: draining it first would leave
	// an update interrupted by a daemon restart with nothing to serve.
	keepOld := max(0, desired-curReady)
	slices.SortFunc(old, byRemoval)
	for i, r := range old {
		serving := r.state == function.StateReady || r.state == function.StateUnhealthy ||
			(r.adopted && r.state == function.StateStarting)
		if i >= len(old)-keepOld && serving {
			continue
		}
		f.drain(ctx, r)
	}
	// Restarts due.
	for _, r := range f.replicas {
		if r.state != function.StateExited || r.restartAt.IsZero() {
			continue
		}
		if !now.Before(r.restartAt) {
			r.restartAt = time.Time{}
			f.restart(ctx, r)
		} else if next.IsZero() || r.restartAt.Before(next) {
			next = r.restartAt
		}
	}
	return next
}

// byRemoval orders replicas so the least useful go first and, of equal
// use, the newest: the longest running have proved themselves.
func byRemoval(a, b *replica) int {
	if d := rankForRemoval(a) - rankForRemoval(b); d != 0 {
		return d
	}
	return b.started.Compare(a.started)
}

// rankForRemoval orders replicas so the least useful go first.
func rankForRemoval(r *replica) int {
	switch r.state {
	case function.StateExited:
		return 0
	case function.StateUnhealthy:
		return 1
	case function.StateZero, function.StatePaused:
		return 2
	case function.StateStarting:
		return 3
	default:
		return 4
	}
}

// drain takes r out of rotation and removes it once its in-flight requests
// are done (or DrainTimeout passes). Called with f.mu held, on the loop.
func (f *fn) drain(ctx context.Context, r *replica) {
	wasReady := r.state == function.StateReady
	r.state = function.StateStopping
	r.closed.Store(true)
	if r.cancel != nil {
		r.cancel()
		r.cancel = nil
	}
	if wasReady {
		f.publish()
	}
	if r.addr == "" {
		// Still being created; the creation event removes it.
		return
	}
	go f.remove(ctx, r)
}

func (f *fn) remove(ctx context.Context, r *replica) {
	deadline := time.Now().Add(f.c.cfg.DrainTimeout)
	for r.inflight.Load() > 0 && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
	// Removal should finish even if the daemon is stopping; what it
	// cannot free in time is the janitor's, or the next start's.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.c.cfg.StopTimeout+30*time.Second)
	err := f.c.reps.Remove(rctx, f.name, r.id, f.c.cfg.StopTimeout)
	cancel()
	if err != nil {
		f.c.janitor.failed()
		f.c.log.Warn("remove replica failed, the janitor retries", "fn", f.name, "replica", r.id, "err", err)
	} else {
		f.c.log.Info("replica removed", "fn", f.name, "replica", r.id)
	}
	f.send(ctx, func() {
		f.mu.Lock()
		delete(f.replicas, r.id)
		f.mu.Unlock()
		if err != nil {
			// Only now is it no longer live: a sweep frees what is left.
			f.c.janitor.kick()
		}
	})
}

// publish rebuilds the proxy's snapshot of ready replicas. Called with
// f.mu held.
func (f *fn) publish() {
	eps := make([]*replica, 0, len(f.replicas))
	for _, r := range f.replicas {
		if r.state == function.StateReady {
			eps = append(eps, r)
		}
	}
	slices.SortFunc(eps, func(a, b *replica) int { return strings.Compare(a.id, b.id) })
	f.eps.Store(&eps)
	// Wake every request waiting for a change, whatever it is: those that
	// find no replica wait again.
	ch := make(chan struct{})
	close(*f.readyC.Swap(&ch))
	f.c.metrics.setReplicas(f)
}

// status reports the function's observed state.
func (f *fn) status() function.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := function.Status{Desired: f.desired, Invoked: f.invocations.Load(), Phase: f.phase.String()}
	if f.createErr != "" {
		st.LastError = "create failed: " + f.createErr
	}
	if f.phase != phaseActive {
		st.Desired = 0
	}
	for _, r := range f.replicas {
		if r.state == function.StateReady {
			st.Ready++
		}
		rep := function.Replica{ID: r.id, State: r.state, Started: r.started, Restarts: r.restarts,
			LastExit: r.lastExit, Message: r.message, Hash: r.hash}
		if r.ip.IsValid() {
			rep.IP = r.ip.String()
		}
		st.Replicas = append(st.Replicas, rep)
	}
	slices.SortFunc(st.Replicas, func(a, b function.Replica) int { return a.Started.Compare(b.Started) })
	return st
}

// currentReady reports whether a replica of the current spec is ready and,
// if not, the most telling reason. hopeless is set when waiting longer is
// pointless: the replica keeps exiting without ever having been ready.
//
// Ready means every replica in rotation runs the current spec: a deploy
// that returns while an old replica still serves would let the caller's
// next request reach the old version.
func (f *fn) currentReady() (ok, hopeless bool, why string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	hash := f.spec.Hash()
	eps := *f.eps.Load()
	ok = len(eps) > 0
	rolling := false
	for _, r := range eps {
		if r.hash != hash {
			ok, rolling = false, true
		}
	}
	if ok {
		return true, false, ""
	}
	if rolling {
		// Said unless a new replica has something more telling.
		defer func() {
			if why == "" {
				why = "rolling update: old replicas still serving"
			}
		}()
	}
	crashing := false
	for _, r := range f.replicas {
		if r.hash != hash || r.state == function.StateReady {
			continue
		}
		if r.message != "" && (why == "" || r.state == function.StateExited) {
			why = r.message
		}
		if r.state == function.StateExited && r.restarts >= crashLoopRestarts && r.everReady.IsZero() {
			crashing = true
		}
	}
	switch {
	case crashing:
		return false, true, "crash-looping: " + why
	case f.createErr != "":
		// Failing time after time, as a crash loop does: waiting through
		// the backoff will not help.
		return false, f.createFails > crashLoopRestarts, "create failed: " + f.createErr
	}
	return false, false, why
}

// crashLoopRestarts is how many failed restarts of a never-ready replica
// make WaitReady give up early (after about 1s+2s of backoff).
const crashLoopRestarts = 2

func nextBackoff(cur, lo, hi time.Duration) time.Duration {
	if cur == 0 {
		return lo
	}
	return min(cur*2, hi)
}

func newReplicaID(fn string) string {
	var b [4]byte
	if _, err := randRead(b[:]); err != nil {
		panic(err)
	}
	return fmt.Sprintf("%s-%x", fn, b)
}
