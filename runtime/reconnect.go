package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/errdefs"

	"github.com/emberfaas/ember/function"
)

// Replica processes do not depend on containerd: their shims keep them
// running, and the proxy reaches them on their IPs, while containerd is
// down or restarting. So an error that only says containerd cannot be
// reached must never pass for a replica's exit or fault.

// Bounds of the retry delay while containerd is unreachable.
const (
	reconnectMin = 100 * time.Millisecond
	reconnectMax = 2 * time.Second
)

// unreachable reports whether err means containerd could not be reached,
// rather than an answer from it: a gRPC Unavailable (refused, EOF, reset),
// raw or translated by the client.
func unreachable(err error) bool {
	if err == nil {
		return false
	}
	if errdefs.IsUnavailable(err) || errdefs.IsUnavailable(errdefs.FromGRPC(err)) {
		return true
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}

// connState tracks whether containerd answers, so that its loss and its
// return are logged once each, not once per replica and retry.
type connState struct {
	down  bool
	since time.Time
}

// lost notes that containerd did not answer.
func (r *Runtime) lost(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn.down {
		return
	}
	r.conn = connState{down: true, since: time.Now()}
	r.log.Warn("containerd unreachable; replicas keep serving, waiting for it", "err", err)
}

// regained notes that containerd answered.
func (r *Runtime) regained() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.conn.down {
		return
	}
	r.log.Info("containerd reachable again", "after", time.Since(r.conn.since).Round(time.Millisecond))
	r.conn = connState{}
}

// unavailable wraps err with function.ErrRuntimeUnavailable when it means
// containerd could not be reached, so that callers outside this package
// can tell it from a fault of the replica.
func (r *Runtime) unavailable(err error) error {
	if !unreachable(err) {
		return err
	}
	r.lost(err)
	return fmt.Errorf("%w: %w", function.ErrRuntimeUnavailable, err)
}

// waitExit waits for the task's process to exit and reports how. A broken
// wait stream is not an exit: it re-subscribes, with backoff while
// containerd is unreachable, and a process that exited meanwhile is
// reported then, with the status its shim kept. task may be nil (not
// loaded yet). ok is false when ctx ended first.
func (r *Runtime) waitExit(ctx context.Context, id string, task containerd.Task) (ex function.Exit, ok bool) {
	delay := reconnectMin
	shimEnded := false // the last wait ended with the task's shim
	for {
		if task != nil {
			subscribed := time.Now()
			code, at, done, err := r.waitOnce(ctx, task)
			if time.Since(subscribed) > reconnectMax {
				// The stream was up: a later loss starts retrying fast.
				delay = reconnectMin
			}
			switch {
			case done:
				return function.Exit{}, false
			case err == nil:
				r.regained()
				return r.exit(ctx, id, code, at), true
			case !unreachable(err):
				// containerd answered, but not with an exit status:
				// look at the task again rather than guess.
				r.log.Debug("wait stream ended", "replica", id, "err", err)
				shimEnded = shimGone(err)
			default:
				r.lost(err)
			}
			task = nil
		}
		select {
		case <-ctx.Done():
			return function.Exit{}, false
		case <-time.After(delay):
		}
		delay = min(delay*2, reconnectMax)
		t, err := r.loadTask(ctx, id)
		switch {
		case ctx.Err() != nil:
			return function.Exit{}, false
		case errors.Is(err, ErrNotFound) && shimEnded:
			// Its shim died (and with it, as containerd cleaned up, the
			// process): the same for every replica the shim served.
			r.regained()
			return function.Exit{At: time.Now(), Err: errors.New("its shim ended")}, true
		case errors.Is(err, ErrNotFound):
			// Gone while we were not watching (its shim died with
			// containerd, or someone deleted it): no status is left.
			r.regained()
			return function.Exit{At: time.Now(), Err: fmt.Errorf("task of %s gone: %w", id, err)}, true
		case err != nil:
			if unreachable(err) {
				r.lost(err)
			} else {
				r.log.Debug("reload task", "replica", id, "err", err)
			}
			continue
		}
		r.regained()
		task = t
	}
}

// waitOnce subscribes to the task's exit once. done is set when ctx ended.
func (r *Runtime) waitOnce(ctx context.Context, task containerd.Task) (code uint32, at time.Time, done bool, err error) {
	sc, err := task.Wait(ctx)
	if err != nil {
		return 0, time.Time{}, ctx.Err() != nil, err
	}
	select {
	case st := <-sc:
		code, at, err := st.Result()
		return code, at, ctx.Err() != nil, err
	case <-ctx.Done():
		return 0, time.Time{}, true, nil
	}
}

// oomTrail is how long the exit of a SIGKILLed process waits for the OOM
// event that may trail it: containerd sends the event and the exit on
// separate streams.
const oomTrail = 100 * time.Millisecond

// exit builds a real exit's report, telling an OOM kill from others.
func (r *Runtime) exit(ctx context.Context, id string, code uint32, at time.Time) function.Exit {
	oom := r.oomKilled(id)
	if !oom && code == 137 {
		oom = r.awaitOOM(ctx, id, oomTrail)
	}
	return function.Exit{Code: code, At: at, OOMKilled: oom}
}
