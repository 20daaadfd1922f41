package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// Config is one run's settings.
type Config struct {
	// Short runs every scenario with tiny counts, to keep the benchmarks
	// working in CI; its numbers mean little.
	Short bool
	// Out, if set, is a file the report is written to as JSON.
	Out string
	// KeepLogs keeps the daemons' and containerd's logs even when the run
	// succeeds (they are always kept when it fails).
	KeepLogs bool
	// Only, if set, is a comma-separated list of the scenarios to run
	// (gateway, wake, deploy, autoscale, autoscale-fixed, density, async);
	// a partial run skips the
	// checks that every scenario produced numbers.
	Only string
	// ProfileDir, if set, has the daemons serve Go's profiler and the
	// scenarios save profiles there (see profile.go).
	ProfileDir string
}

// sizes are a mode's counts and durations.
type sizes struct {
	gatewayRounds int           // alternating gateway/direct rounds per concurrency
	round         time.Duration // one round on one target
	warmup        time.Duration
	wakes         int // per kind
	deploys       int // per kind
	autoSteps     int
	// The autoscaled-versus-fixed comparison: rounds per load shape, each
	// a run on the autoscaled function and one on each fixed count.
	fixedRounds       int
	autoRun, fixedRun time.Duration
	density           int // functions
	sharedPer         int // replicas per function in the shared-shim rest
	// settle is the time from the last deploy to the rest window. In full
	// mode it lets the autoscaler's watch after a deploy end (3s load
	// window + 60s down window) and the first periodic exec probes come
	// due (a minute after a replica's start-up probe), so the window sees
	// the steady state.
	settle     time.Duration
	rest       time.Duration
	recovery   int // functions
	asyncCalls int
}

var (
	full = sizes{
		gatewayRounds: 5, round: time.Second, warmup: time.Second,
		wakes: 20, deploys: 10, autoSteps: 3,
		fixedRounds: 2, autoRun: 20 * time.Second, fixedRun: 5 * time.Second,
		density: 50, sharedPer: 10, settle: 65 * time.Second, rest: 60 * time.Second,
		recovery: 20, asyncCalls: 2000,
	}
	short = sizes{
		gatewayRounds: 2, round: 200 * time.Millisecond, warmup: 200 * time.Millisecond,
		wakes: 3, deploys: 2, autoSteps: 1,
		fixedRounds: 1, autoRun: 500 * time.Millisecond, fixedRun: 200 * time.Millisecond,
		density: 5, sharedPer: 5, settle: time.Second, rest: 3 * time.Second,
		recovery: 3, asyncCalls: 50,
	}
)

// bench is one run.
type bench struct {
	cfg   Config
	sz    sizes
	env   *env
	log   io.Writer
	start time.Time
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "[%6.1fs] %s\n", time.Since(b.start).Seconds(), fmt.Sprintf(format, args...))
}

// Run runs every scenario and writes the machine and the table to out,
// progress to log. It returns an error when a scenario could not produce
// its numbers, a request failed where ember promises none does, or the
// clean-up failed; the table is written in any case.
func Run(ctx context.Context, cfg Config, out, log io.Writer) (err error) {
	b := &bench{cfg: cfg, sz: full, log: log, start: time.Now()}
	rep := &Report{Mode: "full", Started: b.start, LoadStart: loadavg()}
	if cfg.Short {
		b.sz, rep.Mode = short, "short"
	}
	b.logf("setting up: building ember and the echo function, starting containerd and a registry")
	if cfg.ProfileDir != "" {
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			return err
		}
	}
	if b.env, err = newEnv(ctx, log); err != nil {
		return err
	}
	b.env.profileDir = cfg.ProfileDir
	defer func() {
		b.logf("cleaning up")
		keep := err != nil || len(rep.Problems) > 0 || cfg.KeepLogs
		if cerr := b.env.close(keep); cerr != nil {
			err = errors.Join(err, fmt.Errorf("clean-up: %w", cerr))
			keep = true
		}
		if keep {
			b.logf("daemon and containerd logs kept in %s", b.env.logDir)
		}
	}()
	ver := "?"
	if cl, err := b.env.ctrd.Client(ctx); err == nil {
		if v, err := cl.Version(ctx); err == nil {
			ver = v.Version
		}
		cl.Close()
	}
	rep.Machine = describeMachine(ctx, b.env.root, b.env.bin, ver)
	b.logf("machine: %s", rep.Machine)

	scenarios := []struct {
		name string
		run  func(context.Context, *Report) error
	}{
		{"gateway", b.runGateway},
		{"wake", b.runWake},
		{"deploy", b.runDeploy},
		{"autoscale", b.runAutoscale},
		{"autoscale-fixed", b.runFixed},
		{"density and recovery", b.runDensity},
		{"async", b.runAsync},
	}
	for _, s := range scenarios {
		if ctx.Err() != nil {
			break
		}
		if b.cfg.Only != "" && !slices.Contains(strings.Split(b.cfg.Only, ","), strings.Fields(s.name)[0]) {
			continue
		}
		b.logf("%s: start", s.name)
		if err := s.run(ctx, rep); err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s: %v", s.name, err))
			b.logf("%s: FAILED: %v", s.name, err)
			continue
		}
		b.logf("%s: done", s.name)
	}
	if ctx.Err() != nil {
		rep.Problems = append(rep.Problems, "interrupted")
	} else {
		if cfg.Only == "" {
			rep.Problems = append(rep.Problems, rep.check()...)
		}
	}
	rep.DaemonFlags = b.env.flags
	rep.Table = rep.rows()
	rep.DurationS = time.Since(b.start).Seconds()
	rep.LoadEnd = loadavg()
	if err := rep.WriteMarkdown(out); err != nil {
		return err
	}
	if cfg.Out != "" {
		if err := rep.WriteJSON(cfg.Out); err != nil {
			return err
		}
		b.logf("wrote %s", cfg.Out)
	}
	if len(rep.Problems) > 0 {
		return fmt.Errorf("%d problem(s), listed under the table", len(rep.Problems))
	}
	return nil
}

// rows builds the table from the scenarios that produced results.
func (r *Report) rows() []Row {
	var rows []Row
	if r.Gateway != nil {
		rows = append(rows, r.Gateway.rows()...)
	}
	if r.Wake != nil {
		rows = append(rows, r.Wake.rows()...)
	}
	if r.Deploy != nil {
		rows = append(rows, r.Deploy.rows()...)
	}
	if r.Autoscale != nil {
		rows = append(rows, r.Autoscale.rows()...)
	}
	if r.Fixed != nil {
		rows = append(rows, r.Fixed.rows()...)
	}
	if r.Density != nil {
		rows = append(rows, r.Density.rows()...)
	}
	if r.Shared != nil {
		rows = append(rows, r.Shared.rows()...)
	}
	if r.Recovery != nil {
		rows = append(rows, r.Recovery.rows()...)
	}
	if r.Async != nil {
		rows = append(rows, r.Async.rows()...)
	}
	return rows
}

// check lists what makes the run fail whatever the timings: a scenario
// without numbers, or failed requests where ember promises none.
func (r *Report) check() []string {
	var p []string
	missing := func(name string, ok bool) {
		if !ok {
			p = append(p, name+": no numbers")
		}
	}
	missing("gateway", r.Gateway != nil && r.Gateway.Gateway.N > 0 && r.Gateway.Direct.N > 0 && len(r.Gateway.Throughput) == 3)
	missing("wake", r.Wake != nil && r.Wake.Paused.N > 0 && r.Wake.Zero.N > 0 && r.Wake.Warm.N > 0)
	missing("deploy", r.Deploy != nil && r.Deploy.Present.N > 0 && r.Deploy.Pulled.N > 0)
	missing("autoscale", r.Autoscale != nil && r.Autoscale.AllReady.N > 0)
	missing("autoscale-fixed", r.Fixed != nil && r.Fixed.ok())
	missing("density", r.Density != nil && r.Density.Functions > 0 && r.Density.Shims > 0)
	missing("recovery", r.Recovery != nil && r.Recovery.AllServingMs > 0)
	missing("shared", r.Shared != nil && r.Shared.Shims > 0)
	missing("async", r.Async != nil && r.Async.Callback.N > 0 && r.Async.Sync.N > 0)
	if r.Async != nil && r.Async.Missing > 0 {
		p = append(p, fmt.Sprintf("async: %d calls without exactly one callback", r.Async.Missing))
	}
	if r.Gateway != nil && r.Gateway.Failed > 0 {
		p = append(p, fmt.Sprintf("gateway: %d requests failed through the gateway: %v", r.Gateway.Failed, r.Gateway.Errors))
	}
	if r.Wake != nil && r.Wake.Failed > 0 {
		p = append(p, fmt.Sprintf("wake: %d wake-up requests failed: %v", r.Wake.Failed, r.Wake.Errors))
	}
	if r.Autoscale != nil && r.Autoscale.Failed > 0 {
		p = append(p, fmt.Sprintf("autoscale: %d requests failed during the step: %v", r.Autoscale.Failed, r.Autoscale.Errors))
	}
	if r.Fixed != nil && r.Fixed.Failed > 0 {
		p = append(p, fmt.Sprintf("autoscale-fixed: %d requests failed: %v", r.Fixed.Failed, r.Fixed.Errors))
	}
	if r.Recovery != nil && r.Recovery.ReplicasAfter != r.Recovery.Functions {
		p = append(p, fmt.Sprintf("recovery: %d replicas after the restart, want %d (one per function)", r.Recovery.ReplicasAfter, r.Recovery.Functions))
	}
	return p
}
