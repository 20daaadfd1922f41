package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"time"
)

// newClient returns an HTTP client for one target, tuned as a load
// generator: keep-alive connections enough for conns workers, no
// compression, no proxy from the environment. Its timeout is above the
// daemon's default wake timeout (30s), so a held request is not cut short
// by the client.
func newClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 40 * time.Second,
		Transport: &http.Transport{
			Proxy: nil,
			DialContext: (&net.Dialer{
				Timeout:   5 * time.Second,
				KeepAlive: 30 * time.Second,
			}).DialContext,
			MaxIdleConns:        conns * 2,
			MaxIdleConnsPerHost: conns * 2,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}

// get sends a GET and reads the whole answer; a status other than 200 is an
// error.
func get(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// ttfb sends a GET and returns the time to the first byte of the answer,
// which must be a 200 and is read to the end.
func ttfb(ctx context.Context, c *http.Client, url string) (time.Duration, error) {
	var first time.Time
	trace := &httptrace.ClientTrace{GotFirstResponseByte: func() { first = time.Now() }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, fmt.Errorf("GET %s: %w", url, err)
	}
	return first.Sub(start), nil
}

// loadResult is what a closed loop of workers did.
type loadResult struct {
	OK, Failed int
	Elapsed    time.Duration
	Latencies  []time.Duration // of successful requests, if asked for
	Errors     []string        // the first few failures
}

const keptErrors = 5

// closedLoop runs workers that each send one GET after another to url until
// stop is closed (a request under way then finishes and counts) or ctx
// ends (it is abandoned and does not count).
func closedLoop(ctx context.Context, c *http.Client, url string, workers int, stop <-chan struct{}, keepLatency bool) loadResult {
	var (
		mu  sync.Mutex // guards res
		res loadResult
		wg  sync.WaitGroup
	)
	start := time.Now()
	for range workers {
		wg.Go(func() {
			var mine loadResult
			for !stopped(ctx, stop) {
				t := time.Now()
				err := get(ctx, c, url)
				d := time.Since(t)
				switch {
				case ctx.Err() != nil:
				case err != nil:
					mine.Failed++
					if len(mine.Errors) < keptErrors {
						mine.Errors = append(mine.Errors, err.Error())
					}
				default:
					mine.OK++
					if keepLatency {
						mine.Latencies = append(mine.Latencies, d)
					}
				}
			}
			mu.Lock()
			defer mu.Unlock()
			res.OK += mine.OK
			res.Failed += mine.Failed
			res.Latencies = append(res.Latencies, mine.Latencies...)
			for _, e := range mine.Errors {
				if len(res.Errors) < keptErrors {
					res.Errors = append(res.Errors, e)
				}
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	return res
}

func stopped(ctx context.Context, stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	case <-ctx.Done():
		return true
	default:
		return false
	}
}

// after returns a channel closed after d.
func after(d time.Duration) <-chan struct{} {
	ch := make(chan struct{})
	time.AfterFunc(d, func() { close(ch) })
	return ch
}
