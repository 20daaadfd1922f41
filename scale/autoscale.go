package scale

import (
	"bufio"
	"context"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/emberfaas/ember/function"
)

// The autoscaler reads the load the proxy counts — requests in flight,
// requests held for a wake-up, requests served — and decides each
// function's replica count, when it pauses and when it is parked. It is
// one goroutine for all functions, and it sleeps while nothing happens:
// then the next request, or the next idle deadline, wakes it.

// autoState is a function's load history. Only the autoscaler goroutine
// touches it.
type autoState struct {
	lastCount  uint64
	lastActive time.Time
	samples    []sample // over Config.LoadWindow
	recs       []sample // recommendations over the down window
}

type sample struct {
	at    time.Time
	value float64 // in flight (capacity) or request count (rps)
}

// memCheckEvery is how often host memory is read: while a function is
// paused, the autoscaler wakes this often, so low memory parks it early.
const memCheckEvery = 5 * time.Second

// autoLoop runs until ctx ends.
func (c *Controller) autoLoop(ctx context.Context) {
	timer := time.NewTimer(c.cfg.AutoscaleInterval)
	defer timer.Stop()
	lastMemCheck := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-c.autoKick:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
		now := time.Now()
		memLow := false
		if now.Sub(lastMemCheck) >= memCheckEvery {
			lastMemCheck = now
			memLow = c.cfg.MemoryLow()
		}
		// Cold until shown otherwise: Acquire kicks a cold loop.
		c.autoCold.Store(true)
		next := time.Time{}
		for _, f := range *c.fns.Load() {
			if t := c.autoStep(ctx, f, now, memLow); !t.IsZero() && (next.IsZero() || t.Before(next)) {
				next = t
			}
		}
		if next.IsZero() {
			continue // sleep until kicked
		}
		if next.Before(now.Add(c.cfg.AutoscaleInterval)) {
			next = now.Add(c.cfg.AutoscaleInterval)
		}
		if next.Sub(now) <= c.cfg.AutoscaleInterval {
			c.autoCold.Store(false)
		}
		timer.Reset(next.Sub(now))
	}
}

// autoStep samples one function's load and acts on it. It returns when it
// next needs to look at the function, zero if only a request can change
// anything.
func (c *Controller) autoStep(ctx context.Context, f *fn, now time.Time, memLow bool) time.Time {
	f.mu.Lock()
	spec, desired, ph, pausedAt, removing := f.spec, f.desired, f.phase, f.pausedAt, f.removing
	f.mu.Unlock()
	if removing || f.service {
		return time.Time{}
	}
	st := &f.auto
	count := f.invocations.Load()
	load := f.inflight.Load() + f.waiting.Load()
	if count != st.lastCount || load > 0 || st.lastActive.IsZero() || f.touched.Swap(false) {
		st.lastActive = now
	}
	st.lastCount = count
	hot := now.Sub(st.lastActive) < c.cfg.LoadWindow+spec.DownWindow()

	switch {
	case ph == phasePaused:
		st.samples, st.recs = st.samples[:0], st.recs[:0]
		deadline := pausedAt.Add(spec.DeleteAfter())
		if memLow || !now.Before(deadline) {
			f.send(ctx, func() { f.goToZero(ctx) })
			return time.Time{}
		}
		// Memory can run low while nothing else wakes the autoscaler.
		if check := now.Add(memCheckEvery); check.Before(deadline) {
			return check
		}
		return deadline
	case ph == phaseZero:
		st.samples, st.recs = st.samples[:0], st.recs[:0]
		return time.Time{}
	}

	minR, maxR := spec.MinReplicas(), max(spec.MaxReplicas(), spec.MinReplicas())
	if spec.ScaleToZero() {
		minR = max(minR, 1) // zero is the idler's business
	}
	if hot && maxR > minR {
		if want := c.recommend(st, spec, now, count, load, minR, maxR, desired); want != desired {
			f.send(ctx, func() { f.autoscaled(ctx, want, desired) })
		}
	} else {
		st.samples, st.recs = st.samples[:0], st.recs[:0]
	}

	var next time.Time
	if hot {
		next = now.Add(c.cfg.AutoscaleInterval)
	}
	if spec.ScaleToZero() && load == 0 {
		idleAt := st.lastActive.Add(spec.ZeroDuration())
		if !now.Before(idleAt) {
			f.send(ctx, func() { f.pause(ctx) })
			// If the pause does not take (a replica was starting), look
			// again a little later.
			return now.Add(max(c.cfg.AutoscaleInterval, time.Second))
		}
		if next.IsZero() || idleAt.Before(next) {
			next = idleAt
		}
	}
	return next
}

// recommend updates the load history and returns the replica count the
// load calls for: at once when it is higher than now, the highest of the
// down window when lower, so bursts are met fast and dips do not flap.
func (c *Controller) recommend(st *autoState, spec function.Spec, now time.Time, count uint64, load int64, minR, maxR, desired int) int {
	v := float64(load)
	if spec.ScaleType() == function.ScaleRPS {
		v = float64(count)
	}
	st.samples = append(st.samples, sample{now, v})
	st.samples = trim(st.samples, now.Add(-c.cfg.LoadWindow))
	var per float64
	if spec.ScaleType() == function.ScaleRPS {
		// Per second over the whole window, as capacity is averaged: over
		// the first 250ms of traffic one request more reads as 4 rps more,
		// and the scale-up it causes is held for the down window. Before
		// the first sample there was no traffic (samples start when the
		// function turns busy).
		per = (v - st.samples[0].value) / c.cfg.LoadWindow.Seconds()
	} else {
		for _, s := range st.samples {
			per += s.value
		}
		per /= float64(len(st.samples))
		// Up at once: the load now must not be averaged away. The down
		// window keeps a dip from undoing it.
		per = max(per, float64(load))
	}
	rec := int(math.Ceil(per/float64(spec.ScaleTarget()) - 1e-9))
	rec = min(max(rec, minR), maxR)
	st.recs = append(st.recs, sample{now, float64(rec)})
	st.recs = trim(st.recs, now.Add(-spec.DownWindow()))
	if rec >= desired {
		return rec
	}
	highest := 0.0
	for _, r := range st.recs {
		highest = max(highest, r.value)
	}
	// Scale down only once the window has seen nothing higher.
	if len(st.recs) > 0 && now.Sub(st.recs[0].at) >= spec.DownWindow()-c.cfg.AutoscaleInterval {
		return min(desired, int(highest))
	}
	return desired
}

func trim(s []sample, cutoff time.Time) []sample {
	i := 0
	for i < len(s) && s[i].at.Before(cutoff) {
		i++
	}
	if i == 0 {
		return s
	}
	return append(s[:0], s[i:]...)
}

// autoscaled applies the autoscaler's decision unless something else
// changed the count meanwhile. Called on the loop.
func (f *fn) autoscaled(ctx context.Context, want, from int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.desired != from || f.phase != phaseActive || f.removing {
		return
	}
	f.desired = want
	f.c.log.Info("autoscaled", "fn", f.name, "from", from, "to", want)
	f.poke()
}

// memoryLow reports whether the host's available memory is below 10% of
// its total, when paused functions give theirs back.
func memoryLow() bool {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return false
	}
	defer f.Close()
	var total, avail float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		n, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		switch k {
		case "MemTotal":
			total = n
		case "MemAvailable":
			avail = n
		}
	}
	return total > 0 && avail < total/10
}
