//go:build integration

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/function"
	"github.com/emberfaas/ember/internal/itest"
)

const (
	chaosWorkers = 4
	chaosFn      = "chaos"
	chaosSecret  = "chaos-token"
	// lockDelay keeps a new or restarted replica out of rotation long
	// enough that the crash phase has no ready replica for over a second.
	lockDelay = 2 * time.Second
)

// TestChaos runs one steady mixed load through the gateway against a
// function deployed with faas-cli from a stack.yml while, in turn, the
// function is scaled, left without a ready replica, given a new secret
// value, rolled to a new image, and the daemon is SIGKILLed and restarted.
// No request may fail except by connection refused while the daemon is
// down, or because it was inside the app when the app's process crashed
// (at most one per worker: the app may have acted on it, so it is not sent
// again); every POST's effect happens exactly once, and nothing is left
// behind.
func TestChaos(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e, "--auth=true")
	gw := netip.MustParsePrefix(d.Subnet).Masked().Addr().Next()
	effects := startSink(t, gw)
	faas := faasCLI(t, d)
	// The replica counts are the test's to set: Pro's capacity rule with a
	// target of 50 in flight never adds a replica for 4 workers, where
	// CE's rule (over 5 requests/s) would, and the 5m window keeps the
	// autoscaler from taking one away.
	stack := func(image string) string {
		return writeStack(t, fmt.Sprintf(`version: 1.0
provider:
  name: openfaas
  gateway: %s
functions:
  %s:
    image: %s
    environment:
      LOCK_DELAY: %s
      SINK_URL: %s
    secrets: [%s]
    labels:
      %s: 1
      %s: 5
      %s: 5m
      %s: capacity
      %s: 50
`, d.url(""), chaosFn, image, lockDelay, effects.url, chaosSecret,
			function.LabelScaleMin, function.LabelScaleMax, function.LabelScaleDownWindow,
			function.LabelScaleType, function.LabelScaleTarget), nil)
	}

	faas("secret", "create", chaosSecret, "--from-literal", "token-1")
	stackV1 := stack(e.echo)
	faas("deploy", "-f", stackV1)
	d.waitFor(chaosFn, "ready", 60*time.Second, exactlyReady(1))

	l := startChaosLoad(t, d, chaosWorkers, 150_000, 5*time.Minute)
	var phases []phaseTime
	phase := func(name string, f func()) {
		t0 := time.Now()
		f()
		phases = append(phases, phaseTime{name, time.Since(t0)})
	}

	phase("scale 1→5→2", func() {
		for _, n := range []int{5, 2} {
			d.mustEmber("scale", chaosFn, "--replicas", strconv.Itoa(n))
			d.waitFor(chaosFn, fmt.Sprintf("%d ready", n), 60*time.Second, exactlyReady(n))
		}
	})

	var zeroReady time.Duration
	var crashed time.Time
	phase("no ready replica", func() {
		f := d.waitFor(chaosFn, "2 ready", 30*time.Second, exactlyReady(2))
		sick, crash := f.Instances[0], f.Instances[1]
		if _, code, err := direct(sick.IP, "/_/rmlock"); err != nil || code != 200 {
			t.Fatalf("rmlock on %s: %d %v", sick.IP, code, err)
		}
		d.waitFor(chaosFn, "one unhealthy", 10*time.Second, func(f wire.FunctionStatus) bool {
			return countState(f, function.StateReady) == 1
		})
		crashed = time.Now()
		direct(crash.IP, "/_/exit?code=3") // the reply may be lost with the process
		zeroReady = watchZeroReady(t, d, 30*time.Second)
		if zeroReady <= time.Second {
			t.Errorf("no ready replica for %s, want over a second", zeroReady)
		}
		d.waitFor(chaosFn, "recovered", 60*time.Second, func(f wire.FunctionStatus) bool {
			return exactlyReady(2)(f) && !slices.ContainsFunc(f.Instances, func(r function.Replica) bool { return r.ID == sick.ID })
		})
	})

	phase("secret rotation", func() {
		faas("secret", "update", chaosSecret, "--from-literal", "token-2")
		if got, ok := waitReplicas(d, 30*time.Second, "/_/secret?name="+chaosSecret, "token-2"); !ok {
			t.Errorf("30s after the secret update the replicas serve %v, want token-2 from each", got)
		}
	})

	var rolledAt time.Time
	phase("rolling update", func() {
		faas("deploy", "-f", stack(e.echo2))
		if got, ok := waitReplicas(d, 90*time.Second, "/", "v2"); !ok {
			t.Fatalf("90s after the update the replicas answer versions %v, want v2 from each", got)
		}
		rolledAt = time.Now()
		if got, ok := waitReplicas(d, time.Second, "/_/secret?name="+chaosSecret, "token-2"); !ok {
			t.Errorf("after the update the replicas serve secret values %v, want token-2", got)
		}
	})

	var down window
	phase("daemon SIGKILL+restart", func() {
		before := d.waitFor(chaosFn, "all ready", 30*time.Second, allReady)
		down.from = time.Now()
		d.kill9()
		down.killed = time.Now()
		d.start()
		down.to = time.Now()
		after := d.waitFor(chaosFn, "adopted", 30*time.Second, allReady)
		if b, a := replicaSet(before), replicaSet(after); !slices.Equal(b, a) {
			t.Errorf("replicas before the restart %v, after %v: want the same", b, a)
		}
		l.waitOK(t, down.to, 100, 30*time.Second)
	})

	if !l.running() {
		t.Error("the load ended (count or time bound) before the last phase did")
	}
	st := l.stop()
	report(t, st.tally(down, crashed, rolledAt, effects), phases, zeroReady)

	faas("remove", "-f", stackV1)
	waitGone(t, d, chaosFn, 60*time.Second)
	faas("secret", "remove", chaosSecret)
	d.assertNoLeftovers()
	d.Stop()
	d.assertNoLeftovers()
	if shims, err := e.containerd.Shims(); err != nil {
		t.Error(err)
	} else if slices.ContainsFunc(shims, func(s itest.Shim) bool { return s.Namespace == d.ns }) {
		t.Errorf("shims left after the daemon stopped: %+v", shims)
	}
}

type phaseTime struct {
	name string
	dur  time.Duration
}

// window is when the daemon was down: from just before the SIGKILL to
// /healthz answering again; killed is when the process had gone.
type window struct{ from, killed, to time.Time }

// result is one request of the load.
type result struct {
	post       bool
	id         string // a POST's body, the effect's key
	start, end time.Time
	code       int
	err        error
	transport  bool // err came from the connection, not from a reply
	version    string
}

// chaosLoad runs workers sequential loops, alternating GETs and POSTs,
// until stopped or bounded by count or time. Each request ends before the
// loop stops: none is abandoned with an unknown effect.
type chaosLoad struct {
	stopping atomic.Bool
	wg       sync.WaitGroup
	mu       sync.Mutex // guards below
	results  []result
	ended    bool
}

func startChaosLoad(t *testing.T, d *daemon, workers, maxRequests int, maxTime time.Duration) *chaosLoad {
	l := &chaosLoad{}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}, Timeout: 40 * time.Second}
	deadline := time.Now().Add(maxTime)
	var seq atomic.Int64
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			// Steady, not flat out: the host's cores are shared.
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for n := seq.Add(1); n <= int64(maxRequests) && !l.stopping.Load() && time.Now().Before(deadline); n = seq.Add(1) {
				r := l.one(hc, d, n)
				l.mu.Lock()
				l.results = append(l.results, r)
				l.mu.Unlock()
				<-tick.C
			}
			l.mu.Lock()
			l.ended = true
			l.mu.Unlock()
		}()
	}
	t.Cleanup(func() { l.stop() })
	l.waitOK(t, time.Time{}, 20, 10*time.Second)
	return l
}

func (l *chaosLoad) one(hc *http.Client, d *daemon, n int64) result {
	r := result{post: n%2 == 0, start: time.Now()}
	var req *http.Request
	if r.post {
		r.id = fmt.Sprintf("effect-%07d", n)
		req, _ = http.NewRequest("POST", d.url("/function/"+chaosFn+"/_/effect"), strings.NewReader(r.id))
		req.Header.Set("Content-Type", "text/plain")
	} else {
		req, _ = http.NewRequest("GET", d.url(fmt.Sprintf("/function/%s/load?n=%d", chaosFn, n)), nil)
	}
	resp, err := hc.Do(req)
	r.transport = err != nil
	if err == nil {
		var body []byte
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		r.code, r.transport = resp.StatusCode, err != nil
		var er itest.EchoResponse
		if err == nil && r.code/100 == 2 {
			if err = json.Unmarshal(body, &er); err == nil && er.Body != r.id {
				err = fmt.Errorf("reply for body %q to %q", er.Body, r.id)
			}
		} else if err == nil {
			err = fmt.Errorf("%q", body)
		}
		r.version = er.Version
	}
	r.err, r.end = err, time.Now()
	return r
}

func (l *chaosLoad) running() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.ended
}

// waitOK waits for n successful requests that started after since.
func (l *chaosLoad) waitOK(t *testing.T, since time.Time, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		l.mu.Lock()
		ok := 0
		for _, r := range l.results {
			if r.err == nil && r.start.After(since) {
				ok++
			}
		}
		l.mu.Unlock()
		if ok >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests succeeded in %s", ok, n, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (l *chaosLoad) stop() *chaosLoad {
	l.stopping.Store(true)
	l.wg.Wait()
	return l
}

// tally is what the load saw, judged against the daemon's down window,
// the end of the rolling update and the effects the sink recorded.
type tally struct {
	requests, gets, posts, refusedDown, cut, crashCut, effects int
	failures, effectErrs, stale                                []string
}

// crashGrace is how long after the crash request a request counts as in
// flight to the crashing process: it dies just after answering.
const crashGrace = 500 * time.Millisecond

func (l *chaosLoad) tally(down window, crashed, rolledAt time.Time, s *sink) tally {
	var c tally
	seen, posted := s.snapshot(), map[string]bool{}
	inDown := func(at time.Time) bool { return !at.Before(down.from) && !at.After(down.to) }
	for _, r := range l.results {
		c.requests++
		if !r.post {
			c.gets++
		} else {
			c.posts++
			posted[r.id] = true
		}
		refused := errors.Is(r.err, syscall.ECONNREFUSED)
		n := seen[r.id]
		switch {
		case r.err == nil:
			if r.post && n != 1 {
				c.effectErrs = append(c.effectErrs, fmt.Sprintf("%s answered 200, effect seen %d times", r.id, n))
			}
			if !rolledAt.IsZero() && r.start.After(rolledAt) && r.version != "v2" {
				c.stale = append(c.stale, fmt.Sprintf("%s %s", r.start.Format("15:04:05.000"), r.version))
			}
			continue
		case refused && inDown(r.start):
			c.refusedDown++
			if r.post && n != 0 {
				c.effectErrs = append(c.effectErrs, fmt.Sprintf("%s refused, effect seen %d times", r.id, n))
			}
			continue
		case r.transport && r.start.Before(down.killed) && inDown(r.end):
			c.cut++ // in flight when the daemon was killed
		case r.code == http.StatusBadGateway && r.start.Before(crashed.Add(crashGrace)) && r.end.After(crashed):
			// In flight in the app when its process died: it may have
			// acted on the request, so the gateway does not send it again
			// (that could double a POST's effect); the caller gets 502.
			c.crashCut++
		default:
			c.failures = append(c.failures, fmt.Sprintf("%s %s %d %v",
				r.start.Format("15:04:05.000"), map[bool]string{true: "POST", false: "GET"}[r.post], r.code, r.err))
		}
		if r.post && n > 1 {
			c.effectErrs = append(c.effectErrs, fmt.Sprintf("%s failed, effect seen %d times", r.id, n))
		}
	}
	for id, n := range seen {
		c.effects += n
		if !posted[id] {
			c.effectErrs = append(c.effectErrs, fmt.Sprintf("effect %s (%d times) that no request asked for", id, n))
		}
	}
	return c
}

func report(t *testing.T, c tally, phases []phaseTime, zeroReady time.Duration) {
	t.Helper()
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, row := range [][2]any{{"requests", c.requests}, {"GETs", c.gets}, {"POSTs", c.posts},
		{"failures", len(c.failures)}, {"refused while down", c.refusedDown}, {"cut by the daemon's SIGKILL", c.cut},
		{"in flight in the crashed app", c.crashCut},
		{"effects", c.effects}, {"effect errors", len(c.effectErrs)}, {"old version after rollout", len(c.stale)},
		{"no ready replica", zeroReady.Round(time.Millisecond)}} {
		fmt.Fprintf(w, "%s\t%v\t\n", row[0], row[1])
	}
	for _, p := range phases {
		fmt.Fprintf(w, "phase %s\t%s\t\n", p.name, p.dur.Round(time.Millisecond))
	}
	w.Flush()
	t.Logf("chaos load:\n%s", b.String())
	first := func(s []string) string { return strings.Join(s[:min(10, len(s))], "\n  ") }
	if len(c.failures) > 0 {
		t.Errorf("%d requests failed outside the daemon's downtime, first:\n  %s", len(c.failures), first(c.failures))
	}
	if c.crashCut > chaosWorkers {
		t.Errorf("%d requests cut by the app's crash, want at most one per worker (%d)", c.crashCut, chaosWorkers)
	}
	if len(c.effectErrs) > 0 {
		t.Errorf("%d POST effects not seen exactly once, first:\n  %s", len(c.effectErrs), first(c.effectErrs))
	}
	if len(c.stale) > 0 {
		t.Errorf("%d responses from the old version after the rollout ended, first:\n  %s", len(c.stale), first(c.stale))
	}
	if c.gets == 0 || c.posts == 0 {
		t.Errorf("load had %d GETs and %d POSTs, want both", c.gets, c.posts)
	}
}

// sink is an HTTP server on the bridge's gateway address that counts the
// effects functions POST to it.
type sink struct {
	url  string
	mu   sync.Mutex // guards below
	seen map[string]int
}

func startSink(t *testing.T, ip netip.Addr) *sink {
	// The bridge, and so the address, appears with the first replica.
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_IP, syscall.IP_FREEBIND, 1) })
		return errors.Join(err, serr)
	}}
	ln, err := lc.Listen(context.Background(), "tcp", netip.AddrPortFrom(ip, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{url: "http://" + ln.Addr().String() + "/effect", seen: map[string]int{}}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := io.ReadAll(r.Body)
		if err != nil || r.Method != "POST" {
			http.Error(w, "bad effect", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.seen[string(id)]++
		s.mu.Unlock()
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

func (s *sink) snapshot() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.seen)
}

// direct calls a replica on its bridge IP, bypassing the gateway. The
// timeout matters: a replica removed meanwhile leaves an address nothing
// answers on.
func direct(ip, path string) (string, int, error) {
	hc := &http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get("http://" + net.JoinHostPort(ip, "8080") + path)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode, err
}

// waitReplicas polls until every replica, all ready, answers path with
// want (the body, or the version for "/"); it returns what they answered.
func waitReplicas(d *daemon, timeout time.Duration, path, want string) (map[string]string, bool) {
	deadline := time.Now().Add(timeout)
	for {
		f := d.describe(chaosFn)
		got, ok := map[string]string{}, allReady(f)
		for _, r := range f.Instances {
			body, code, err := direct(r.IP, path)
			if path == "/" {
				var er itest.EchoResponse
				json.Unmarshal([]byte(body), &er)
				body = er.Version
			}
			got[r.ID] = fmt.Sprintf("%q (%d %v)", body, code, err)
			ok = ok && err == nil && code == 200 && body == want
		}
		if ok || time.Now().After(deadline) {
			return got, ok
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// watchZeroReady polls until the function has had no ready replica and
// has one again, and returns for how long it had none.
func watchZeroReady(t *testing.T, d *daemon, timeout time.Duration) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	var from time.Time
	for ctx.Err() == nil {
		f, err := d.client.Describe(ctx, chaosFn)
		ready := countState(f, function.StateReady)
		switch {
		case err != nil:
		case ready == 0 && from.IsZero():
			from = time.Now()
		case ready > 0 && !from.IsZero():
			return time.Since(from)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no spell without a ready replica ending within %s (started: %v)", timeout, !from.IsZero())
	return 0
}

func allReady(f wire.FunctionStatus) bool {
	return len(f.Instances) > 0 && countState(f, function.StateReady) == len(f.Instances)
}

func replicaSet(f wire.FunctionStatus) []string {
	var s []string
	for _, r := range f.Instances {
		s = append(s, r.ID+"@"+r.IP)
	}
	slices.Sort(s)
	return s
}

func waitGone(t *testing.T, d *daemon, name string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		fns, err := d.client.List(t.Context())
		if err == nil && !slices.ContainsFunc(fns, func(f wire.FunctionStatus) bool { return f.Name == name }) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not removed after %s: %v %v", name, timeout, fns, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
