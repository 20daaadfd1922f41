package bench

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emberfaas/ember/function"
)

// DensityResult is what many deployed functions, one replica each, cost
// when nothing calls them: memory of the daemon and of the per-replica
// machinery outside the function (its containerd shim), and CPU at rest —
// the health checks — of the daemon, containerd and the shims with the
// runc execs they spawn. The functions' own processes are left out.
type DensityResult struct {
	Functions      int     `json:"functions"`
	HealthInterval string  `json:"health_interval"` // from the daemon's command line
	DeployAllS     float64 `json:"deploy_all_s"`

	DaemonRSSIdle int64 `json:"daemon_rss_idle_bytes"` // before any deploy
	DaemonRSS     int64 `json:"daemon_rss_bytes"`
	// The daemon's RSS in anonymous memory (heap, stacks) and in pages
	// of its own binary's file (text, pclntab), which are clean and
	// reclaimable.
	DaemonRSSAnon     int64 `json:"daemon_rss_anon_bytes"`
	DaemonRSSFile     int64 `json:"daemon_rss_file_bytes"`
	ContainerdRSSIdle int64 `json:"containerd_rss_idle_bytes"`
	ContainerdRSS     int64 `json:"containerd_rss_bytes"`
	AtRest
	CPUPerReplica float64 `json:"cpu_per_replica_pct"`
}

// AtRest is what runs beside the functions' processes, measured at rest.
type AtRest struct {
	Replicas int   `json:"replicas"`
	Shims    int   `json:"shims"`
	ShimRSS  int64 `json:"shim_rss_bytes"` // sum over shims
	ShimPSS  int64 `json:"shim_pss_bytes"`

	SettleS float64 `json:"settle_s"` // measured: from the last deploy to the window
	RestS   float64 `json:"rest_s"`   // the window, as measured
	// CPU over the rest window, in % of one core, each process with the
	// children it waited for. CPUShimChildren is the part of CPUShims
	// spent in the shims' children: the runc execs of the lock probes.
	CPUDaemon       float64 `json:"cpu_daemon_pct"`
	CPUContainerd   float64 `json:"cpu_containerd_pct"`
	CPUShims        float64 `json:"cpu_shims_pct"`
	CPUShimChildren float64 `json:"cpu_shim_children_pct"`
}

func (a AtRest) cpu() float64 { return a.CPUDaemon + a.CPUContainerd + a.CPUShims }

// outsideRSS is the shims' RSS per replica: what a replica costs in memory
// beside its own processes.
func (a AtRest) outsideRSS() int64 { return a.ShimRSS / int64(max(a.Replicas, 1)) }
func (a AtRest) outsidePSS() int64 { return a.ShimPSS / int64(max(a.Replicas, 1)) }

// SharedResult is the rest of as many replicas as the density scenario
// runs, spread over a few functions so that each function's replicas share
// its shim.
type SharedResult struct {
	Functions int `json:"functions"`
	AtRest
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
	if res.AtRest, err = b.atRest(ctx, d, ctrdPID, deployed); err != nil {
		return err
	}
	if res.Shims > 0 {
		res.CPUPerReplica = res.cpu() / float64(len(fns))
	}
	res.DaemonRSS, _ = procRSS(d.pid())
	res.DaemonRSSAnon, res.DaemonRSSFile, _ = procRSSParts(d.pid())
	res.ContainerdRSS, _ = procRSS(ctrdPID)
	b.saveProfile(ctx, d, "heap?gc=1", "density-heap.pb.gz")
	b.saveProfile(ctx, d, "goroutine?debug=1", "density-goroutines.txt")
	rep.Density = res

	if err := b.runRecovery(ctx, rep, d, names); err != nil {
		return err
	}
	return b.runShared(ctx, rep, d, ctrdPID, names[:min(b.sz.recovery, len(names))])
}

// atRest waits for the functions deployed until deployed to settle, then
// measures the daemon, containerd and the shims of d's namespace at rest.
func (b *bench) atRest(ctx context.Context, d *daemon, ctrdPID int, deployed time.Time) (AtRest, error) {
	var res AtRest
	fns, err := d.api.List(ctx)
	if err != nil {
		return res, err
	}
	for _, f := range fns {
		res.Replicas += int(f.AvailableReplicas)
	}
	if !sleep(ctx, b.sz.settle-time.Since(deployed)) {
		return res, ctx.Err()
	}
	shims, err := b.env.ctrd.Shims()
	if err != nil {
		return res, err
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
		return res, ctx.Err()
	}
	after, afterChildren := cpuOf(groups)
	wall := time.Since(t0)
	res.RestS = wall.Seconds()
	pct := func(d time.Duration) float64 { return 100 * d.Seconds() / wall.Seconds() }
	res.CPUDaemon = pct(after["daemon"] - before["daemon"])
	res.CPUContainerd = pct(after["containerd"] - before["containerd"])
	res.CPUShims = pct(after["shims"] - before["shims"])
	res.CPUShimChildren = pct(afterChildren["shims"] - beforeChildren["shims"])
	for _, pid := range shimPIDs {
		rss, _ := procRSS(pid)
		pss, _ := procPSS(pid)
		res.ShimRSS += rss
		res.ShimPSS += pss
	}
	return res, nil
}

// runShared replaces the functions left from recovery with as many
// replicas as the density scenario ran, sharedPer to a function, and
// measures them at rest.
func (b *bench) runShared(ctx context.Context, rep *Report, d *daemon, ctrdPID int, left []string) error {
	if err := parallel(ctx, 8, left, func(ctx context.Context, name string) error {
		return d.api.Remove(ctx, name)
	}); err != nil {
		return err
	}
	per := b.sz.sharedPer
	names := make([]string, max(b.sz.density/per, 1))
	for i := range names {
		names[i] = fmt.Sprintf("shared-%02d", i)
	}
	b.logf("shared: %d functions × %d replicas", len(names), per)
	err := parallel(ctx, 4, names, func(ctx context.Context, name string) error {
		if err := d.deploy(ctx, name, b.env.echo, map[string]string{
			function.LabelScaleMin: strconv.Itoa(per), function.LabelScaleMax: strconv.Itoa(per)}); err != nil {
			return err
		}
		_, err := d.waitFor(ctx, name, 2*time.Minute, 100*time.Millisecond, fmt.Sprintf("%d ready", per),
			onlyState(per, function.StateReady))
		return err
	})
	if err != nil {
		return err
	}
	deployed := time.Now()
	b.logf("shared: ready; settling for %s, then at rest for %s", b.sz.settle, b.sz.rest)
	res := &SharedResult{Functions: len(names)}
	if res.AtRest, err = b.atRest(ctx, d, ctrdPID, deployed); err != nil {
		return err
	}
	rep.Shared = res
	return nil
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

// Targets of the density rows.
const (
	targetDaemonRSS  = 25 << 20 // with density functions deployed
	targetOutsideRSS = 2 << 20  // per replica, sharing its function's shim
	targetRestCPU    = 1.0      // % of one core, density replicas sharing shims
)

func mib(v float64) string { return fmtBytes(int64(v)) }
func pct(v float64) string { return fmt.Sprintf("%.2f%%", v) }

func (r *DensityResult) rows() []Row {
	const s = "5 density"
	return []Row{
		{s, fmt.Sprintf("daemon RSS, %d functions (vs none)", r.Functions), fmtBytes(r.DaemonRSS), fmtBytes(r.DaemonRSSIdle),
			fmtRatio(float64(r.DaemonRSS), float64(r.DaemonRSSIdle)), atMost(float64(r.DaemonRSS), targetDaemonRSS, mib)},
		{s, "… of which anonymous (heap, stacks) / file-backed (the binary's pages)", fmtBytes(r.DaemonRSSAnon) + " / " + fmtBytes(r.DaemonRSSFile), "", "", ""},
		{s, fmt.Sprintf("per replica outside the function, one replica a function: shim RSS / PSS (%d shims)", r.Shims),
			fmtBytes(r.outsideRSS()) + " / " + fmtBytes(r.outsidePSS()), "", "", ""},
		{s, fmt.Sprintf("containerd RSS, %d functions (vs none)", r.Functions), fmtBytes(r.ContainerdRSS), fmtBytes(r.ContainerdRSSIdle), fmtRatio(float64(r.ContainerdRSS), float64(r.ContainerdRSSIdle)), ""},
		{s, fmt.Sprintf("CPU at rest over %.0fs from %.0fs after the last deploy, %% of one core (health interval %s)", r.RestS, r.SettleS, r.HealthInterval),
			pct(r.cpu()), "", "", ""},
		{s, "… of which daemon / containerd / shims' own / shims' runc execs (probes)", r.cpuParts(), "", "", ""},
		{s, "CPU at rest per replica, % of one core", fmt.Sprintf("%.3f%%", r.CPUPerReplica), "", "", ""},
	}
}

func (a AtRest) cpuParts() string {
	return fmt.Sprintf("%.2f / %.2f / %.2f / %.2f", a.CPUDaemon, a.CPUContainerd, a.CPUShims-a.CPUShimChildren, a.CPUShimChildren)
}

func (r *SharedResult) rows() []Row {
	const s = "5 density"
	what := fmt.Sprintf("%d replicas of %d functions", r.Replicas, r.Functions)
	return []Row{
		{s, fmt.Sprintf("per replica outside the function, %s: shim RSS / PSS (%d shims)", what, r.Shims),
			fmtBytes(r.outsideRSS()) + " / " + fmtBytes(r.outsidePSS()), "", "", atMost(float64(r.outsideRSS()), targetOutsideRSS, mib)},
		{s, fmt.Sprintf("CPU at rest, %s, over %.0fs from %.0fs after the last deploy, %% of one core", what, r.RestS, r.SettleS),
			pct(r.cpu()), "", "", atMost(r.cpu(), targetRestCPU, pct)},
		{s, "… of which daemon / containerd / shims' own / shims' runc execs (probes)", r.cpuParts(), "", "", ""},
	}
}

func (r *RecoveryResult) rows() []Row {
	const s = "6 recovery"
	return []Row{
		{s, fmt.Sprintf("SIGKILL, restart → /healthz answers (%d functions)", r.Functions), fmtMs(r.HealthzMs), "", "", ""},
		{s, fmt.Sprintf("SIGKILL, restart → all %d functions serve", r.Functions), fmtMs(r.AllServingMs), "", "", ""},
		{s, "replicas after the restart", fmt.Sprintf("%d (one per function)", r.ReplicasAfter), "", "", ""},
	}
}
