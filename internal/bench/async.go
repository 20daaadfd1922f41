package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emberfaas/ember/function"
)

// AsyncResult compares async calls with sync ones to the same function in
// the same daemon, sent by the same number of clients: how fast calls are
// accepted (202) against how fast sync calls are answered, and the time
// from sending an async call to its callback against a sync call's
// latency.
type AsyncResult struct {
	Calls    int     `json:"calls"`
	Clients  int     `json:"clients"`
	Accepted float64 `json:"accepted_per_s"`
	SyncRate float64 `json:"sync_per_s"`
	// Completed is calls called back per second, from the first sent to
	// the last callback.
	Completed float64 `json:"completed_per_s"`
	Callback  Dist    `json:"enqueue_to_callback"`
	Sync      Dist    `json:"sync_latency"`
	// Missing counts calls whose callback did not come exactly once.
	Missing int      `json:"missing_or_repeated"`
	Errors  []string `json:"errors,omitempty"`
}

const asyncClients = 16

func (b *bench) runAsync(ctx context.Context, rep *Report) error {
	d, err := b.env.startDaemon(ctx, "async")
	if err != nil {
		return err
	}
	defer d.teardown()
	if err := d.deploy(ctx, "async", b.env.echo, map[string]string{function.LabelScaleMin: "1", function.LabelScaleMax: "1"}); err != nil {
		return err
	}
	n := b.sz.asyncCalls
	res := &AsyncResult{Calls: n, Clients: asyncClients}
	rep.Async = res

	// The callback receiver: arrival time per call ID.
	var mu sync.Mutex
	arrived := map[string][]time.Time{}
	all := make(chan struct{}, n*2)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		id := r.Header.Get("X-Call-Id")
		arrived[id] = append(arrived[id], time.Now())
		mu.Unlock()
		all <- struct{}{}
	})}
	go srv.Serve(ln)
	defer srv.Close()
	cbURL := "http://" + ln.Addr().String() + "/cb"

	c := newClient(asyncClients)
	// Sync first: the same calls, answered in the request.
	var syncLat []time.Duration
	elapsed, errs := fanOut(n, func(i int) error {
		start := time.Now()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, d.fnURL("async", "/"), strings.NewReader("job"))
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("sync call: %s", resp.Status)
		}
		mu.Lock()
		syncLat = append(syncLat, time.Since(start))
		mu.Unlock()
		return nil
	})
	res.SyncRate = float64(n) / elapsed.Seconds()
	res.Sync = dist(syncLat)
	res.Errors = append(res.Errors, errs...)

	sent := make([]time.Time, n)
	elapsed, errs = fanOut(n, func(i int) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, d.url("/async-function/async"), strings.NewReader("job"))
		req.Header.Set("X-Callback-Url", cbURL)
		req.Header.Set("X-Call-Id", fmt.Sprint("bench-", i))
		sent[i] = time.Now()
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("async call: %s", resp.Status)
		}
		return nil
	})
	res.Accepted = float64(n) / elapsed.Seconds()
	res.Errors = append(res.Errors, errs...)
	if len(res.Errors) > keptErrors {
		res.Errors = res.Errors[:keptErrors]
	}
	timeout := time.After(5 * time.Minute)
	for range n - len(errs) {
		select {
		case <-all:
		case <-timeout:
			return fmt.Errorf("callbacks: timed out")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	time.Sleep(500 * time.Millisecond) // room for a repeated callback to show
	mu.Lock()
	defer mu.Unlock()
	var lat []time.Duration
	var last time.Time
	for i := range n {
		at := arrived[fmt.Sprint("bench-", i)]
		if len(at) != 1 {
			res.Missing++
			continue
		}
		lat = append(lat, at[0].Sub(sent[i]))
		if at[0].After(last) {
			last = at[0]
		}
	}
	if len(lat) > 0 {
		res.Completed = float64(len(lat)) / last.Sub(sent[0]).Seconds()
	}
	res.Callback = dist(lat)
	if len(errs) > 0 {
		return fmt.Errorf("%d calls failed: %s", len(errs), errs[0])
	}
	return nil
}

// fanOut runs call(0…n-1) on asyncClients goroutines and returns how long
// that took and the errors.
func fanOut(n int, call func(i int) error) (time.Duration, []string) {
	var next atomic.Int64
	var mu sync.Mutex
	var errs []string
	var wg sync.WaitGroup
	start := time.Now()
	for range asyncClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := call(i); err != nil {
					mu.Lock()
					errs = append(errs, err.Error())
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), errs
}

func (r *AsyncResult) rows() []Row {
	const s = "7 async"
	return []Row{
		{s, fmt.Sprintf("async calls accepted (n=%d, %d clients; vs sync calls answered)", r.Calls, r.Clients),
			fmtRate(r.Accepted), fmtRate(r.SyncRate), fmt.Sprintf("%.1f×", r.Accepted/max(r.SyncRate, 1e-9)), ""},
		{s, "async calls run and called back (max_inflight 4; vs sync calls answered)",
			fmtRate(r.Completed), fmtRate(r.SyncRate), fmt.Sprintf("%.1f×", r.Completed/max(r.SyncRate, 1e-9)), ""},
		{s, fmt.Sprintf("enqueue → callback p50 / p99 (n=%d; vs sync latency)", r.Callback.N),
			fmtMs(r.Callback.P50Ms) + " / " + fmtMs(r.Callback.P99Ms), fmtMs(r.Sync.P50Ms) + " / " + fmtMs(r.Sync.P99Ms), fmtRatio(r.Callback.P50Ms, r.Sync.P50Ms), ""},
		{s, "calls without exactly one callback", fmt.Sprint(r.Missing), "", "", ""},
	}
}
