package scale

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/emberfaas/ember/function"
)

var randRead = rand.Read

// Addr is the replica's host:port.
func (r *replica) Addr() string { return r.addr }

// Release returns a replica lent by Acquire. Only the last request out of
// a closed replica does more than count: it tells the drain waiting for it.
func (r *replica) Release() {
	r.f.inflight.Add(-1)
	if r.inflight.Add(-1) == 0 && r.closed.Load() {
		r.idled()
	}
}

// Timeout is the function's UpstreamTimeout.
func (r *replica) Timeout() time.Duration { return time.Duration(r.f.timeout.Load()) }

// Refused takes the replica out of rotation at once: its process has
// probably died, and the runtime's exit event can take a second or more to
// arrive, during which every request sent to it would fail. Requests that
// find no other ready replica are then held, as during a wake, until one
// is. The function's loop puts the replica back when it accepts
// connections again, or restarts it when its exit arrives.
func (r *replica) Refused() {
	if r.suspect.Swap(true) {
		return
	}
	r.closed.Store(true)
	f := r.f
	ctx := f.c.running.Load()
	if ctx == nil {
		return // no loops run (tests that never Run)
	}
	// Handed to the loop off the request's goroutine; it ends when the
	// loop takes the event or the controller stops.
	go f.send(*ctx, func() { f.refused(r.id) })
}

// refused handles Refused on the loop: a ready replica goes back to
// starting, out of rotation, until a dial succeeds again.
func (f *fn) refused(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.replicas[id]
	if r == nil {
		return
	}
	r.suspect.Store(false)
	if r.state != function.StateReady || r.wctx == nil {
		// Already out of rotation; whatever brings it back (health,
		// restart, thaw) opens it again.
		return
	}
	r.state = function.StateStarting
	r.message = "refused a connection: waiting until it accepts again"
	f.c.log.Warn("replica refused a connection", "fn", f.name, "replica", id)
	f.publish()
	go f.waitReady(r.wctx, r.id, r.pid, r.addr, false, r.ready.http, r.started)
}

// Acquire picks the next ready replica of a function, round-robin. When
// none is ready it asks the function to wake (thaw or start a replica) and
// waits up to WakeTimeout; concurrent requests share that wake-up.
func (c *Controller) Acquire(ctx context.Context, name string) (function.Lease, error) {
	f := (*c.fns.Load())[name]
	if f == nil || f.gone.Load() || f.service {
		return nil, fmt.Errorf("function %s: %w", name, function.ErrNotFound)
	}
	f.invocations.Add(1)
	if c.autoCold.Load() && c.autoCold.CompareAndSwap(true, false) {
		c.kickAutoscaler()
	}
	var timer *time.Timer
	for {
		// readyC is loaded before eps: it is closed after every change of
		// eps, so a change after this point wakes the wait below.
		ready := *f.readyC.Load()
		epsp := f.eps.Load()
		if eps := *epsp; len(eps) > 0 {
			n := uint64(len(eps))
			for range n {
				r := eps[f.rr.Add(1)%n]
				r.inflight.Add(1)
				// Checked after counting ourselves in: whoever closes a
				// replica sets the flag before it waits for the count to
				// reach zero, so either it sees us or we see it.
				if !r.closed.Load() {
					f.inflight.Add(1)
					return r, nil
				}
				if r.inflight.Add(-1) == 0 {
					r.idled() // its drain may have seen us counted in
				}
			}
		}
		// None ready, or all of them just closed: wait for the next
		// change rather than spin.
		if f.eps.Load() != epsp {
			continue
		}
		if timer == nil {
			if f.waiting.Add(1) > int64(c.cfg.MaxWaiting) {
				f.waiting.Add(-1)
				return nil, fmt.Errorf("function %s: %w (%d)", name, function.ErrQueueFull, c.cfg.MaxWaiting)
			}
			defer f.waiting.Add(-1)
			f.requestWake()
			c.kickAutoscaler() // the held requests are load
			timer = time.NewTimer(c.cfg.WakeTimeout)
			defer timer.Stop()
		}
		select {
		case <-ready:
			if f.gone.Load() {
				return nil, fmt.Errorf("function %s: %w", name, function.ErrNotFound)
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
			return nil, fmt.Errorf("function %s: %w within %s", name, function.ErrNoReplica, c.cfg.WakeTimeout)
		}
	}
}
