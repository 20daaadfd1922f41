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
	name    string
	c       *Controller
	service bool // a service's policy, see service.go; a kind never changes

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
	// changed is closed at the loop's next turn, for WaitReady; nil while
	// nobody waits. See changes.
	changed chan struct{}

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

	// svcIP is a service's address, kept for its next replica (see
	// Placer). leftovers are its containers that a reboot left without a
	// task: removed before the next replica is created, so that it may
	// take their address.
	svcIP     netip.Addr
	leftovers []string
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
	// idle gets a token when the in-flight count of a closed replica
	// reaches zero, for the drain waiting on it (see drained).
	idle chan struct{}
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
	lastTail     []string // the log's last lines when the process last ended
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
	// adoptedAt is when it was adopted, zero once its process restarts:
	// how long it took to start up was the earlier daemon's business.
	adoptedAt time.Time
	// readyAfter is how long its process last took to be ready.
	readyAfter time.Duration
	// proves is set on a replica created while creation was backed off:
	// ready for BackoffReset, it shows the failures are over.
	proves bool
}

func newFn(c *Controller, spec function.Spec) *fn {
	f := &fn{
		name:     spec.Name,
		service:  spec.IsService(),
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
		f.turned()
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

// changes returns a channel closed once the loop has made its next turn
// after the call. A function's observed state changes on its loop only,
// or (a new spec, a removal) just before a poke makes it turn, so whoever
// waits for a state looks at it after calling changes and waits on the
// channel for the next look.
func (f *fn) changes() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.changed == nil {
		f.changed = make(chan struct{})
	}
	return f.changed
}

// turned wakes those waiting on changes. Called by the loop after each
// event and the reconcile that follows it.
func (f *fn) turned() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.changed != nil {
		close(f.changed)
		f.changed = nil
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
