package scale

import (
	"context"
	"maps"
	"sync"
	"time"
)

// Invocation totals outlive the daemon and the function: OpenFaaS keeps
// them in Prometheus, so faas-cli list keeps counting across a gateway
// restart and a `deploy --replace`. Here each function counts in an
// atomic on the request path (Acquire) and the tally adds what earlier
// daemons and removed functions of the same name counted. Totals are
// written to the store every CountFlush and when Run ends, never per
// request: a daemon killed outright loses at most CountFlush of counts.

// Counts stores invocation totals by function name.
type Counts interface {
	Invocations() (map[string]uint64, error)
	PutInvocations(totals map[string]uint64) error
}

// RateWindow is the window of Status.Rate.
const RateWindow = time.Minute

type tally struct {
	mu sync.Mutex // guards below
	// base is what was counted before this daemon, and by functions of
	// the same name since removed.
	base map[string]uint64
	// flushed is each total as last stored.
	flushed map[string]uint64
	// samples are totals taken every CountFlush, oldest first, spanning
	// just over RateWindow.
	samples map[string][]countSample
}

type countSample struct {
	at    time.Time
	total uint64
}

// restoreCounts loads the stored totals. Without a Counts store they
// start at zero.
func (c *Controller) restoreCounts() error {
	c.tally.mu.Lock()
	defer c.tally.mu.Unlock()
	c.tally.base, c.tally.flushed, c.tally.samples = map[string]uint64{}, map[string]uint64{}, map[string][]countSample{}
	if c.counts == nil {
		return nil
	}
	m, err := c.counts.Invocations()
	if err != nil {
		return err
	}
	if m == nil {
		m = map[string]uint64{}
	}
	c.tally.base, c.tally.flushed = m, maps.Clone(m)
	return nil
}

// total is a function's invocations, all daemons together.
func (c *Controller) total(f *fn) uint64 {
	c.tally.mu.Lock()
	defer c.tally.mu.Unlock()
	return c.tally.base[f.name] + f.invocations.Load()
}

// rate is a function's requests per second over about RateWindow (less
// while the daemon or function is younger than that).
func (c *Controller) rate(name string, total uint64, now time.Time) float64 {
	c.tally.mu.Lock()
	s := c.tally.samples[name]
	c.tally.mu.Unlock()
	if len(s) == 0 {
		return 0
	}
	ref := s[0]
	for _, x := range s[1:] {
		if now.Sub(x.at) < RateWindow {
			break
		}
		ref = x
	}
	if total < ref.total {
		return 0
	}
	// At least a second: a burst just after a deploy is not a rate of
	// thousands a second.
	secs := max(now.Sub(ref.at).Seconds(), 1)
	return float64(total-ref.total) / secs
}

// startRate gives a new function its first sample, so its rate counts
// from its deployment rather than from the next flush.
func (c *Controller) startRate(f *fn) {
	c.tally.mu.Lock()
	defer c.tally.mu.Unlock()
	c.tally.samples[f.name] = []countSample{{at: time.Now(), total: c.tally.base[f.name] + f.invocations.Load()}}
}

// forgetCount folds a removed function's count into its name's base, so
// a function deployed again under that name goes on from there. It may be
// called more than once for the same function.
func (c *Controller) forgetCount(f *fn) {
	c.tally.mu.Lock()
	defer c.tally.mu.Unlock()
	c.tally.base[f.name] += f.invocations.Swap(0)
}

// sampleCounts records every function's total for the rate and returns
// the totals that changed since the last flush.
func (c *Controller) sampleCounts(now time.Time) map[string]uint64 {
	fns := *c.fns.Load()
	c.tally.mu.Lock()
	defer c.tally.mu.Unlock()
	changed := map[string]uint64{}
	for name, n := range c.tally.base {
		if fns[name] == nil && c.tally.flushed[name] != n {
			changed[name] = n
		}
	}
	for name := range c.tally.samples {
		if fns[name] == nil {
			delete(c.tally.samples, name) // removed: no rate to give
		}
	}
	for name, f := range fns {
		n := c.tally.base[name] + f.invocations.Load()
		if c.tally.flushed[name] != n {
			changed[name] = n
		}
		s := append(c.tally.samples[name], countSample{at: now, total: n})
		// Keep the newest sample at least RateWindow old, and those after.
		for len(s) > 1 && now.Sub(s[1].at) >= RateWindow {
			s = s[1:]
		}
		c.tally.samples[name] = s
	}
	return changed
}

// flushCounts stores the totals that changed.
func (c *Controller) flushCounts(now time.Time) {
	changed := c.sampleCounts(now)
	if c.counts == nil || len(changed) == 0 {
		return
	}
	if err := c.counts.PutInvocations(changed); err != nil {
		c.log.Warn("store invocation counts", "err", err)
		return // tried again at the next flush
	}
	c.tally.mu.Lock()
	maps.Copy(c.tally.flushed, changed)
	c.tally.mu.Unlock()
}

// tallyLoop samples and flushes every CountFlush, and once more when ctx
// ends, so a clean shutdown loses nothing.
func (c *Controller) tallyLoop(ctx context.Context) {
	c.flushCounts(time.Now())
	t := time.NewTicker(c.cfg.CountFlush)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			c.flushCounts(time.Now())
			return
		case now := <-t.C:
			c.flushCounts(now)
		}
	}
}
