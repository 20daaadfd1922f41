package bench

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/emberfaas/ember/function"
)

// GatewayResult compares requests through /function/NAME/ with requests
// straight to the replica's IP:8080, in alternating rounds.
type GatewayResult struct {
	Rounds     int          `json:"rounds"`
	RoundS     float64      `json:"round_s"`
	Gateway    Dist         `json:"latency_c1_gateway"`
	Direct     Dist         `json:"latency_c1_direct"`
	Throughput []Throughput `json:"throughput"`
	// DaemonCPUPerRequestUs is the daemon's CPU time (user + system)
	// during the gateway rounds divided by their requests.
	DaemonCPUPerRequestUs float64  `json:"daemon_cpu_per_request_us"`
	Failed                int      `json:"failed_gateway"`
	FailedDir             int      `json:"failed_direct"`
	Errors                []string `json:"errors,omitempty"`
}

// Throughput is requests per second at one concurrency.
type Throughput struct {
	Concurrency int     `json:"concurrency"`
	GatewayRPS  float64 `json:"gateway_rps"`
	DirectRPS   float64 `json:"direct_rps"`
}

var concurrencies = []int{1, 8, 32}

// The gateway's targets: what it may add to a call, measured against the
// same replica reached directly in the same run.
const addedLatencyTarget = 60 * time.Microsecond

// throughputTarget is the least gateway ÷ direct throughput ratio at a
// concurrency, if it has one.
func throughputTarget(conc int) (float64, bool) {
	switch conc {
	case 1:
		return 0.6, true
	case 32:
		return 0.5, true
	}
	return 0, false
}

// atLeastRatio is a Target: the least value ÷ reference, and whether it
// was reached.
func atLeastRatio(value, reference, min float64) string {
	verdict := "met"
	if reference <= 0 || !(value/reference >= min) {
		verdict = "NOT met"
	}
	return fmt.Sprintf("ratio ≥ %.2f×: %s", min, verdict)
}

// target is one way to reach the replica, with its own connections.
type target struct {
	url    string
	client *http.Client
	// Sums over the rounds, per concurrency.
	ok      map[int]int
	elapsed map[int]time.Duration
	lat     []time.Duration // at concurrency 1
	cpuPID  int             // a process whose CPU time the rounds add up, or 0
	cpu     time.Duration
	failed  int
	errors  []string
}

func newTarget(url string) *target {
	return &target{url: url, client: newClient(concurrencies[len(concurrencies)-1]),
		ok: map[int]int{}, elapsed: map[int]time.Duration{}}
}

func (t *target) run(ctx context.Context, conc int, d time.Duration) {
	var cpu0 time.Duration
	if t.cpuPID != 0 {
		cpu0, _ = procCPU(t.cpuPID)
	}
	r := closedLoop(ctx, t.client, t.url, conc, after(d), conc == 1)
	if t.cpuPID != 0 {
		cpu1, _ := procCPU(t.cpuPID)
		t.cpu += cpu1 - cpu0
	}
	t.ok[conc] += r.OK
	t.elapsed[conc] += r.Elapsed
	t.lat = append(t.lat, r.Latencies...)
	t.failed += r.Failed
	for _, e := range r.Errors {
		if len(t.errors) < keptErrors {
			t.errors = append(t.errors, e)
		}
	}
}

func (t *target) rps(conc int) float64 {
	if t.elapsed[conc] == 0 {
		return 0
	}
	return float64(t.ok[conc]) / t.elapsed[conc].Seconds()
}

func (b *bench) runGateway(ctx context.Context, rep *Report) error {
	d, err := b.env.startDaemon(ctx, "gw")
	if err != nil {
		return err
	}
	defer d.teardown()
	// One replica behind both paths: min == max keeps the autoscaler out.
	if err := d.deploy(ctx, "gw", b.env.echo, map[string]string{
		function.LabelScaleMin: "1", function.LabelScaleMax: "1",
	}); err != nil {
		return err
	}
	f, err := d.api.Describe(ctx, "gw")
	if err != nil {
		return err
	}
	if len(f.Instances) != 1 || f.Instances[0].IP == "" {
		return fmt.Errorf("want one replica with an IP: %s", summary(f))
	}
	gw := newTarget(d.fnURL("gw", "/"))
	gw.cpuPID = d.pid()
	direct := newTarget("http://" + f.Instances[0].IP + ":8080/")

	// Open the connections and warm both paths before anything counts.
	for _, t := range []*target{gw, direct} {
		r := closedLoop(ctx, t.client, t.url, concurrencies[len(concurrencies)-1], after(b.sz.warmup), false)
		if r.OK == 0 {
			return fmt.Errorf("warm-up of %s: no request succeeded: %v", t.url, r.Errors)
		}
	}
	// Short rounds, alternating which path goes first, so that drift on
	// the host (another process, a cache) falls on both alike.
	for round := range b.sz.gatewayRounds {
		b.logf("gateway: round %d/%d", round+1, b.sz.gatewayRounds)
		for _, conc := range concurrencies {
			order := []*target{gw, direct}
			if round%2 == 1 {
				order = []*target{direct, gw}
			}
			for _, t := range order {
				t.run(ctx, conc, b.sz.round)
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	res := &GatewayResult{
		Rounds:    b.sz.gatewayRounds,
		RoundS:    b.sz.round.Seconds(),
		Gateway:   dist(gw.lat),
		Direct:    dist(direct.lat),
		Failed:    gw.failed,
		FailedDir: direct.failed,
		Errors:    append(gw.errors, direct.errors...),
	}
	n := 0
	for _, conc := range concurrencies {
		n += gw.ok[conc]
	}
	if n > 0 {
		res.DaemonCPUPerRequestUs = float64(gw.cpu) / float64(time.Microsecond) / float64(n)
	}
	for _, conc := range concurrencies {
		res.Throughput = append(res.Throughput, Throughput{Concurrency: conc, GatewayRPS: gw.rps(conc), DirectRPS: direct.rps(conc)})
	}
	rep.Gateway = res
	return nil
}

func (r *GatewayResult) rows() []Row {
	const s = "1 gateway overhead"
	added := fromMs(r.Gateway.P50Ms - r.Direct.P50Ms)
	rows := []Row{
		{s, "latency p50, concurrency 1 (via gateway vs direct to replica)", fmtMs(r.Gateway.P50Ms), fmtMs(r.Direct.P50Ms), fmtRatio(r.Gateway.P50Ms, r.Direct.P50Ms), ""},
		{s, "added latency p50, concurrency 1 (gateway − direct)", fmtDur(added), "", "",
			atMost(float64(added), float64(addedLatencyTarget), func(v float64) string { return fmtDur(time.Duration(v)) })},
		{s, "latency p99, concurrency 1", fmtMs(r.Gateway.P99Ms), fmtMs(r.Direct.P99Ms), fmtRatio(r.Gateway.P99Ms, r.Direct.P99Ms), ""},
	}
	for _, t := range r.Throughput {
		target := ""
		if min, ok := throughputTarget(t.Concurrency); ok {
			target = atLeastRatio(t.GatewayRPS, t.DirectRPS, min)
		}
		rows = append(rows, Row{s, fmt.Sprintf("throughput, concurrency %d", t.Concurrency),
			fmtRate(t.GatewayRPS), fmtRate(t.DirectRPS), fmtRatio(t.GatewayRPS, t.DirectRPS), target})
	}
	rows = append(rows, Row{s, "daemon CPU per gateway request (all gateway rounds)", fmt.Sprintf("%.0f µs", r.DaemonCPUPerRequestUs), "", "", ""})
	rows = append(rows, Row{s, "failed requests (gateway / direct)", fmt.Sprintf("%d / %d", r.Failed, r.FailedDir), "", "", ""})
	return rows
}
