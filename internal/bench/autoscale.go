package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/function"
)

// AutoscaleResult is a step from idle (one ready replica, no load) to a
// closed loop of Workers concurrent slow requests, 5× the scale target
// (Pro's capacity type, target-proportion 1).
type AutoscaleResult struct {
	Steps   int `json:"steps"`
	Target  int `json:"target"`
	Workers int `json:"workers"`
	SleepMs int `json:"sleep_ms"`
	// Want is ceil(Workers/Target), the replicas the load calls for.
	Want int `json:"want"`
	// ToDecision runs from the step until describe shows more than one
	// replica desired; ToAllReady until Want replicas are ready.
	ToDecision Dist `json:"to_decision"`
	AllReady   Dist `json:"to_all_ready"`
	// MostDesired is the highest desired count seen during any step;
	// Paths are the desired counts each step went through, as "1→3→5".
	MostDesired int      `json:"most_desired"`
	Paths       []string `json:"paths"`
	Requests    int      `json:"requests"`
	Failed      int      `json:"failed"`
	Errors      []string `json:"errors,omitempty"`
}

func (b *bench) runAutoscale(ctx context.Context, rep *Report) error {
	// The step measures how fast the autoscaler reacts, so the CPU brake
	// is off: other work on a shared host would rightly hold it back.
	// Scenario autoscale-fixed measures the brake's defaults.
	d, err := b.env.startDaemon(ctx, "auto", "--autoscale-cpu-brake", "0")
	if err != nil {
		return err
	}
	defer d.teardown()
	const target = 2
	if err := d.deploy(ctx, "auto", b.env.echo, map[string]string{
		function.LabelScaleType:       function.ScaleCapacity,
		function.LabelScaleTarget:     strconv.Itoa(target),
		function.LabelScaleProportion: "1",
		// Back to one replica soon after each step, for the next one.
		function.LabelScaleDownWindow: "3s",
	}); err != nil {
		return err
	}
	// The target the report prints is the one the daemon runs with.
	tl, err := d.label(ctx, "auto", function.LabelScaleTarget)
	if err != nil {
		return err
	}
	res := &AutoscaleResult{Steps: b.sz.autoSteps, Workers: 10, SleepMs: 100}
	if res.Target, err = strconv.Atoi(tl); err != nil || res.Target < 1 {
		return fmt.Errorf("auto: %s=%q", function.LabelScaleTarget, tl)
	}
	res.Want = (res.Workers + res.Target - 1) / res.Target
	rep.Autoscale = res
	url := d.fnURL("auto", fmt.Sprintf("/_/sleep?ms=%d", res.SleepMs))
	c := newClient(res.Workers)
	var decision, ready []time.Duration
	stop := b.cpuProfile(ctx, d, "autoscale-cpu.pb.gz", 20*time.Second)
	defer func() {
		stop()
		res.ToDecision, res.AllReady = dist(decision), dist(ready)
	}()
	for step := range b.sz.autoSteps {
		b.logf("autoscale: step %d/%d", step+1, b.sz.autoSteps)
		if _, err := d.waitFor(ctx, "auto", 2*time.Minute, 50*time.Millisecond, "idle at one ready replica",
			onlyState(1, function.StateReady)); err != nil {
			return err
		}
		stop := make(chan struct{})
		done := make(chan loadResult, 1)
		start := time.Now()
		go func() { done <- closedLoop(ctx, c, url, res.Workers, stop, false) }()
		var decided time.Duration
		path := []int{1}
		_, werr := d.waitFor(ctx, "auto", time.Minute, 20*time.Millisecond, fmt.Sprintf("at %d ready replicas", res.Want),
			func(f wire.FunctionStatus) bool {
				res.MostDesired = max(res.MostDesired, int(f.Replicas))
				if n := int(f.Replicas); n != path[len(path)-1] {
					path = append(path, n)
				}
				if decided == 0 && f.Replicas > 1 {
					decided = time.Since(start)
				}
				return int(f.Replicas) >= res.Want && countState(f, function.StateReady) >= res.Want
			})
		took := time.Since(start)
		res.Paths = append(res.Paths, joinInts(path, "→"))
		// Keep the load on a moment longer: requests that meet the new
		// replicas just after they joined count too.
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
		}
		close(stop)
		lr := <-done
		res.Requests += lr.OK + lr.Failed
		res.Failed += lr.Failed
		for _, e := range lr.Errors {
			if len(res.Errors) < keptErrors {
				res.Errors = append(res.Errors, e)
			}
		}
		if werr != nil {
			return werr
		}
		if decided > 0 {
			decision = append(decision, decided)
		}
		ready = append(ready, took)
	}
	return nil
}

func joinInts(ns []int, sep string) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, sep)
}

// targetAutoscaleReadyMs is the goal for the step's p50 to all ready.
const targetAutoscaleReadyMs = 300

func (r *AutoscaleResult) rows() []Row {
	const s = "4 autoscaling"
	step := fmt.Sprintf("idle → %d× target (target %d, %d workers × /_/sleep?ms=%d)", r.Workers/max(r.Target, 1), r.Target, r.Workers, r.SleepMs)
	return []Row{
		{s, step + ": until scale-up decided, p50", fmtMs(r.ToDecision.P50Ms), "", "", ""},
		{s, fmt.Sprintf("until %d replicas ready, p50 / max (n=%d)", r.Want, r.AllReady.N), fmtMs(r.AllReady.P50Ms) + " / " + fmtMs(r.AllReady.MaxMs), "", "",
			atMost(r.AllReady.P50Ms, targetAutoscaleReadyMs, fmtMs)},
		{s, "desired replicas during each step", strings.Join(r.Paths, ", "), "", "", ""},
		{s, "failed requests during the steps", fmt.Sprintf("%d of %d", r.Failed, r.Requests), "", "", ""},
	}
}
