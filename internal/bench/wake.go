package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/emberfaas/ember/function"
)

// WakeResult is the time to first byte of a request to a paused function
// and to a parked one ("zero": processes stopped, image, container and
// network kept), against a request to a warm one in the same run.
type WakeResult struct {
	Wakes int `json:"wakes"`
	// ZeroDurationS is the paused function's zero-duration label as
	// describe reports it.
	ZeroDurationS float64 `json:"zero_duration_s"`
	Paused        Dist    `json:"ttfb_paused"`
	Zero          Dist    `json:"ttfb_zero"`
	Warm          Dist    `json:"ttfb_warm"`
	// IdleToPaused runs from the paused function's last answer until
	// describe shows it paused: zero-duration plus the idler's delay.
	IdleToPaused Dist `json:"idle_to_paused"`
	// Park runs from `scale --replicas 0` until describe shows the replica
	// parked (state zero, parking finished).
	Park   Dist     `json:"park"`
	Failed int      `json:"failed"`
	Errors []string `json:"errors,omitempty"`
}

func (b *bench) runWake(ctx context.Context, rep *Report) error {
	d, err := b.env.startDaemon(ctx, "wake")
	if err != nil {
		return err
	}
	defer d.teardown()
	const zeroDuration = time.Second
	one := map[string]string{function.LabelScaleMin: "1", function.LabelScaleMax: "1"}
	fns := []struct {
		name   string
		labels map[string]string
	}{
		// Paused after 1s idle; parked only after an hour, so never here.
		{"paused", map[string]string{
			function.LabelScaleMin: "1", function.LabelScaleMax: "1",
			function.LabelScaleZero:         "true",
			function.LabelScaleZeroDuration: zeroDuration.String(),
			function.LabelDeleteAfter:       "1h",
		}},
		{"parked", one}, // parked with scale --replicas 0 before each wake
		{"warm", one},
	}
	for _, f := range fns {
		if err := d.deploy(ctx, f.name, b.env.echo, f.labels); err != nil {
			return err
		}
	}
	zd, err := d.label(ctx, "paused", function.LabelScaleZeroDuration)
	if err != nil {
		return err
	}
	zdur, err := time.ParseDuration(zd)
	if err != nil {
		return fmt.Errorf("paused: %s=%q: %w", function.LabelScaleZeroDuration, zd, err)
	}
	res := &WakeResult{Wakes: b.sz.wakes, ZeroDurationS: zdur.Seconds()}
	rep.Wake = res
	c := newClient(4)
	var paused, zero, warm, idle, park []time.Duration
	defer func() { // what was measured counts even if a later wake fails
		res.Paused, res.Zero, res.Warm = dist(paused), dist(zero), dist(warm)
		res.IdleToPaused, res.Park = dist(idle), dist(park)
	}()
	measure := func(name string, into *[]time.Duration) {
		t, err := ttfb(ctx, c, d.fnURL(name, "/"))
		if err != nil {
			if ctx.Err() == nil {
				res.Failed++
				if len(res.Errors) < keptErrors {
					res.Errors = append(res.Errors, fmt.Sprintf("%s: %v", name, err))
				}
			}
			return
		}
		*into = append(*into, t)
	}
	// One warm request each opens the gateway connection all use.
	if _, err := ttfb(ctx, c, d.fnURL("warm", "/")); err != nil {
		return err
	}
	lastPaused := time.Now()
	for i := range b.sz.wakes {
		b.logf("wake: %d/%d", i+1, b.sz.wakes)
		// Park "parked" while "paused" goes idle: the two waits overlap,
		// and both have settled before anything is measured.
		start := time.Now()
		if err := d.api.Scale(ctx, "parked", 0); err != nil {
			return err
		}
		if _, err := d.waitFor(ctx, "parked", 30*time.Second, 5*time.Millisecond, "parked", onlyState(1, function.StateZero)); err != nil {
			return err
		}
		park = append(park, time.Since(start))
		if _, err := d.waitFor(ctx, "paused", 30*time.Second, 5*time.Millisecond, "paused", onlyState(1, function.StatePaused)); err != nil {
			return err
		}
		idle = append(idle, time.Since(lastPaused))

		measure("paused", &paused)
		lastPaused = time.Now()
		measure("warm", &warm)
		measure("parked", &zero)
		measure("warm", &warm)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

func (r *WakeResult) rows() []Row {
	const s = "2 wake-up"
	return []Row{
		{s, fmt.Sprintf("TTFB p50 / p95 from paused (n=%d; vs warm)", r.Paused.N), fmtP50P95(r.Paused), fmtP50P95(r.Warm), fmtRatio(r.Paused.P50Ms, r.Warm.P50Ms), ""},
		{s, fmt.Sprintf("TTFB p50 / p95 from zero, parked (n=%d; vs warm)", r.Zero.N), fmtP50P95(r.Zero), fmtP50P95(r.Warm), fmtRatio(r.Zero.P50Ms, r.Warm.P50Ms), ""},
		{s, fmt.Sprintf("idle → paused p50 (zero-duration %gs)", r.ZeroDurationS), fmtMs(r.IdleToPaused.P50Ms), "", "", ""},
		{s, "scale --replicas 0 → parked p50", fmtMs(r.Park.P50Ms), "", "", ""},
		{s, "failed wake-up requests", fmt.Sprint(r.Failed), "", "", ""},
	}
}
