package scale

import (
	"context"
	"time"

	"github.com/emberfaas/ember/function"
)

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
	if r.drained(ctx, f.c.cfg.DrainTimeout) != nil {
		return // the daemon is stopping: the next one adopts it
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

// drained waits until r has no request in flight, or timeout passes, and
// returns ctx's error if ctx ends first. r must be closed already: the
// request that then brings its count to zero signals r.idle, so the drain
// ends as that request does, and an idle replica costs no wake-ups.
//
// Closing before counting is what makes a signal impossible to miss: a
// request counts itself in, then looks at closed (see Acquire); either it
// sees the replica closed and signals on its way out, or it was counted
// before the load below.
func (r *replica) drained(ctx context.Context, timeout time.Duration) error {
	if r.inflight.Load() == 0 {
		return nil
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	// A token may be stale (left by an earlier closing, such as a pause
	// that did not take): each one only makes the count be looked at again.
	for r.inflight.Load() > 0 {
		select {
		case <-r.idle:
		case <-t.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// idled tells the drain waiting for r, if any, that a closed replica's
// count reached zero. It never blocks: one pending token is enough.
func (r *replica) idled() {
	select {
	case r.idle <- struct{}{}:
	default:
	}
}
