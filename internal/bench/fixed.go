package bench

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emberfaas/ember/function"
)

// FixedResult compares, for each load shape, the throughput of a function
// on ember's default autoscaling with the best of the same function pinned
// to a fixed replica count, measured side by side on one daemon: the
// autoscaler must never make a function slower than a good fixed count.
type FixedResult struct {
	// Rounds per shape: a run of AutoS on the autoscaled function, from
	// one idle replica, and one of FixedS on each fixed count.
	Rounds int          `json:"rounds"`
	AutoS  float64      `json:"auto_s"`
	FixedS float64      `json:"fixed_s"`
	Counts []int        `json:"fixed_counts"`
	Shapes []ShapeFixed `json:"shapes"`
	Failed int          `json:"failed"`
	Errors []string     `json:"errors,omitempty"`
}

// ShapeFixed is one load shape's numbers.
type ShapeFixed struct {
	Shape       string          `json:"shape"`
	Concurrency int             `json:"concurrency"`
	AutoRPS     float64         `json:"auto_rps"`
	FixedRPS    map[int]float64 `json:"fixed_rps"` // by replica count
	// MostDesired is the highest replica count the autoscaler asked for
	// during the autoscaled runs.
	MostDesired int `json:"most_desired"`
}

// best is the fixed count with the highest throughput and that throughput.
func (s ShapeFixed) best() (int, float64) {
	n, rps := 0, 0.0
	for c, r := range s.FixedRPS {
		if r > rps || r == rps && c < n {
			n, rps = c, r
		}
	}
	return n, rps
}

type loadShape struct {
	name, path string
	conc       int
}

var loadShapes = []loadShape{
	{"trivial handler", "/", 1},
	{"trivial handler", "/", 8},
	{"trivial handler", "/", 32},
	{"100 ms sleep handler", "/_/sleep?ms=100", 10},
	{"100 ms sleep handler", "/_/sleep?ms=100", 50},
}

var fixedCounts = []int{1, 2, 4}

func (b *bench) runFixed(ctx context.Context, rep *Report) error {
	d, err := b.env.startDaemon(ctx, "fixed")
	if err != nil {
		return err
	}
	defer d.teardown()
	// No labels: ember's defaults, OpenFaaS CE's rule with the CPU brake.
	if err := d.deploy(ctx, "auto", b.env.echo, nil); err != nil {
		return err
	}
	for _, n := range fixedCounts {
		s := strconv.Itoa(n)
		if err := d.deploy(ctx, "fixed"+s, b.env.echo, map[string]string{
			function.LabelScaleMin: s, function.LabelScaleMax: s,
		}); err != nil {
			return err
		}
		if _, err := d.waitFor(ctx, "fixed"+s, time.Minute, 100*time.Millisecond, "at "+s+" ready replicas",
			onlyState(n, function.StateReady)); err != nil {
			return err
		}
	}
	res := &FixedResult{Rounds: b.sz.fixedRounds, AutoS: b.sz.autoRun.Seconds(), FixedS: b.sz.fixedRun.Seconds(), Counts: fixedCounts}
	rep.Fixed = res
	clients := map[string]*http.Client{}
	for _, name := range []string{"auto", "fixed1", "fixed2", "fixed4"} {
		clients[name] = newClient(64)
	}
	run := func(name, path string, conc int, dur time.Duration) loadResult {
		r := closedLoop(ctx, clients[name], d.fnURL(name, path), conc, after(dur), false)
		res.Failed += r.Failed
		for _, e := range r.Errors {
			if len(res.Errors) < keptErrors {
				res.Errors = append(res.Errors, e)
			}
		}
		return r
	}
	for _, sh := range loadShapes {
		b.logf("autoscale-fixed: %s, concurrency %d", sh.name, sh.conc)
		// Warm every function's connections for this shape.
		for _, name := range []string{"fixed1", "fixed2", "fixed4"} {
			run(name, sh.path, sh.conc, b.sz.warmup)
		}
		if _, err := d.waitFor(ctx, "auto", 2*time.Minute, 100*time.Millisecond, "idle at one ready replica",
			onlyState(1, function.StateReady)); err != nil {
			return err
		}
		out := ShapeFixed{Shape: sh.name, Concurrency: sh.conc, FixedRPS: map[int]float64{}}
		var most atomic.Int64
		most.Store(1)
		wctx, stop := context.WithCancel(ctx)
		go func() {
			for wctx.Err() == nil {
				if f, err := d.api.Describe(wctx, "auto"); err == nil {
					most.Store(max(most.Load(), int64(f.Replicas)))
				}
				select {
				case <-wctx.Done():
				case <-time.After(500 * time.Millisecond):
				}
			}
		}()
		// Rounds of a continuous run on the autoscaled function, from one
		// idle replica (its probes judge a replica by the rate the load
		// keeps up, so the load must not pause), and a run on each fixed
		// count; the autoscaled run first in even rounds and last in odd
		// ones, so drift on the host falls on both alike.
		autoOK, autoT := 0, time.Duration(0)
		fixedOK, fixedT := map[int]int{}, map[int]time.Duration{}
		fixed := func(round int) {
			order := slices.Clone(fixedCounts)
			if round%2 == 1 {
				slices.Reverse(order)
			}
			for _, n := range order {
				r := run("fixed"+strconv.Itoa(n), sh.path, sh.conc, b.sz.fixedRun)
				fixedOK[n] += r.OK
				fixedT[n] += r.Elapsed
			}
		}
		for round := range b.sz.fixedRounds {
			if round%2 == 1 {
				fixed(round)
			}
			if _, err := d.waitFor(ctx, "auto", 2*time.Minute, 100*time.Millisecond, "idle at one ready replica",
				onlyState(1, function.StateReady)); err != nil {
				stop()
				return err
			}
			r := run("auto", sh.path, sh.conc, b.sz.autoRun)
			autoOK += r.OK
			autoT += r.Elapsed
			if round%2 == 0 {
				fixed(round)
			}
			if ctx.Err() != nil {
				stop()
				return ctx.Err()
			}
		}
		stop()
		out.MostDesired = int(most.Load())
		if autoT > 0 {
			out.AutoRPS = float64(autoOK) / autoT.Seconds()
		}
		for _, n := range fixedCounts {
			if fixedT[n] > 0 {
				out.FixedRPS[n] = float64(fixedOK[n]) / fixedT[n].Seconds()
			}
		}
		res.Shapes = append(res.Shapes, out)
	}
	return nil
}

func (r *FixedResult) rows() []Row {
	const s = "4 autoscaling"
	var rows []Row
	for _, sh := range r.Shapes {
		n, best := sh.best()
		var all []string
		for _, c := range r.Counts {
			all = append(all, fmt.Sprintf("%d: %.0f", c, sh.FixedRPS[c]))
		}
		rows = append(rows, Row{s,
			fmt.Sprintf("throughput, %s, concurrency %d: default autoscaling (reached %d) vs best fixed count (%d; %s req/s)",
				sh.Shape, sh.Concurrency, sh.MostDesired, n, strings.Join(all, ", ")),
			fmtRate(sh.AutoRPS), fmtRate(best), fmtRatio(sh.AutoRPS, best), atLeastRatio(sh.AutoRPS, best, 0.95)})
	}
	rows = append(rows, Row{s, fmt.Sprintf("failed requests, autoscaled vs fixed (per shape %d rounds of %gs autoscaled from one idle replica and %gs on each fixed count)", r.Rounds, r.AutoS, r.FixedS),
		strconv.Itoa(r.Failed), "", "", ""})
	return rows
}

// ok reports whether every shape has numbers.
func (r *FixedResult) ok() bool {
	if len(r.Shapes) != len(loadShapes) {
		return false
	}
	for _, sh := range r.Shapes {
		if _, best := sh.best(); sh.AutoRPS == 0 || best == 0 {
			return false
		}
	}
	return true
}
