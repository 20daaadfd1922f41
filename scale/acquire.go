package scale

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/emberfaas/ember/function"
)

var randRead = rand.Read

// ErrNoReplica is returned by Acquire when no replica became ready in time.
var ErrNoReplica = errors.New("no ready replica")

// Addr is the replica's host:port.
func (r *replica) Addr() string { return r.addr }

// Release returns a replica lent by Acquire.
func (r *replica) Release() {
	r.inflight.Add(-1)
	r.f.inflight.Add(-1)
}

// Acquire picks the next ready replica of a function, round-robin. When
// none is ready (the function is starting) it waits up to WakeTimeout.
func (c *Controller) Acquire(ctx context.Context, name string) (function.Lease, error) {
	f := (*c.fns.Load())[name]
	if f == nil {
		return nil, fmt.Errorf("function %s: %w", name, function.ErrNotFound)
	}
	f.invocations.Add(1)
	var timer *time.Timer
	for {
		eps := *f.eps.Load()
		if n := len(eps); n > 0 {
			for range n {
				r := eps[f.rr.Add(1)%uint64(n)]
				r.inflight.Add(1)
				// Checked after counting ourselves in: a drainer sets the
				// flag before it waits for the count to reach zero, so
				// either it sees us or we see it.
				if !r.draining.Load() {
					f.inflight.Add(1)
					return r, nil
				}
				r.inflight.Add(-1)
			}
		}
		ready := *f.readyC.Load()
		if len(*f.eps.Load()) > 0 {
			continue
		}
		if timer == nil {
			timer = time.NewTimer(c.cfg.WakeTimeout)
			defer timer.Stop()
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
			return nil, fmt.Errorf("function %s: %w within %s", name, ErrNoReplica, c.cfg.WakeTimeout)
		}
	}
}
