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
	recs       []rec    // recommendations over the down window
	// CE's rule: since when the rate has been above CERate (zero while
	// it is not), since when at or below it, and the last firing (zero
	// once resolved).
	overSince, underSince, firedAt time.Time
	// braked is set while a hold keeps the function back, so the hold is
	// logged once.
	braked bool
	// changed is when the autoscaler last changed the count.
	changed time.Time
	probe   probe
}

// probe is a trial of one replica more for a held function: kept if the
// function then serves more requests, undone if not. Whether a replica
// adds capacity on a busy host depends on more than the autoscaler sees
// (CPU shares against other work, a handler's own limits), so it asks
// the load itself.
type probe struct {
	from  int       // the count before the trial; 0 while none runs
	base  float64   // requests per second at from
	ready time.Time // when the extra replica was ready, zero until
	next  time.Time // no trial before this
	load  float64   // mean in flight at the trial; a load twice that is tried anew
}

type sample struct {
	at    time.Time
	load  float64 // requests in flight or waiting
	count float64 // requests so far
	cpu   float64 // millicores of all replicas (type cpu only)
}

type rec struct {
	at time.Time
	n  int
}

// CE's rule in the gateway: the AlertManager rule fires once the rate has
// been above 5 rps for 5s, AlertManager repeats a firing alert every 30s
// (each repeat adds a step), and a resolved alert sets min.
const (
	ceFor    = 5 * time.Second
	ceRepeat = 30 * time.Second
	// ceResolve is how long the rate must stay at or below CERate for the
	// alert to resolve: Prometheus's rate over 10s has to fall and
	// AlertManager to send the resolution, 10-20s in CE.
	ceResolve = 10 * time.Second
)

// A probe is judged over a full load window with the extra replica ready,
// and kept if the rate rose by probeGain: less is within the noise of a
// busy host. The rate, not the time a request spends in the gateway: on
// a saturated host a replica more can shorten that time while the
// callers, on the same CPUs, get fewer answers. An undone probe is not
// tried again for probeBackoff.
const (
	probeGain    = 1.25
	probeBackoff = time.Minute
	probeStart   = 30 * time.Second // for the extra replica to be ready
)

// idleReplica is the mean number of requests in flight per ready replica
// below which a function's replicas idle: they are busy less than a tenth
// of the time.
const idleReplica = 0.1

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
		// Read on every wake-up, so the brake's window is full when a
		// function wants more replicas: a few µs from /proc.
		c.cpuSaturated = c.cfg.CPUSaturated()
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
	// Watched until the load has left the window and the cool-down has
	// passed after that, so the count gets back down.
	hot := now.Sub(st.lastActive) < 2*c.cfg.LoadWindow+coolDown(spec)+c.cfg.AutoscaleInterval

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
		if want := c.recommend(f, spec, now, count, load, minR, maxR, desired); want != desired {
			f.send(ctx, func() { f.autoscaled(ctx, want, desired) })
		}
	} else {
		st.samples, st.recs = st.samples[:0], st.recs[:0]
		st.overSince, st.underSince, st.firedAt = time.Time{}, time.Time{}, time.Time{}
		st.probe, st.braked = probe{}, false
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

// coolDown is how long a function stays watched after its load ends:
// long enough for it to return to fewer replicas.
func coolDown(spec function.Spec) time.Duration {
	if spec.ScaleType() == function.ScaleCE {
		return ceResolve + time.Second
	}
	return spec.DownWindow()
}

// recommend updates the load history and returns the replica count the
// load calls for, under CE's rule or Pro's target, held back by the CPU
// brake.
func (c *Controller) recommend(f *fn, spec function.Spec, now time.Time, count uint64, load int64, minR, maxR, desired int) int {
	st := &f.auto
	s := sample{at: now, load: float64(load), count: float64(count)}
	typ := spec.ScaleType()
	if typ == function.ScaleCPU {
		s.cpu = c.functionCPU(f)
	}
	st.samples = append(st.samples, s)
	st.samples = trim(st.samples, now.Add(-c.cfg.LoadWindow))
	// Per second over the whole window, as load is averaged: over the
	// first 250ms of traffic one request more would read as 4 rps more.
	// Before the first sample there was no traffic (samples start when
	// the function turns busy).
	rate := (s.count - st.samples[0].count) / c.cfg.LoadWindow.Seconds()
	var meanLoad, meanCPU float64
	for _, x := range st.samples {
		meanLoad += x.load
		meanCPU += x.cpu
	}
	meanLoad /= float64(len(st.samples))
	meanCPU /= float64(len(st.samples))

	var want int
	if typ == function.ScaleCE {
		want = c.ceRule(st, spec, now, rate, minR, maxR, desired)
	} else {
		var per float64
		switch typ {
		case function.ScaleRPS:
			per = rate
		case function.ScaleCPU:
			per = meanCPU
		default:
			// Up at once: the load now must not be averaged away. The
			// down window keeps a dip from undoing it.
			per = max(meanLoad, float64(load))
		}
		want = c.proRule(st, spec, now, per, minR, maxR, desired)
	}
	n := c.decide(f, st, typ, now, want, desired, maxR, rate, meanLoad)
	if n != desired {
		st.changed = now
	}
	return n
}

// decide applies the holds and probes to the rule's wish.
func (c *Controller) decide(f *fn, st *autoState, typ string, now time.Time, want, desired, maxR int, rate, meanLoad float64) int {
	ready := len(*f.eps.Load())
	p := &st.probe
	if p.from > 0 {
		if want <= p.from {
			// The load no longer asks for more: the rule takes over.
			p.from = 0
		} else {
			if p.ready.IsZero() {
				if ready > p.from {
					p.ready = now
				} else if now.Sub(st.changed) > probeStart {
					// The replica did not come: no trial.
					from := p.from
					p.from, p.next = 0, now.Add(probeBackoff)
					return from
				}
				return desired
			}
			if now.Sub(p.ready) < c.cfg.LoadWindow {
				return desired
			}
			from := p.from
			p.from = 0
			if rate >= p.base*probeGain {
				c.log.Info("autoscale probe kept", "fn", f.name, "replicas", desired, "rps", math.Round(rate), "before", math.Round(p.base))
				p.next = now
				if typ == function.ScaleCE {
					st.firedAt = now
				}
				return desired
			}
			c.log.Info("autoscale probe undone", "fn", f.name, "replicas", from, "rps", math.Round(rate), "before", math.Round(p.base))
			p.next = now.Add(probeBackoff)
			return from
		}
	}
	if want <= desired {
		st.braked = false
		return want
	}
	perReplica := meanLoad / float64(max(1, ready))
	why := holdReason(st, typ, perReplica, c.cpuSaturated)
	if why == "" {
		st.braked = false
		if typ == function.ScaleCE {
			st.firedAt = now
		}
		return want
	}
	if !st.braked {
		c.log.Info("autoscale held", "fn", f.name, "replicas", desired, "wanted", want, "why", why)
		st.braked = true
	}
	// Try one more if requests wait for the replicas (one or more in
	// flight each: with fewer, no request waits that a replica more could
	// take) and the last window was all at this count, so its rate is the
	// one to beat. A load twice that of the last trial need not wait
	// out its backoff: it is another load.
	if now.Before(p.next) && meanLoad >= 2*p.load {
		p.next = now
	}
	full := len(st.samples) > 0 && now.Sub(st.samples[0].at) >= c.cfg.LoadWindow-c.cfg.AutoscaleInterval
	if perReplica >= 1 && full && ready == desired && now.Sub(st.changed) >= c.cfg.LoadWindow &&
		!now.Before(p.next) && desired < maxR && rate > 0 {
		*p = probe{from: desired, base: rate, load: meanLoad}
		c.log.Info("autoscale probe", "fn", f.name, "replicas", desired+1, "rps", math.Round(rate))
		return desired + 1
	}
	return desired
}

// holdReason says why a function whose rule wants more replicas should
// not get them, given the mean requests in flight per ready replica, or
// "" if it should.
//
// A replica that would idle takes nothing from anyone: a function whose
// replicas idle (under idleReplica in flight each) always gets what its
// rule asks, so CE's rule still scales the certifier's 10 requests a
// second of 1 ms calls. Otherwise a new replica must add capacity:
//   - On a saturated CPU it cannot: it takes its time from the replicas
//     there are and from the gateway in front of them. Under either rule.
//   - Under CE's rule, which counts requests, not their concurrency, it
//     cannot when fewer than one request per replica is in flight: no
//     request waits for a replica, and spreading them over more replicas
//     only makes each find a colder one (measured: at one client, a
//     trivial handler serves a fifth fewer requests on two replicas than
//     on one). Pro's targets say what a replica should carry, and are
//     followed.
//
// Once held, a function stays held while the reason lasts even if its
// replicas turn idle: as a load ends, its average in flight falls before
// its rate does, and the replicas must not come then.
func holdReason(st *autoState, typ string, perReplica float64, cpuSaturated bool) string {
	if !st.braked && perReplica < idleReplica {
		return ""
	}
	switch {
	case cpuSaturated:
		return "host CPU saturated"
	case typ == function.ScaleCE && perReplica < 1:
		return "no request waits for a replica"
	}
	return ""
}

// ceRule is OpenFaaS CE's: a rate above CERate for ceFor adds a step
// (ScaleFactor percent of max), again every ceRepeat while it lasts; once
// the rate has stayed at or below it for ceResolve, back to min.
func (c *Controller) ceRule(st *autoState, spec function.Spec, now time.Time, rate float64, minR, maxR, desired int) int {
	if rate > function.CERate {
		st.underSince = time.Time{}
		if st.overSince.IsZero() {
			st.overSince = now
		}
		if now.Sub(st.overSince) >= ceFor && (st.firedAt.IsZero() || now.Sub(st.firedAt) >= ceRepeat) {
			return min(desired+spec.CEStep(), maxR)
		}
		return desired
	}
	st.overSince = time.Time{}
	if st.underSince.IsZero() {
		st.underSince = now
	}
	// Only a firing resolves: as in CE, a count set by hand stays.
	if !st.firedAt.IsZero() && now.Sub(st.underSince) >= ceResolve {
		st.firedAt = time.Time{}
		return minR
	}
	return desired
}

// proRule is the Pro autoscaler's: ceil(load / (target × proportion)),
// at once when higher than now, the highest of the down window when
// lower, so bursts are met fast and dips do not flap.
func (c *Controller) proRule(st *autoState, spec function.Spec, now time.Time, per float64, minR, maxR, desired int) int {
	r := int(math.Ceil(per/(float64(spec.ScaleTarget())*spec.ScaleProportion()) - 1e-9))
	r = min(max(r, minR), maxR)
	st.recs = append(st.recs, rec{now, r})
	i := 0
	for i < len(st.recs) && st.recs[i].at.Before(now.Add(-spec.DownWindow())) {
		i++
	}
	st.recs = append(st.recs[:0], st.recs[i:]...)
	if r >= desired {
		return r
	}
	highest := 0
	for _, x := range st.recs {
		highest = max(highest, x.n)
	}
	// Scale down only once the window has seen nothing higher.
	if len(st.recs) > 0 && now.Sub(st.recs[0].at) >= spec.DownWindow()-c.cfg.AutoscaleInterval {
		return min(desired, highest)
	}
	return desired
}

// functionCPU is the millicores f's replicas use, from their cgroups.
func (c *Controller) functionCPU(f *fn) float64 {
	f.mu.Lock()
	cgs := make([]string, 0, len(f.replicas))
	for _, r := range f.replicas {
		if r.cgroup != "" {
			cgs = append(cgs, r.cgroup)
		}
	}
	f.mu.Unlock()
	return c.usage.Usage(cgs).CPU
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
