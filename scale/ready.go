package scale

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/emberfaas/ember/function"
)

// HTTP readiness (the com.openfaas.ready.http.* annotations): the lock and
// the open port say a process is up, not that it can serve; a GET of the
// readiness path says that. A starting replica joins rotation only once the
// path answers 2xx; a ready one is checked every period, and a failing
// check takes it out of rotation until a check passes again.
//
// Unlike a missing lock, failing checks never replace a replica: they
// usually mean a dependency (the database) is down or misconfigured, and a
// fresh replica would fail the same way while costing a start. That is
// Kubernetes' split too: readiness gates traffic, liveness restarts.

// readyTimeout bounds one readiness GET, as Kubernetes' timeoutSeconds
// default does.
const readyTimeout = time.Second

// readyRetry is the shortest gap between readiness GETs of a starting
// replica: the lock and port checks before it are a stat and a dial and
// may run every few milliseconds, a GET reaches the function's code.
const readyRetry = 250 * time.Millisecond

// readyState is a replica's HTTP readiness check. Under fn.mu.
type readyState struct {
	http    *function.ReadyHTTP // nil: the lock and the port only
	next    time.Time           // when the next periodic check is due
	busy    bool                // a periodic check is in flight
	failing bool                // the last periodic check failed
}

// readyFor returns the readiness check a replica of spec gets.
func readyFor(spec function.Spec) readyState {
	rh, ok := spec.ReadyHTTP()
	if !ok {
		return readyState{}
	}
	return readyState{http: &rh}
}

// readyGate is waitReady's HTTP step: it returns "" when rh is nil or the
// path answers 2xx, else why not and how long to wait before asking again.
// since is when the replica started, for the initial delay.
func (f *fn) readyGate(ctx context.Context, rh *function.ReadyHTTP, addr string, since time.Time) (why string, retry time.Duration) {
	if rh == nil {
		return "", 0
	}
	if wait := time.Until(since.Add(rh.InitialDelay)); wait > 0 {
		return fmt.Sprintf("readiness GET %s waits for its initial delay of %s", rh.Path, rh.InitialDelay), wait
	}
	return f.getReady(ctx, addr, rh.Path), readyRetry
}

// getReady asks the readiness path once and returns "" for a 2xx answer,
// else a message naming the path and the status or error.
func (f *fn) getReady(ctx context.Context, addr, path string) string {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	code, err := f.c.cfg.ReadyGet(ctx, addr, path)
	switch {
	case err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Sprintf("readiness GET %s: no answer within %s", path, readyTimeout)
	case err != nil:
		return fmt.Sprintf("readiness GET %s: %v", path, err)
	case code < 200 || code > 299:
		return fmt.Sprintf("readiness GET %s answered %d", path, code)
	}
	return ""
}

// readyArmed schedules the first periodic check of a replica that has just
// become ready. Called with f.mu held.
func (r *replica) readyArmed(now time.Time) {
	if r.ready.http != nil {
		r.ready.next = now.Add(r.ready.http.Period)
		r.ready.failing = false
	}
}

func (r *replica) readyDue(now time.Time) bool {
	return r.ready.http != nil && !r.ready.busy && !now.Before(r.ready.next) &&
		(r.state == function.StateReady || r.state == function.StateUnhealthy)
}

// nextReadyCheck returns when the loop must start the next periodic
// readiness check, zero for none: paused, parked and starting replicas are
// not checked, so an idle function's loop still sleeps.
func (f *fn) nextReadyCheck() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	var next time.Time
	for _, r := range f.replicas {
		if r.ready.http == nil || r.ready.busy || (r.state != function.StateReady && r.state != function.StateUnhealthy) {
			continue
		}
		if next.IsZero() || r.ready.next.Before(next) {
			next = r.ready.next
		}
	}
	return next
}

// checkReady starts the due readiness checks. Each GET runs in its own
// goroutine, off fn.mu, and hands its result back to the loop; it ends
// within readyTimeout.
func (f *fn) checkReady(ctx context.Context) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	for _, r := range f.replicas {
		if !r.readyDue(now) {
			continue
		}
		r.ready.busy = true
		id, addr, path := r.id, r.addr, r.ready.http.Path
		go func() {
			why := f.getReady(ctx, addr, path)
			f.send(ctx, func() { f.readyChecked(id, why) })
		}()
	}
}

// readyChecked takes a periodic check's result: why is "" when it passed.
// A failure takes a ready replica out of rotation; a pass brings it back
// unless its lock is missing too.
func (f *fn) readyChecked(id, why string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.replicas[id]
	if r == nil || r.ready.http == nil {
		return
	}
	r.ready.busy = false
	r.ready.next = time.Now().Add(r.ready.http.Period)
	if r.state != function.StateReady && r.state != function.StateUnhealthy {
		return
	}
	if why != "" {
		r.ready.failing = true
		f.c.metrics.healthFailures.WithLabelValues(f.metricName()).Inc()
		switch {
		case r.state == function.StateReady:
			r.state = function.StateUnhealthy
			r.message = why
			f.c.log.Warn("replica unhealthy", "fn", f.name, "replica", r.id, "why", why)
			f.publish()
		case r.misses == 0:
			// Out of rotation for readiness alone: keep the latest reason.
			r.message = why
		}
		return
	}
	r.ready.failing = false
	if r.state == function.StateUnhealthy && r.misses == 0 {
		r.state, r.message = function.StateReady, ""
		r.closed.Store(false)
		f.c.log.Info("replica healthy again", "fn", f.name, "replica", r.id)
		f.publish()
	}
}

// readyGetter returns the default Config.ReadyGet: a plain GET that follows
// no redirect (a 3xx is not ready) and keeps no connection between checks.
func readyGetter() func(ctx context.Context, addr, path string) (int, error) {
	hc := &http.Client{
		Transport:     &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return func(ctx context.Context, addr, path string) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
		if err != nil {
			return 0, err
		}
		req.Header.Set("User-Agent", "ember-probe")
		resp, err := hc.Do(req)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // the URL is in the message already
			}
			return 0, err
		}
		// Draining a little lets the server finish cleanly; a readiness
		// body is small, and a large one is not read.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		return resp.StatusCode, nil
	}
}
