package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// DensityResult is what many deployed functions cost when nothing calls
// them: memory of the daemon and of the per-replica machinery outside the
// function (its containerd shim), and CPU at rest — the health checks —
// of the daemon, containerd and the shims with the runc execs they spawn.
// The functions' own processes are left out.
type DensityResult struct {
	Functions      int     `json:"functions"`
	HealthInterval string  `json:"health_interval"` // from the daemon's command line
	DeployAllS     float64 `json:"deploy_all_s"`
	RestS          float64 `json:"rest_s"` // the window, as measured

	DaemonRSSIdle     int64 `json:"daemon_rss_idle_bytes"` // before any deploy
	DaemonRSS         int64 `json:"daemon_rss_bytes"`
	ContainerdRSSIdle int64 `json:"containerd_rss_idle_bytes"`
	ContainerdRSS     int64 `json:"containerd_rss_bytes"`
	Shims             int   `json:"shims"`
	ShimRSS           int64 `json:"shim_rss_bytes"` // sum over shims
	ShimPSS           int64 `json:"shim_pss_bytes"`

	SettleS float64 `json:"settle_s"` // measured: from the last deploy to the window
	// CPU over the rest window, in % of one core, each process with the
	// children it waited for. CPUShimChildren is the part of CPUShims
	// spent in the shims' children: the runc execs of the lock probes.
	CPUDaemon       float64 `json:"cpu_daemon_pct"`
	CPUContainerd   float64 `json:"cpu_containerd_pct"`
	CPUShims        float64 `json:"cpu_shims_pct"`
	CPUShimChildren float64 `json:"cpu_shim_children_pct"`
	CPUPerReplica   float64 `json:"cpu_per_replica_pct"`
}

// RecoveryResult is SIGKILL of the daemon with Functions deployed, then a
// restart: how long until /healthz answers and until every function
// answers through the gateway.
type RecoveryResult struct {
	Functions    int     `json:"functions"`
	HealthzMs    float64 `json:"healthz_ms"`
	AllServingMs float64 `json:"all_serving_ms"`
	PerFunction  Dist    `json:"per_function"`
	// ReplicasAfter counts replicas once all serve: one per function, or
	// the restart made duplicates.
	ReplicasAfter int `json:"replicas_after"`
}

// runDensity deploys the density functions, measures them at rest, then
// removes all but the recovery scenario's and runs that on the same daemon.
func (b *bench) runDensity(ctx context.Context, rep *Report) error {
	d, err := b.env.startDaemon(ctx, "density")
	if err != nil {
		return err
	}
	defer d.teardown()
	res := &DensityResult{HealthInterval: d.flag("health-interval")}
	ctrdPID, err := b.env.containerdPID()
	if err != nil {
		return err
	}
	if res.DaemonRSSIdle, err = procRSS(d.pid()); err != nil {
		return err
	}
	if res.ContainerdRSSIdle, err = procRSS(ctrdPID); err != nil {
		return err
	}

	names := make([]string, b.sz.density)
	for i := range names {
		names[i] = fmt.Sprintf("fn-%02d", i)
	}
	start := time.Now()
	var ready atomic.Int64
	err = parallel(ctx, 4, names, func(ctx context.Context, name string) error {
		if err := d.deploy(ctx, name, b.env.echo, nil); err != nil {
			return err
		}
		if n := ready.Add(1); n%10 == 0 || int(n) == len(names) {
			b.logf("density: %d/%d deployed", n, len(names))
		}
		return nil
	})
	if err != nil {
		return err
	}
	deployed := time.Now()
	res.DeployAllS = deployed.Sub(start).Seconds()
	fns, err := d.api.List(ctx)
	if err != nil {
		return err
	}
	res.Functions = len(fns)
	for _, f := range fns {
		if f.AvailableReplicas != 1 {
			return fmt.Errorf("%s: %d ready replicas after deploy, want 1", f.Name, f.AvailableReplicas)
		}
	}

	b.logf("density: %d functions ready; settling for %s, then at rest for %s", len(fns), b.sz.settle, b.sz.rest)
	if !sleep(ctx, b.sz.settle) {
		return ctx.Err()
	}
	shims, err := b.env.ctrd.Shims()
	if err != nil {
		return err
	}
	var shimPIDs []int
	for _, s := range shims {
		if s.Namespace == d.ns {
			shimPIDs = append(shimPIDs, s.PID)
		}
	}
	res.Shims = len(shimPIDs)
	groups := map[string][]int{"daemon": {d.pid()}, "containerd": {ctrdPID}, "shims": shimPIDs}
	before, beforeChildren := cpuOf(groups)
	t0 := time.Now()
	res.SettleS = t0.Sub(deployed).Seconds()
	if !sleep(ctx, b.sz.rest) {
		return ctx.Err()
	}
	after, afterChildren := cpuOf(groups)
	wall := time.Since(t0)
	res.RestS = wall.Seconds()
	pct := func(d time.Duration) float64 { return 100 * d.Seconds() / wall.Seconds() }
	res.CPUDaemon = pct(after["daemon"] - before["daemon"])
	res.CPUContainerd = pct(after["containerd"] - before["containerd"])
	res.CPUShims = pct(after["shims"] - before["shims"])
	res.CPUShimChildren = pct(afterChildren["shims"] - beforeChildren["shims"])
	if res.Shims > 0 {
		res.CPUPerReplica = (res.CPUDaemon + res.CPUContainerd + res.CPUShims) / float64(len(fns))
	}
	res.DaemonRSS, _ = procRSS(d.pid())
	res.ContainerdRSS, _ = procRSS(ctrdPID)
	for _, pid := range shimPIDs {
		rss, _ := procRSS(pid)
		pss, _ := procPSS(pid)
		res.ShimRSS += rss
		res.ShimPSS += pss
	}
	rep.Density = res

	return b.runRecovery(ctx, rep, d, names)
}

func (b *bench) runRecovery(ctx context.Context, rep *Report, d *daemon, names []string) error {
	keep := names[:min(b.sz.recovery, len(names))]
	b.logf("recovery: removing %d functions, keeping %d", len(names)-len(keep), len(keep))
	if err := parallel(ctx, 8, names[len(keep):], func(ctx context.Context, name string) error {
		return d.api.Remove(ctx, name)
	}); err != nil {
		return err
	}
	c := newClient(len(keep))
	for _, name := range keep {
		if err := get(ctx, c, d.fnURL(name, "/")); err != nil {
			return err
		}
	}
	res := &RecoveryResult{Functions: len(keep)}
	b.logf("recovery: SIGKILL the daemon with %d functions, restart", len(keep))
	d.kill9()
	start := time.Now()
	if err := d.spawn(); err != nil {
		return err
	}
	if err := d.waitHealthy(ctx, time.Minute); err != nil {
		return err
	}
	res.HealthzMs = ms(time.Since(start))
	var (
		mu   sync.Mutex // guards took
		took []time.Duration
	)
	err := parallel(ctx, len(keep), keep, func(ctx context.Context, name string) error {
		if _, err := firstOK(ctx, c, d.fnURL(name, "/"), time.Minute); err != nil {
			return fmt.Errorf("%s after restart: %w", name, err)
		}
		mu.Lock()
		took = append(took, time.Since(start))
		mu.Unlock()
		return nil
	})
	if err != nil {
		return err
	}
	res.PerFunction = dist(took)
	res.AllServingMs = ms(slices.Max(took))
	for _, name := range keep {
		f, err := d.api.Describe(ctx, name)
		if err != nil {
			return err
		}
		res.ReplicasAfter += len(f.Instances)
	}
	rep.Recovery = res
	return nil
}

// cpuOf sums the CPU time of each group of processes, with their
// waited-for children, and separately that of the children alone; a
// process that is gone counts nothing.
func cpuOf(groups map[string][]int) (total, children map[string]time.Duration) {
	total = make(map[string]time.Duration, len(groups))
	children = make(map[string]time.Duration, len(groups))
	for g, pids := range groups {
		for _, pid := range pids {
			self, ch, _ := procTimes(pid)
			total[g] += self + ch
			children[g] += ch
		}
	}
	return total, children
}

// sleep waits for d unless ctx ends first; it reports whether it slept.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (r *DensityResult) rows() []Row {
	const s = "5 density"
	n := int64(max(r.Shims, 1))
	return []Row{
		{s, fmt.Sprintf("daemon RSS, %d functions (vs none)", r.Functions), fmtBytes(r.DaemonRSS), fmtBytes(r.DaemonRSSIdle), fmtRatio(float64(r.DaemonRSS), float64(r.DaemonRSSIdle))},
		{s, "per replica outside the function: shim RSS / PSS", fmtBytes(r.ShimRSS/n) + " / " + fmtBytes(r.ShimPSS/n), "", ""},
		{s, fmt.Sprintf("containerd RSS, %d functions (vs none)", r.Functions), fmtBytes(r.ContainerdRSS), fmtBytes(r.ContainerdRSSIdle), fmtRatio(float64(r.ContainerdRSS), float64(r.ContainerdRSSIdle))},
		{s, fmt.Sprintf("CPU at rest over %.0fs from %.0fs after the last deploy, %% of one core (health interval %s)", r.RestS, r.SettleS, r.HealthInterval),
			fmt.Sprintf("%.2f%%", r.CPUDaemon+r.CPUContainerd+r.CPUShims), "", ""},
		{s, "… of which daemon / containerd / shims' own / shims' runc execs (probes)",
			fmt.Sprintf("%.2f / %.2f / %.2f / %.2f", r.CPUDaemon, r.CPUContainerd, r.CPUShims-r.CPUShimChildren, r.CPUShimChildren), "", ""},
		{s, "CPU at rest per replica, % of one core", fmt.Sprintf("%.3f%%", r.CPUPerReplica), "", ""},
	}
}

func (r *RecoveryResult) rows() []Row {
	const s = "6 recovery"
	return []Row{
		{s, fmt.Sprintf("SIGKILL, restart → /healthz answers (%d functions)", r.Functions), fmtMs(r.HealthzMs), "", ""},
		{s, fmt.Sprintf("SIGKILL, restart → all %d functions serve", r.Functions), fmtMs(r.AllServingMs), "", ""},
		{s, "replicas after the restart", fmt.Sprintf("%d (one per function)", r.ReplicasAfter), "", ""},
	}
}
