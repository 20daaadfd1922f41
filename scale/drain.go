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
