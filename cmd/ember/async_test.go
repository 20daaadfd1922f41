//go:build integration

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emberfaas/ember/api/wire"
	"github.com/emberfaas/ember/function"
	"github.com/emberfaas/ember/internal/itest"
	"github.com/emberfaas/ember/queue"
)

// callbacks is a callback receiver on 127.0.0.1: it records every
// callback by X-Call-Id.
type callbacks struct {
	url string

	mu    sync.Mutex // guards below
	got   map[string][]callback
	total int
	ch    chan struct{} // one per callback
}

type callback struct {
	status, name, duration string
	body                   string
	at                     time.Time
}

func newCallbacks(t *testing.T) *callbacks {
	t.Helper()
	cb := &callbacks{got: map[string][]callback{}, ch: make(chan struct{}, 1<<16)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		c := callback{status: r.Header.Get("X-Function-Status"), name: r.Header.Get("X-Function-Name"),
			duration: r.Header.Get("X-Duration-Seconds"), body: string(b), at: time.Now()}
		cb.mu.Lock()
		id := r.Header.Get("X-Call-Id")
		cb.got[id] = append(cb.got[id], c)
		cb.total++
		cb.mu.Unlock()
		cb.ch <- struct{}{}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	cb.url = "http://" + ln.Addr().String() + "/cb"
	return cb
}

// waitIDs waits until every id has had a callback.
func (cb *callbacks) waitIDs(t *testing.T, ids []string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		cb.mu.Lock()
		missing := 0
		for _, id := range ids {
			if len(cb.got[id]) == 0 {
				missing++
			}
		}
		cb.mu.Unlock()
		if missing == 0 {
			return
		}
		select {
		case <-cb.ch:
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%d of %d calls had no callback after %s", missing, len(ids), timeout)
		}
	}
}

func (cb *callbacks) get(id string) []callback {
	cb.mu.Lock()
	defer cb.mu.Unlock()
	return append([]callback(nil), cb.got[id]...)
}

// asyncPost submits one async call and returns its status and X-Call-Id.
func asyncPost(d *daemon, path, body string, hdr map[string]string) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, d.url(path), strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Call-Id"), nil
}

// submit sends n async calls, 16 at a time, with IDs prefix-0…; it fails
// the test unless each is accepted, and returns the IDs and the rate.
func submit(t *testing.T, d *daemon, n int, prefix string, path func(i int) string, cbURL string) ([]string, float64) {
	t.Helper()
	ids := make([]string, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := time.Now()
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				id := fmt.Sprintf("%s-%d", prefix, i)
				ids[i] = id
				code, got, err := asyncPost(d, path(i), fmt.Sprint("job ", i), map[string]string{"X-Callback-Url": cbURL, "X-Call-Id": id})
				if err == nil && (code != http.StatusAccepted || got != id) {
					err = fmt.Errorf("%s: %d, X-Call-Id %q", id, code, got)
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	rate := float64(n) / time.Since(start).Seconds()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return ids, rate
}

func deployParked(t *testing.T, d *daemon, e *env, name string, extra ...string) {
	t.Helper()
	args := append([]string{"deploy", name, "--image", e.echo, "--label", function.LabelScaleZero + "=true"}, extra...)
	d.mustEmber(args...)
	d.mustEmber("scale", name, "--replicas", "0")
	d.waitFor(name, "zero", 20*time.Second, func(f wire.FunctionStatus) bool {
		return len(f.Instances) == 1 && f.Instances[0].State == function.StateZero
	})
}

// latencies returns p50 and p99 of accepted→callback for ids.
func latencies(cb *callbacks, ids []string, accepted time.Time) (p50, p99 time.Duration) {
	var ds []time.Duration
	for _, id := range ids {
		if c := cb.get(id); len(c) > 0 {
			ds = append(ds, c[0].at.Sub(accepted))
		}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	if len(ds) == 0 {
		return 0, 0
	}
	return ds[len(ds)/2], ds[len(ds)*99/100]
}

func asyncCount() int {
	if n, err := strconv.Atoi(os.Getenv("EMBER_ASYNC_CALLS")); err == nil && n > 0 {
		return n
	}
	return 1000
}

// TestAsyncCalls: calls to a parked function wake it and each calls back
// exactly once with the function's answer; a function overloaded twice is
// retried and succeeds; one that always fails gives up after its
// attempts; bad requests are refused before anything is queued.
func TestAsyncCalls(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e)
	cb := newCallbacks(t)
	deployParked(t, d, e, "jobs", "--annotation", queue.AnnotationMaxInflight+"=8",
		"--annotation", queue.AnnotationRetryMinWait+"=100ms", "--annotation", queue.AnnotationRetryAttempts+"=3")

	for _, tc := range []struct {
		name, path string
		hdr        map[string]string
		body       string
		want       int
	}{
		{"unknown function", "/async-function/nope", nil, "", http.StatusNotFound},
		{"bad callback", "/async-function/jobs", map[string]string{"X-Callback-Url": "::nope"}, "", http.StatusBadRequest},
		{"too large", "/async-function/jobs", nil, strings.Repeat("x", 1<<20+1), http.StatusRequestEntityTooLarge},
	} {
		if code, _, err := asyncPost(d, tc.path, tc.body, tc.hdr); err != nil || code != tc.want {
			t.Errorf("%s: %d %v, want %d", tc.name, code, err, tc.want)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, d.url("/async-function/jobs"), nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /async-function/jobs: %v %v, want 405", resp.StatusCode, err)
	}

	n := asyncCount()
	accepted := time.Now()
	ids, rate := submit(t, d, n, "job", func(i int) string { return fmt.Sprintf("/async-function/jobs.openfaas-fn/work/%d?i=%d", i, i) }, cb.url)
	_, flakyID, _ := asyncPost(d, "/async-function/jobs/_/flaky?fail=2", "", map[string]string{"X-Callback-Url": cb.url})
	_, downID, _ := asyncPost(d, "/async-function/jobs/_/status?code=503", "", map[string]string{"X-Callback-Url": cb.url})
	cb.waitIDs(t, append(ids, flakyID, downID), 3*time.Minute)
	p50, p99 := latencies(cb, ids, accepted)
	time.Sleep(time.Second) // room for duplicates to show
	t.Logf("%d async calls to a parked function: accepted %.0f calls/s, accepted→callback p50 %s p99 %s",
		n, rate, p50.Round(time.Millisecond), p99.Round(time.Millisecond))

	for i, id := range ids {
		got := cb.get(id)
		if len(got) != 1 {
			t.Errorf("%s: %d callbacks, want exactly 1", id, len(got))
			continue
		}
		c := got[0]
		var r itest.EchoResponse
		if err := json.Unmarshal([]byte(c.body), &r); err != nil {
			t.Errorf("%s: callback body %q: %v", id, c.body, err)
			continue
		}
		if c.status != "200" || c.name != "jobs" || c.duration == "" ||
			r.Method != "POST" || r.Path != fmt.Sprintf("/work/%d", i) || r.Query != fmt.Sprintf("i=%d", i) || r.Body != fmt.Sprint("job ", i) {
			t.Errorf("%s: callback %+v, request seen %+v", id, c, r)
		}
	}
	if got := cb.get(flakyID); len(got) != 1 || got[0].status != "200" {
		t.Errorf("503 twice then 200: callbacks %+v, want one with 200", got)
	}
	if got := cb.get(downID); len(got) != 1 || got[0].status != "503" {
		t.Errorf("always 503: callbacks %+v, want one with the last status 503", got)
	}
	if !strings.Contains(d.logs.String(), "async call gave up") {
		t.Error("no log line for the call that gave up")
	}
	metrics, _, _ := get(d.url("/metrics"))
	for _, want := range []string{
		`ember_async_failed_total{function_name="jobs"} 1`,
		fmt.Sprintf(`ember_async_completed_total{code="200",function_name="jobs"} %d`, n+1),
		`ember_async_retries_total{function_name="jobs"} 4`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if f := d.describe("jobs"); f.InvocationCount < float64(n) {
		t.Errorf("invocation count %v: async calls must count as invocations", f.InvocationCount)
	}
}

// TestAsyncSurvivesKill SIGKILLs the daemon while it works through calls
// and starts it again: every accepted call still completes. Calls running
// at the kill may run and call back twice (at-least-once); no more than
// max_inflight of them can.
func TestAsyncSurvivesKill(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e, "--async-ack-wait", "3s")
	cb := newCallbacks(t)
	const inflight = 4
	deployParked(t, d, e, "slow", "--annotation", fmt.Sprintf("%s=%d", queue.AnnotationMaxInflight, inflight))
	const n = 300
	ids, _ := submit(t, d, n, "slow", func(i int) string { return "/async-function/slow/_/sleep?ms=20" }, cb.url)
	deadline := time.Now().Add(time.Minute)
	for {
		cb.mu.Lock()
		done := cb.total
		cb.mu.Unlock()
		if done >= n/4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d callbacks after a minute", done)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// ember queue shows the backlog while it drains.
	out := d.mustEmber("queue")
	if got := listColumn(out, "slow", "QUEUED"); got == "" || got == "0" {
		t.Errorf("ember queue during the run shows QUEUED %q:\n%s", got, out)
	}
	t.Logf("ember queue:\n%s", out)
	d.kill9()
	cb.mu.Lock()
	atKill := cb.total
	cb.mu.Unlock()
	d.start()
	cb.waitIDs(t, ids, 3*time.Minute)
	time.Sleep(time.Second)
	dups := 0
	for _, id := range ids {
		got := cb.get(id)
		for _, c := range got {
			if c.status != "200" || c.body != "slept" {
				t.Errorf("%s: callback %+v", id, c)
			}
		}
		dups += len(got) - 1
	}
	var qs []wire.AsyncQueue
	if err := json.Unmarshal([]byte(d.mustEmber("queue", "-o", "json")), &qs); err != nil || len(qs) != 1 ||
		qs[0] != (wire.AsyncQueue{Function: "slow"}) {
		t.Errorf("ember queue after the run: %+v %v, want slow with nothing left", qs, err)
	}
	t.Logf("%d calls, daemon SIGKILLed after %d callbacks and restarted: all %d called back, %d twice", n, atKill, n, dups)
	if dups > inflight {
		t.Errorf("%d calls called back twice: only the %d in flight at the kill may be", dups, inflight)
	}
}

// TestAsyncFaasCLI: faas-cli invoke --async with a callback header.
func TestAsyncFaasCLI(t *testing.T) {
	e := setup(t)
	d := newDaemon(t, e, "--auth=true")
	cb := newCallbacks(t)
	faas := faasCLI(t, d)
	d.mustEmber("deploy", "echo", "--image", e.echo)
	out := faas("invoke", "echo", "--async", "--header", "X-Callback-Url: "+cb.url, "--header", "X-Call-Id: from-faas-cli")
	if !strings.Contains(out, "Function submitted asynchronously") {
		t.Errorf("faas-cli invoke --async: %s", out)
	}
	cb.waitIDs(t, []string{"from-faas-cli"}, time.Minute)
	got := cb.get("from-faas-cli")
	var r itest.EchoResponse
	json.Unmarshal([]byte(got[0].body), &r)
	if len(got) != 1 || got[0].status != "200" || got[0].name != "echo" || r.Method != "POST" {
		t.Errorf("callbacks %+v, request seen %+v", got, r)
	}
	t.Logf("faas-cli: %s", strings.TrimSpace(out))

	// ember invoke --async, with a body and a path, prints the call ID.
	stdout, stderr, err := d.ember(strings.NewReader("from ember"), "invoke", "echo", "--async", "--path", "/sub?q=1", "--callback", cb.url)
	id := strings.TrimSpace(stdout)
	if err != nil || id == "" {
		t.Fatalf("ember invoke --async: %v %q %s", err, stdout, stderr)
	}
	cb.waitIDs(t, []string{id}, time.Minute)
	got = cb.get(id)
	json.Unmarshal([]byte(got[0].body), &r)
	if len(got) != 1 || got[0].status != "200" || r.Method != "POST" || r.Path != "/sub" || r.Query != "q=1" || r.Body != "from ember" {
		t.Errorf("ember invoke --async: callbacks %+v, request seen %+v", got, r)
	}
}

// TestAsyncExternalNATS runs the queue on a nats-server process of its
// own through --nats-url: calls are stored there, retried and called
// back, and survive a restart of the daemon.
func TestAsyncExternalNATS(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	root, err := itest.ModuleRoot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "nats-server")
	build := exec.Command("go", "build", "-o", bin, "github.com/nats-io/nats-server/v2")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build nats-server: %v\n%s", err, out)
	}
	port, err := itest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	srv := exec.Command(bin, "-js", "-sd", filepath.Join(dir, "js"), "-a", "127.0.0.1", "-p", strconv.Itoa(port))
	var logs lockedBuffer
	srv.Stdout, srv.Stderr = &logs, &logs
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			break
		}
		if i > 100 {
			t.Fatalf("nats-server not listening:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	d := newDaemon(t, e, "--nats-url", fmt.Sprintf("nats://127.0.0.1:%d", port), "--async-ack-wait", "3s")
	cb := newCallbacks(t)
	deployParked(t, d, e, "ext", "--annotation", queue.AnnotationRetryMinWait+"=100ms")
	ids, rate := submit(t, d, 200, "ext", func(i int) string { return fmt.Sprintf("/async-function/ext/%d", i) }, cb.url)
	_, flakyID, _ := asyncPost(d, "/async-function/ext/_/flaky?fail=2", "", map[string]string{"X-Callback-Url": cb.url})
	_, downID, _ := asyncPost(d, "/async-function/ext/_/status?code=503", "", map[string]string{"X-Callback-Url": cb.url})
	cb.waitIDs(t, append(ids, flakyID, downID), 2*time.Minute)
	time.Sleep(500 * time.Millisecond)
	for _, id := range ids {
		if got := cb.get(id); len(got) != 1 || got[0].status != "200" {
			t.Errorf("%s: callbacks %+v, want one with 200", id, got)
		}
	}
	if got := cb.get(flakyID); len(got) != 1 || got[0].status != "200" {
		t.Errorf("503 twice then 200: callbacks %+v", got)
	}
	if got := cb.get(downID); len(got) != 1 || got[0].status != "503" {
		t.Errorf("always 503: callbacks %+v", got)
	}
	if _, err := os.Stat(filepath.Join(d.dir, "state", "queue")); err == nil {
		t.Error("with --nats-url the daemon still made an embedded store")
	}

	// Calls stored on the external server while the daemon is down run
	// when it is back.
	d.mustEmber("scale", "ext", "--replicas", "0")
	code, id, err := asyncPost(d, "/async-function/ext/after", "", map[string]string{"X-Callback-Url": cb.url})
	if err != nil || code != http.StatusAccepted {
		t.Fatalf("async call: %d %v", code, err)
	}
	d.kill9()
	d.start()
	cb.waitIDs(t, []string{id}, time.Minute)
	t.Logf("external nats-server: 200 calls accepted at %.0f calls/s, all called back once; retried and failing calls as expected; a call survived a daemon kill", rate)
}
