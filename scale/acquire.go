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

// Release returns a replica lent by Acquire.
func (r *replica) Release() {
	r.inflight.Add(-1)
	r.f.inflight.Add(-1)
}

// Acquire picks the next ready replica of a function, round-robin. When
// none is ready it asks the function to wake (thaw or start a replica) and
// waits up to WakeTimeout; concurrent requests share that wake-up.
func (c *Controller) Acquire(ctx context.Context, name string) (function.Lease, error) {
	f := (*c.fns.Load())[name]
	if f == nil || f.gone.Load() {
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
				r.inflight.Add(-1)
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
